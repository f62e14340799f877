//! Exhaustive transition-table tests: every (state, trigger, context) of
//! every FSM, and the model document checked against the code.

use hactl_core::fsm::*;
use std::path::PathBuf;

fn doc_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/model.md")
}

#[test]
fn every_ha_pair_is_defined_and_goto_always_changes_state() {
    let mut pairs = 0;
    for s in HaState::ALL {
        for t in HaTrigger::ALL {
            for c in HaContext::all() {
                match ha_transition(s, t, c) {
                    Outcome::Goto(to) => assert_ne!(to, s, "{s} --{t}--> {to} must be Stay"),
                    Outcome::Stay | Outcome::Ignored => {}
                }
            }
            pairs += 1;
        }
    }
    assert_eq!(pairs, 9 * 19);
}

#[test]
fn outside_an_active_partition_only_none_fenced_failed_exist() {
    for s in HaState::ALL {
        for t in HaTrigger::ALL {
            for c in HaContext::all().filter(|c| !c.partition_active) {
                if let Outcome::Goto(to) = ha_transition(s, t, c) {
                    assert!(
                        matches!(to, HaState::None | HaState::Fenced | HaState::Failed),
                        "{s} --{t}--> {to} in an inactive partition"
                    );
                }
            }
        }
    }
}

#[test]
fn recovering_is_entered_only_from_checking_on_dead_evidence() {
    for s in HaState::ALL {
        for t in HaTrigger::ALL {
            for c in HaContext::all() {
                if let Outcome::Goto(HaState::Recovering) = ha_transition(s, t, c) {
                    assert_eq!((s, t), (HaState::Checking, HaTrigger::DeadConfirmed));
                }
            }
        }
    }
}

#[test]
fn fenced_is_entered_only_on_a_confirmed_off() {
    for s in HaState::ALL {
        for t in HaTrigger::ALL {
            for c in HaContext::all() {
                if let Outcome::Goto(HaState::Fenced) = ha_transition(s, t, c) {
                    assert!(
                        matches!(
                            t,
                            HaTrigger::PowerWentOff
                                | HaTrigger::FenceConfirmed
                                | HaTrigger::OperatorConfirmedOff
                        ),
                        "{s} --{t}--> FENCED"
                    );
                }
            }
        }
    }
}

#[test]
fn a_committed_power_off_is_never_abandoned_by_health_or_gates() {
    for c in HaContext::all().filter(|c| c.power_off_committed && c.partition_active) {
        assert_eq!(
            ha_transition(HaState::Recovering, HaTrigger::HealthPassed, c),
            Outcome::Stay
        );
        assert_eq!(
            ha_transition(HaState::Recovering, HaTrigger::FenceDeferred, c),
            Outcome::Ignored
        );
    }
}

#[test]
fn available_requires_eligible_and_power_on() {
    for s in HaState::ALL {
        for t in HaTrigger::ALL {
            for c in HaContext::all() {
                if let Outcome::Goto(HaState::Available) = ha_transition(s, t, c) {
                    assert!(
                        c.eligible && c.power_on && c.partition_active,
                        "{s} --{t}--> AVAILABLE with {c:?}"
                    );
                }
            }
        }
    }
}

