//! The endpoint scraped over loopback, its exposition checked by Prometheus'
//! own `promtool check metrics` and parsed here; the alert rules and their
//! unit tests checked with `promtool`.

use hactl_core::{
    AttemptFailure, ClusterId, Event, Evidence, FenceId, HaState, HostId, MassFailureReason,
    OffConfirmation, PartitionState, PowerReading, RateScope,
};
use hactl_metrics::Metrics;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn promtool() -> PathBuf {
    test_support::require("promtool", "prometheus")
}

fn monitoring_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../monitoring")
}

/// One HTTP GET over loopback; returns (status line, headers, body).
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("HTTP head");
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_string(), body.to_string())
}

/// Parses a text exposition into sample name{labels} -> value; panics on a
/// malformed line.
fn parse(exposition: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in exposition.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(
            series
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_'),
            "bad name in {line:?}"
        );
        out.insert(series.to_string(), v);
    }
    out
}

fn fence_issued() -> Event {
    Event::FenceIssued {
        fence: FenceId(1),
        host: HostId(3),
        cluster: ClusterId(1),
        attempt: 1,
        evidence: Evidence {
            host: HostId(3),
            samples: vec![],
            dead_required: 3,
            decided_at: 0,
        },
    }
}

fn feed(m: &Metrics) {
    let mut counts = BTreeMap::new();
    counts.insert(HaState::Available, 5);
    counts.insert(HaState::Failed, 1);
    m.set_host_counts(&counts);
    m.set_partition_states([PartitionState::Active, PartitionState::Inactive]);
    m.observe_power_read(PowerReading::On, Duration::from_millis(12));
    m.observe_power_read(PowerReading::Unreachable, Duration::from_secs(10));
    m.observe_health_check(Duration::from_millis(40));
    m.observe_activity_check(Duration::from_secs(8));
    m.observe_journal_fsync(Duration::from_micros(300));
    m.observe_event(&Event::QuorumChanged { quorate: true });
    m.observe_event(&fence_issued());
    m.observe_event(&fence_issued());
    m.observe_event(&Event::FenceConfirmed {
        fence: Some(FenceId(1)),
        host: HostId(3),
        how: OffConfirmation::ReadAfterPowerOff,
    });
    // An operator confirmation is not a fence of ours.
    m.observe_event(&Event::FenceConfirmed {
        fence: None,
        host: HostId(4),
        how: OffConfirmation::Operator,
    });
    m.observe_event(&Event::RecoveryAttemptFailed {
        host: HostId(3),
        attempt: 1,
        failure: AttemptFailure::StillOn,
        will_retry: true,
    });
    m.observe_event(&Event::RecoveryAttemptFailed {
        host: HostId(3),
        attempt: 2,
        failure: AttemptFailure::RefreshUnknown,
        will_retry: true,
    });
    m.observe_event(&Event::RateCapReached {
        scope: RateScope::Partition(ClusterId(1)),
        fences: 3,
        window_ms: 3_600_000,
    });
    m.observe_event(&Event::MassFailureDetected {
        cluster: ClusterId(2),
        reason: MassFailureReason::SuspectShare {
            affected: 4,
            total: 6,
        },
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_serves_every_metric_and_promtool_accepts_it() {
    // Fails first, naming the package, when promtool is missing.
    promtool();
    let metrics = Arc::new(Metrics::new());
    feed(&metrics);
    let listener = hactl_metrics::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(hactl_metrics::serve(listener, metrics.clone()));

    let (status, headers, body) = get(addr, "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert!(headers.contains(hactl_metrics::CONTENT_TYPE), "{headers}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");

    // Prometheus' own parser and linter.
    test_support::promtool::check_metrics(&body)
        .unwrap_or_else(|e| panic!("{e}\n--- exposition ---\n{body}"));
    // The check bites: a damaged exposition is refused.
    let damaged = body.replacen("hactl_quorate 1", "hactl_quorate{x=\"1 1", 1);
    assert!(test_support::promtool::check_metrics(&damaged).is_err());

    let samples = parse(&body);
    let v = |k: &str| {
        *samples
            .get(k)
            .unwrap_or_else(|| panic!("{k} missing from\n{body}"))
    };
    assert_eq!(v(r#"hactl_hosts{state="AVAILABLE"}"#), 5.0);
    assert_eq!(v(r#"hactl_hosts{state="FAILED"}"#), 1.0);
    assert_eq!(v(r#"hactl_hosts{state="SUSPECT"}"#), 0.0);
    assert_eq!(v(r#"hactl_partitions{state="INACTIVE"}"#), 1.0);
    assert_eq!(v(r#"hactl_power_reads_total{result="on"}"#), 1.0);
    assert_eq!(v(r#"hactl_power_reads_total{result="unreachable"}"#), 1.0);
    assert_eq!(v("hactl_power_read_duration_seconds_count"), 2.0);
    assert!((v("hactl_power_read_duration_seconds_sum") - 10.012).abs() < 1e-9);
    assert_eq!(v("hactl_health_check_duration_seconds_count"), 1.0);
    assert_eq!(v("hactl_activity_check_duration_seconds_count"), 1.0);
    assert_eq!(v("hactl_journal_fsync_duration_seconds_count"), 1.0);
    assert_eq!(v("hactl_fences_issued_total"), 2.0);
    assert_eq!(v("hactl_fences_confirmed_total"), 1.0);
    assert_eq!(v("hactl_fences_failed_total"), 1.0);
    assert_eq!(v(r#"hactl_rate_cap_tripped{scope="global"}"#), 0.0);
    assert_eq!(v(r#"hactl_rate_cap_tripped{scope="cluster-1"}"#), 1.0);
    assert_eq!(
        v(r#"hactl_mass_failure_active{partition="cluster-2"}"#),
        1.0
    );
    assert_eq!(v("hactl_quorate"), 1.0);

    // Later updates show in the next scrape.
    metrics.observe_event(&Event::RateCapCleared {
        scope: RateScope::Partition(ClusterId(1)),
        by: hactl_core::RateCapClearedBy::Acknowledged,
    });
    metrics.observe_event(&Event::QuorumChanged { quorate: false });
    let (_, _, body2) = get(addr, "/metrics").await;
    let s2 = parse(&body2);
    assert_eq!(s2[r#"hactl_rate_cap_tripped{scope="cluster-1"}"#], 0.0);
    assert_eq!(s2["hactl_quorate"], 0.0);

    let (status, _, _) = get(addr, "/nope").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    server.abort();
}

/// Metric names a PromQL expression or dashboard uses: every `hactl_...`
/// identifier, with histogram/counter suffixes kept as written.
fn names_used(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while let Some(p) = text[i..].find("hactl_") {
        let start = i + p;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        out.push(text[start..end].to_string());
        i = end;
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn alert_rules_and_dashboard_use_only_exposed_metrics() {
    let m = Metrics::new();
    feed(&m);
    let exposed: Vec<String> = parse(&m.encode())
        .keys()
        .map(|k| k.split('{').next().unwrap().to_string())
        .collect();
    for file in ["alerts.yml", "grafana-dashboard.json"] {
        let text = std::fs::read_to_string(monitoring_dir().join(file)).unwrap();
        let used = names_used(&text);
        assert!(!used.is_empty(), "{file} uses no hactl_ metric");
        for n in used {
            assert!(
                exposed.contains(&n),
                "{file} uses {n}, which the exporter does not expose"
            );
        }
    }
    let dash: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(monitoring_dir().join("grafana-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is valid JSON");
    assert!(
        dash["panels"].as_array().is_some_and(|p| !p.is_empty()),
        "the dashboard has panels"
    );
}

fn run_promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new(promtool())
        .args(args)
        .current_dir(monitoring_dir())
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn promtool_checks_the_alert_rules() {
    let (ok, out) = run_promtool(&["check", "rules", "alerts.yml"]);
    assert!(ok, "promtool check rules:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
}

#[test]
fn promtool_rule_tests_prove_each_alert_fires() {
    let (ok, out) = run_promtool(&["test", "rules", "alerts_test.yml"]);
    assert!(ok, "promtool test rules:\n{out}");
    let tests = std::fs::read_to_string(monitoring_dir().join("alerts_test.yml")).unwrap();
    let rules = std::fs::read_to_string(monitoring_dir().join("alerts.yml")).unwrap();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            assert!(
                tests.contains(&format!("alertname: {name}")),
                "alert {name} has no promtool unit test"
            );
        }
    }
}
