//! Properties of the parsers that face untrusted input: heartbeat files on
//! shared storage (anyone with write access can put anything there),
//! parameters, mountinfo lines, OCF_CHECK_LEVEL.

use kvm_host::heartbeat::{mount_points, HeartbeatRecord, FORMAT_VERSION};
use kvm_host::ocf::CheckLevel;
use kvm_host::params::{check_host_id, parse_storage_list};
use kvm_host::peer::{combine, judge_storage, Verdict};
use kvm_host::reader::{ReadReport, ReadResult};
use proptest::prelude::*;
use std::time::Duration;

fn record_strategy() -> impl Strategy<Value = HeartbeatRecord> {
    (
        "[A-Za-z0-9._:-]{1,40}",
        any::<u64>(),
        "[a-f0-9:-]{1,60}",
        any::<u64>(),
        1u64..3600,
    )
        .prop_map(
            |(host, counter, incarnation, ms, interval)| HeartbeatRecord {
                format: FORMAT_VERSION,
                host,
                counter,
                incarnation,
                written_unix_ms: ms,
                interval_secs: interval,
            },
        )
}

proptest! {
    #[test]
    fn records_round_trip(r in record_strategy()) {
        prop_assert_eq!(HeartbeatRecord::decode(&r.encode()).unwrap(), r);
    }

    #[test]
    fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = HeartbeatRecord::decode(&bytes);
    }

    #[test]
    fn accepted_host_ids_stay_one_safe_file_name(id in "\\PC{0,40}") {
        if check_host_id(&id).is_ok() {
            prop_assert!(!id.contains('/'));
            prop_assert!(!id.starts_with('.'));
            prop_assert!(!id.is_empty());
        }
    }

    #[test]
    fn accepted_storage_lists_are_absolute_and_distinct(list in "[ ,/a-z.]{0,60}") {
        if let Ok(paths) = parse_storage_list(&list) {
            prop_assert!(!paths.is_empty());
            for (i, p) in paths.iter().enumerate() {
                prop_assert!(p.is_absolute());
                prop_assert!(!paths[i + 1..].contains(p));
            }
        }
    }

    #[test]
    fn mountinfo_parsing_never_panics(text in "\\PC{0,300}") {
        let _ = mount_points(&text);
    }

    #[test]
    fn check_level_never_exceeds_the_request(n in 0u64..1000) {
        let level = CheckLevel::from_env_value(Some(&n.to_string()));
        prop_assert!(level as u64 <= n);
    }

    /// DEAD is only ever said when both samples are identical records and
    /// the window covers two intervals; any change is ALIVE.
    #[test]
    fn dead_needs_identical_samples_and_a_long_enough_window(
        a in record_strategy(), b in record_strategy(), window_s in 0u64..10_000, same in any::<bool>()
    ) {
        let mut b = b;
        b.host = a.host.clone();
        if same { b = a.clone(); }
        let w = Duration::from_secs(window_s);
        let (v, _) = judge_storage(
            &a.host,
            w,
            &ReadResult::Report(ReadReport::Record { record: a.clone() }),
            &ReadResult::Report(ReadReport::Record { record: b.clone() }),
        );
        let changed = a.counter != b.counter || a.incarnation != b.incarnation;
        if changed {
            prop_assert_eq!(v, Verdict::Alive);
        } else if window_s >= 2 * a.interval_secs {
            prop_assert_eq!(v, Verdict::Dead);
        } else {
            prop_assert_eq!(v, Verdict::CannotTell);
        }
    }

    #[test]
    fn combined_dead_needs_every_storage_dead(vs in proptest::collection::vec(
        prop_oneof![Just(Verdict::Alive), Just(Verdict::Dead), Just(Verdict::CannotTell)], 0..6)) {
        let c = combine(&vs);
        if c == Verdict::Dead {
            prop_assert!(!vs.is_empty() && vs.iter().all(|v| *v == Verdict::Dead));
        }
        prop_assert_eq!(c == Verdict::Alive, vs.contains(&Verdict::Alive));
    }
}