/// The transitions the design lists, with their events, all present.
#[test]
fn design_transitions_exist() {
    let ok = HaContext {
        partition_active: true,
        eligible: true,
        power_on: true,
        power_unknown: false,
        has_vms: true,
        in_quiet_period: false,
        power_off_committed: false,
        attempts_left: false,
    };
    use HaState as S;
    use HaTrigger as T;
    let cases = [
        (S::None, T::PartitionActivated, S::Initializing),
        (S::Initializing, T::HealthPassed, S::Available),
        (S::Initializing, T::HealthFailed, S::Suspect),
        (S::Available, T::HealthFailed, S::Suspect),
        (S::Available, T::EligibilityLost, S::Ineligible),
        (S::Suspect, T::ActivityRoundStarted, S::Checking),
        (S::Suspect, T::HealthPassed, S::Available),
        (S::Checking, T::ActivitySeen, S::Suspect),
        (S::Checking, T::DeadConfirmed, S::Recovering),
        (S::Recovering, T::RecoveryAttemptFailed, S::Failed),
        (S::Recovering, T::FenceConfirmed, S::Fenced),
        (S::Fenced, T::HealthPassed, S::Initializing),
        (S::Failed, T::HealthPassed, S::Initializing),
        (S::Fenced, T::PowerCameOn, S::Initializing),
        (S::Available, T::PowerLost, S::Ineligible),
        (S::Ineligible, T::PowerRegained, S::Initializing),
        (S::Available, T::PartitionDeactivated, S::None),
    ];
    for (from, t, to) in cases {
        assert_eq!(
            ha_transition(from, t, ok),
            Outcome::Goto(to),
            "{from} --{t}-->"
        );
    }
    let quiet = HaContext {
        in_quiet_period: true,
        ..ok
    };
    assert_eq!(
        ha_transition(S::Initializing, T::HealthFailed, quiet),
        Outcome::Stay
    );
    let retry = HaContext {
        attempts_left: true,
        ..ok
    };
    assert_eq!(
        ha_transition(S::Recovering, T::RecoveryAttemptFailed, retry),
        Outcome::Stay
    );
    // Eligible, BMC unreadable, health failing: into the failure flow.
    let bmc_gone = HaContext {
        power_on: false,
        power_unknown: true,
        ..ok
    };
    assert_eq!(
        ha_transition(S::Ineligible, T::HealthFailed, bmc_gone),
        Outcome::Goto(S::Suspect)
    );
    let off = HaContext {
        power_on: false,
        power_unknown: false,
        ..ok
    };
    assert_eq!(
        ha_transition(S::Ineligible, T::HealthFailed, off),
        Outcome::Stay
    );
    // FENCED and FAILED are kept on BMC connectivity changes (design).
    for s in [S::Fenced, S::Failed] {
        assert_eq!(ha_transition(s, T::PowerLost, ok), Outcome::Stay);
        assert_eq!(ha_transition(s, T::PowerRegained, ok), Outcome::Stay);
    }
}

#[test]
fn every_partition_pair_is_defined() {
    use PartitionState as P;
    use PartitionTrigger as T;
    let expect = |s, t| match (s, t) {
        (P::None, T::HaEnabled) => Outcome::Goto(P::Inactive),
        (P::None, _) => Outcome::Ignored,
        (_, T::HaDisabled) => Outcome::Goto(P::None),
        (P::Inactive, T::ConditionsMet) => Outcome::Goto(P::Active),
        (P::Active, T::ConditionsLost) => Outcome::Goto(P::Inactive),
        _ => Outcome::Stay,
    };
    for s in PartitionState::ALL {
        for t in PartitionTrigger::ALL {
            assert_eq!(
                partition_transition(s, t),
                expect(s, t),
                "{s} --{}-->",
                t.name()
            );
        }
    }
}

#[test]
fn every_power_pair_is_defined() {
    use HaTrigger as H;
    use PowerState as P;
    for s in PowerState::ALL {
        for r in PowerState::ALL {
            let (o, t) = power_transition(s, r);
            if s == r {
                assert_eq!((o, t), (Outcome::Stay, None));
                continue;
            }
            assert_eq!(o, Outcome::Goto(r));
            let expect = match (s, r) {
                (P::Off, P::On) => H::PowerCameOn,
                (P::Unknown, P::On) => H::PowerRegained,
                (_, P::Off) => H::PowerWentOff,
                _ => H::PowerLost,
            };
            assert_eq!(t, Some(expect), "{s} -> {r}");
        }
    }
}

fn section(doc: &str, name: &str) -> Option<String> {
    let begin = format!("<!-- BEGIN {name} -->\n");
    let end = format!("<!-- END {name} -->");
    let a = doc.find(&begin)? + begin.len();
    let b = doc[a..].find(&end)? + a;
    Some(doc[a..b].to_string())
}

fn replace_section(doc: &str, name: &str, body: &str) -> String {
    let begin = format!("<!-- BEGIN {name} -->\n");
    let end = format!("<!-- END {name} -->");
    let a = doc.find(&begin).expect("begin marker") + begin.len();
    let b = doc[a..].find(&end).expect("end marker") + a;
    format!("{}{}{}", &doc[..a], body, &doc[b..])
}

/// docs/model.md holds the tables rendered from the code. Regenerate with
/// `HACTL_UPDATE_MODEL_DOC=1 cargo test -p hactl-core --test fsm_tables`.
#[test]
fn model_document_matches_the_code() {
    let path = doc_path();
    let mut doc = std::fs::read_to_string(&path).expect("docs/model.md exists");
    let tables = [
        ("HA TABLE", render_ha_table()),
        ("PARTITION TABLE", render_partition_table()),
        ("POWER TABLE", render_power_table()),
    ];
    if std::env::var_os("HACTL_UPDATE_MODEL_DOC").is_some() {
        for (name, body) in &tables {
            doc = replace_section(&doc, name, body);
        }
        std::fs::write(&path, &doc).unwrap();
    }
    for (name, body) in &tables {
        let found =
            section(&doc, name).unwrap_or_else(|| panic!("docs/model.md lacks the {name} markers"));
        assert!(
            found == *body,
            "docs/model.md {name} differs from the code; regenerate with HACTL_UPDATE_MODEL_DOC=1"
        );
    }
    // Every state and trigger is explained in the prose.
    for s in HaState::ALL {
        assert!(
            doc.contains(&format!("**{}**", s.name())),
            "state {s} not explained"
        );
    }
    for t in HaTrigger::ALL {
        assert!(
            doc.contains(&format!("`{}`", t.name())),
            "trigger {t} not explained"
        );
    }
}

/// The recovery phase machine, every (phase, step) pair: the table as the
/// code must keep it.
#[test]
fn every_recovery_pair_is_as_specified() {
    use RecoveryPhase as P;
    use RecoveryStep as E;
    let expected = |p: P, e: E| -> Outcome<P> {
        match (p, e) {
            (P::Waiting, E::AttemptStarted) => Outcome::Goto(P::Refreshing),
            (P::Waiting, E::PowerChannelBusy) => Outcome::Stay,
            (P::Refreshing, E::PowerOffIssued) => Outcome::Goto(P::PoweringOff),
            (P::Refreshing, E::OffNeedsConfirmation) => Outcome::Goto(P::Waiting),
            (P::PoweringOff, E::PowerOffAnswered) => Outcome::Goto(P::Confirming),
            (P::Refreshing, E::AttemptFailed) | (P::Confirming, E::AttemptFailed) => {
                Outcome::Goto(P::Waiting)
            }
            _ => Outcome::Ignored,
        }
    };
    let mut pairs = 0;
    for p in RecoveryPhase::ALL {
        for e in RecoveryStep::ALL {
            let got = recovery_transition(p, e);
            assert_eq!(got, expected(p, e), "{p:?} --{e:?}-->");
            if let Outcome::Goto(to) = got {
                assert_ne!(to, p, "{p:?} --{e:?}--> {to:?} must be Stay");
            }
            pairs += 1;
        }
    }
    assert_eq!(pairs, 4 * 6);
}

/// A power-off is only ever issued from a refresh, and committed phases are
/// exactly those after an issued power-off.
#[test]
fn recovery_power_off_only_after_a_refresh_and_commitment_follows_it() {
    for p in RecoveryPhase::ALL {
        for e in RecoveryStep::ALL {
            if let Outcome::Goto(to) = recovery_transition(p, e) {
                if to == RecoveryPhase::PoweringOff {
                    assert_eq!(p, RecoveryPhase::Refreshing);
                }
                if to.committed() && !p.committed() {
                    assert_eq!(e, RecoveryStep::PowerOffIssued);
                }
            }
        }
    }
    assert!(!RecoveryPhase::Waiting.committed());
    assert!(!RecoveryPhase::Refreshing.committed());
    assert!(RecoveryPhase::PoweringOff.committed());
    assert!(RecoveryPhase::Confirming.committed());
}
