//! The client against the CloudStack API double (tests/support), which checks
//! every signature as CloudStack does, and against a TLS server (openssl
//! s_server) for HTTPS.

use cloudstack_api::{Client, ClientConfig, Credentials, Error, HostStatus, Params, ResourceState};
use std::io::{Read, Write};
use std::time::Duration;
use test_support::cloudstack::{CloudStackDouble, DoubleHost};

fn config(cs: &CloudStackDouble) -> ClientConfig {
    let mut cfg = ClientConfig::new(
        cs.endpoint(),
        Credentials::new(cs.api_key(), cs.secret_key()),
    );
    cfg.retry_backoff = Duration::from_millis(20);
    cfg.job_poll_interval = Duration::from_millis(20);
    cfg.request_timeout = Duration::from_secs(5);
    cfg
}

fn client(cs: &CloudStackDouble) -> Client {
    Client::new(config(cs)).unwrap()
}

/// A zone, a pod, two clusters, `n` hosts alternating between them.
fn populate(cs: &CloudStackDouble, n: usize) -> (Vec<String>, Vec<String>) {
    let z = cs.add_zone("z1");
    let p = cs.add_pod("p1", &z);
    let clusters = vec![cs.add_cluster("c1", &p), cs.add_cluster("c2", &p)];
    let hosts = (0..n)
        .map(|i| {
            cs.add_host(DoubleHost::kvm(
                &format!("kvm{i}"),
                &format!("127.0.1.{}", i + 1),
                &clusters[i % 2],
            ))
        })
        .collect();
    (clusters, hosts)
}

#[tokio::test]
async fn lists_every_object_with_its_fields() {
    let cs = CloudStackDouble::start().unwrap();
    let (clusters, hosts) = populate(&cs, 3);
    cs.update_host(&hosts[1], |h| {
        h.state = "Alert".into();
        h.resourcestate = "Maintenance".into();
        h.ha_enable = true;
        h.ha_state = "Available".into();
        h.ha_provider = "kvmhaprovider".into();
        h.oobm_port = "6230".into();
    });
    let c = client(&cs);
    let zones = c.list_zones().await.unwrap();
    assert_eq!(zones.len(), 1);
    assert_eq!(zones[0].allocationstate.as_str(), "Enabled");
    assert_eq!(c.list_pods().await.unwrap()[0].zoneid, zones[0].id);
    let cl = c.list_clusters().await.unwrap();
    assert_eq!(cl.len(), 2);
    assert_eq!(cl[0].managedstate.as_ref().unwrap().as_str(), "Managed");
    let all = c.list_kvm_hosts(None).await.unwrap();
    assert_eq!(all.len(), 3);
    let h1 = all.iter().find(|h| h.id == hosts[1]).unwrap();
    assert_eq!(h1.state, HostStatus::Alert);
    assert_eq!(h1.resourcestate, ResourceState::Maintenance);
    let ha = h1.hostha.as_ref().unwrap();
    assert!(ha.haenable);
    assert_eq!(ha.haprovider.as_deref(), Some("kvmhaprovider"));
    let oobm = h1.outofbandmanagement.as_ref().unwrap();
    assert!(oobm.enabled);
    assert_eq!(oobm.port.as_deref(), Some("6230"));
    assert_eq!(oobm.address.as_deref(), Some("127.0.1.2"));
    assert_eq!(h1.clusterid.as_deref(), Some(clusters[1].as_str()));
    assert!(h1.lastpinged.is_some() && h1.managementserverid.is_some());
    assert!(h1.podid.is_some() && h1.zoneid.is_some());
    let in_c1 = c.list_kvm_hosts(Some(&clusters[0])).await.unwrap();
    assert_eq!(in_c1.len(), 2);
    let last = cs.calls().pop().unwrap();
    assert_eq!(last.command, "listHosts");
    assert_eq!(last.params["type"], "Routing");
    assert_eq!(last.params["hypervisor"], "KVM");
    assert_eq!(last.params["clusterid"], clusters[0]);
    assert_eq!(last.params["signatureversion"], "3");
    assert!(last.params.contains_key("expires"));
    assert!(cs.rejections().is_empty());
}

#[tokio::test]
async fn pages_until_every_item_is_read() {
    let cs = CloudStackDouble::start().unwrap();
    populate(&cs, 50);
    let mut cfg = config(&cs);
    cfg.page_size = 7;
    let c = Client::new(cfg).unwrap();
    let hosts = c.list_kvm_hosts(None).await.unwrap();
    assert_eq!(hosts.len(), 50);
    let mut ids: Vec<_> = hosts.iter().map(|h| h.id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 50);
    let pages: Vec<String> = cs
        .calls_of("listHosts")
        .iter()
        .map(|c| {
            assert_eq!(c.params["pagesize"], "7");
            c.params["page"].clone()
        })
        .collect();
    assert_eq!(pages, ["1", "2", "3", "4", "5", "6", "7", "8"]);
    // An empty listing is `{}` in CloudStack: zero items, one call.
    let empty = CloudStackDouble::start().unwrap();
    assert!(client(&empty)
        .list_kvm_hosts(None)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(empty.calls_of("listHosts").len(), 1);
}

#[tokio::test]
async fn wrong_secret_is_auth_refused_and_runs_nothing() {
    let cs = CloudStackDouble::start().unwrap();
    populate(&cs, 1);
    let mut cfg = config(&cs);
    cfg.credentials = Credentials::new(cs.api_key(), "not-the-secret");
    let err = Client::new(cfg).unwrap().list_zones().await.unwrap_err();
    match &err {
        Error::AuthRefused { errorcode: 401, .. } => {}
        other => panic!("expected AuthRefused 401, got {other:?}"),
    }
    assert!(!format!("{err} {err:?}").contains("not-the-secret"));
    assert!(cs.calls().is_empty());
    assert_eq!(cs.rejections()[0].reason, "bad signature");
    // A key the double does not know.
    let mut cfg = config(&cs);
    cfg.credentials = Credentials::new("someone-else", cs.secret_key());
    let err = Client::new(cfg).unwrap().list_zones().await.unwrap_err();
    assert!(
        matches!(err, Error::AuthRefused { errorcode: 401, .. }),
        "{err:?}"
    );
    // A command the account may not run: 432.
    let err = client(&cs)
        .call("deleteHost", &Params::new().with("id", "x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::AuthRefused { errorcode: 432, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn secret_never_in_debug_output() {
    let cs = CloudStackDouble::start().unwrap();
    let c = client(&cs);
    let shown = format!("{c:?} {:?}", c.config());
    assert!(!shown.contains(cs.secret_key()), "{shown}");
    assert!(shown.contains("<redacted>"));
}

/// Sends a raw signed GET and returns (status line, body).
fn raw_get(cs: &CloudStackDouble, params: &[(&str, &str)], secret: &str) -> (String, String) {
    let sig = cloudstack_api::sign::signature(secret, params);
    let mut q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", cloudstack_api::sign::encode_value(v)))
        .collect();
    q.push(format!(
        "signature={}",
        cloudstack_api::sign::encode_value(&sig)
    ));
    let mut s = std::net::TcpStream::connect(cs.addr()).unwrap();
    write!(
        s,
        "GET /client/api?{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        q.join("&")
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_string(), body.to_string())
}

#[test]
fn double_checks_expires_and_tampering() {
    let cs = CloudStackDouble::start().unwrap();
    let key = cs.api_key().to_string();
    let secret = cs.secret_key().to_string();
    let base = |expires: &'static str| {
        vec![
            ("apikey", key.clone()),
            ("command", "listZones".to_string()),
            ("expires", expires.to_string()),
            ("response", "json".to_string()),
            ("signatureversion", "3".to_string()),
        ]
    };
    let as_refs = |v: &Vec<(&'static str, String)>| -> Vec<(&str, String)> { v.clone() };
    let run = |v: Vec<(&'static str, String)>, secret: &str| {
        let pairs: Vec<(&str, &str)> = v.iter().map(|(k, v)| (*k, v.as_str())).collect();
        raw_get(&cs, &pairs, secret)
    };
    let (status, body) = run(base("2099-01-01T00:00:00+0000"), &secret);
    assert!(status.contains("200"), "{status} {body}");
    let (status, body) = run(base("2020-01-01T00:00:00+0000"), &secret);
    assert!(status.contains("401"), "{status}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["listzonesresponse"]["errorcode"], 401);
    assert_eq!(cs.rejections().last().unwrap().reason, "expired");
    // Without expires, version 3 is refused.
    let mut no_exp = as_refs(&base("x"));
    no_exp.retain(|(k, _)| *k != "expires");
    let (status, _) = run(no_exp, &secret);
    assert!(status.contains("401"));
    // A parameter changed after signing.
    let params = base("2099-01-01T00:00:00+0000");
    let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let sig = cloudstack_api::sign::signature(&secret, &pairs);
    let mut s = std::net::TcpStream::connect(cs.addr()).unwrap();
    let q: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            let v = if *k == "command" { "listPods" } else { v };
            format!("{k}={}", cloudstack_api::sign::encode_value(v))
        })
        .collect();
    write!(
        s,
        "GET /client/api?{}&signature={} HTTP/1.1\r\nConnection: close\r\n\r\n",
        q.join("&"),
        cloudstack_api::sign::encode_value(&sig)
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 401"), "{resp}");
    assert_eq!(cs.calls().len(), 1, "only the good request ran");
}

#[tokio::test]
async fn random_parameters_pass_the_doubles_check() {
    // Values with every awkward character: the double re-encodes them like
    // CloudStack and must reach the same signature.
    let cs = CloudStackDouble::start().unwrap();
    let c = client(&cs);
    let values = [
        "a b",
        "x+y/z=",
        "~tilde*star",
        "ünï©ødé",
        "%41&b=c",
        "",
        "'\"<>!()",
    ];
    for (i, v) in values.iter().enumerate() {
        let p = Params::new().with(format!("k{i}"), *v).with("Zeta", *v);
        c.call("listZones", &p).await.unwrap();
    }
    assert!(cs.rejections().is_empty(), "{:?}", cs.rejections());
    let calls = cs.calls();
    assert_eq!(calls[3].params["k3"], "ünï©ødé");
}

#[tokio::test]
async fn unreachable_api_is_retried_for_reads_then_reported() {
    let cs = CloudStackDouble::start().unwrap();
    cs.set_unreachable(true);
    let err = client(&cs).list_zones().await.unwrap_err();
    assert!(matches!(err, Error::Unreachable { .. }), "{err:?}");
    assert_eq!(cs.dropped(), 3, "one attempt and two retries");
    // A changing command is never retried.
    let before = cs.dropped();
    let err = client(&cs)
        .call("declareHostAsDegraded", &Params::new().with("id", "x"))
        .await;
    assert!(matches!(err, Err(Error::Unreachable { .. })));
    assert_eq!(cs.dropped() - before, 1);
    // Nothing listening at all.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut cfg = config(&cs);
    cfg.endpoint = format!("http://127.0.0.1:{port}/client/api");
    cfg.read_retries = 0;
    let err = Client::new(cfg).unwrap().list_zones().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unreachable {
                timed_out: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("unreachable"));
}

#[tokio::test]
async fn slow_api_times_out() {
    let cs = CloudStackDouble::start().unwrap();
    cs.set_delay(Duration::from_secs(2));
    let mut cfg = config(&cs);
    cfg.request_timeout = Duration::from_millis(200);
    cfg.read_retries = 0;
    let t = std::time::Instant::now();
    let err = Client::new(cfg).unwrap().list_zones().await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unreachable {
                timed_out: true,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_millis(1500));
}

#[tokio::test]
async fn declare_and_cancel_degraded_as_async_jobs() {
    let cs = CloudStackDouble::start().unwrap();
    let (_, hosts) = populate(&cs, 2);
    let c = client(&cs);
    // CloudStack's precondition: only Alert or Disconnected hosts.
    let err = c.declare_host_as_degraded(&hosts[0]).await.unwrap_err();
    match &err {
        Error::JobFailed {
            errorcode: 431,
            errortext,
            ..
        } => {
            assert!(errortext.contains("Up status"), "{errortext}")
        }
        other => panic!("expected JobFailed, got {other:?}"),
    }
    assert_eq!(cs.host(&hosts[0]).unwrap().resourcestate, "Enabled");
    cs.update_host(&hosts[0], |h| h.state = "Disconnected".into());
    cs.clear_calls();
    let h = c.declare_host_as_degraded(&hosts[0]).await.unwrap();
    assert_eq!(h.resourcestate, ResourceState::Degraded);
    assert_eq!(cs.host(&hosts[0]).unwrap().resourcestate, "Degraded");
    let cmds: Vec<String> = cs.calls().into_iter().map(|c| c.command).collect();
    assert_eq!(
        cmds,
        [
            "declareHostAsDegraded",
            "queryAsyncJobResult",
            "queryAsyncJobResult"
        ]
    );
    assert_eq!(cs.calls()[0].params["id"], hosts[0]);
    let h = c.cancel_host_as_degraded(&hosts[0]).await.unwrap();
    assert_eq!(h.resourcestate, ResourceState::Enabled);
    // Cancel on a host that is not Degraded fails with CloudStack's reason.
    let err = c.cancel_host_as_degraded(&hosts[1]).await.unwrap_err();
    assert!(
        matches!(err, Error::JobFailed { errorcode: 431, .. }),
        "{err:?}"
    );
    // Unknown host: a parameter error straight away.
    let err = c
        .declare_host_as_degraded("no-such-host")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Api {
                errorcode: 431,
                cserrorcode: Some(4350),
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn job_polling_is_bounded() {
    let cs = CloudStackDouble::start().unwrap();
    let (_, hosts) = populate(&cs, 1);
    cs.update_host(&hosts[0], |h| h.state = "Alert".into());
    cs.set_job_pending_polls(1_000_000);
    let mut cfg = config(&cs);
    cfg.job_timeout = Duration::from_millis(300);
    let err = Client::new(cfg)
        .unwrap()
        .declare_host_as_degraded(&hosts[0])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::JobTimeout { .. }), "{err:?}");
    let polls = cs.calls_of("queryAsyncJobResult").len();
    assert!((2..=30).contains(&polls), "{polls} polls");
}

#[tokio::test]
async fn list_configurations_by_name() {
    let cs = CloudStackDouble::start().unwrap();
    cs.set_configuration(
        "reboot.host.and.alert.management.on.heartbeat.timeout",
        "false",
    );
    let c = client(&cs);
    let got = c.list_configurations("ping.interval").await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].value.as_deref(), Some("60"));
    let got = c.list_configurations("heartbeat.timeout").await.unwrap();
    assert_eq!(got[0].value.as_deref(), Some("false"));
}

/// A one-shot HTTP server answering `body` with `status`.
fn canned_server(status: u16, body: &'static str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in l.incoming().take(4) {
            let mut conn = conn.unwrap();
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let _ = write!(
                conn,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/client/api")
}

#[tokio::test]
async fn malformed_answers_are_named() {
    for (status, body, want) in [
        (200, "<html>proxy error</html>", "not JSON"),
        (200, r#"{"somethingelse":{}}"#, "no \"listzonesresponse\""),
        (200, r#"{"listzonesresponse":{"count":"many"}}"#, "count"),
        (
            200,
            r#"{"listzonesresponse":{"count":1,"zone":{"id":"x"}}}"#,
            "not a list",
        ),
        (
            200,
            r#"{"listzonesresponse":{"count":1,"zone":[{"name":"no id"}]}}"#,
            "zone",
        ),
    ] {
        let endpoint = canned_server(status, body);
        let mut cfg = ClientConfig::new(endpoint, Credentials::new("k", "s"));
        cfg.read_retries = 0;
        let err = Client::new(cfg).unwrap().list_zones().await.unwrap_err();
        assert!(matches!(err, Error::Malformed { .. }), "{body}: {err:?}");
        assert!(err.to_string().contains(want), "{body}: {err}");
    }
    let endpoint = canned_server(
        530,
        r#"{"listzonesresponse":{"uuidList":[],"errorcode":530,"cserrorcode":4250,"errortext":"boom"}}"#,
    );
    let err = Client::new(ClientConfig::new(endpoint, Credentials::new("k", "s")))
        .unwrap()
        .list_zones()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Api { errorcode: 530, cserrorcode: Some(4250), errortext, .. } if errortext == "boom"),
        "{err:?}"
    );
}

#[test]
fn bad_configuration_is_refused() {
    let creds = Credentials::new("k", "s");
    for endpoint in ["ftp://x/client/api", "not a url", "http://x/client/api?a=b"] {
        let err = Client::new(ClientConfig::new(endpoint, creds.clone())).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{endpoint}: {err:?}");
    }
    let mut cfg = ClientConfig::new("https://127.0.0.1/client/api", creds.clone());
    cfg.ca_file = Some("/nonexistent/ca.pem".into());
    assert!(matches!(Client::new(cfg).unwrap_err(), Error::Config(_)));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let mut cfg = ClientConfig::new("https://127.0.0.1/client/api", creds);
    cfg.ca_file = Some(junk);
    assert!(matches!(Client::new(cfg).unwrap_err(), Error::Config(_)));
}

/// `openssl s_server` with a certificate from a test CA, stopped by PID.
struct TlsServer {
    child: std::process::Child,
    port: u16,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill(); // by PID: the child we started
        let _ = self.child.wait();
    }
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let st = std::process::Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is needed for the HTTPS test (Debian package openssl)");
    assert!(st.success(), "openssl {args:?}");
}

fn tls_server() -> TlsServer {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=hactl test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "srv.key",
            "-out",
            "srv.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "srv.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "srv.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let child = std::process::Command::new("openssl")
        .current_dir(d)
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "srv.pem",
            "-key",
            "srv.key",
            "-www",
            "-quiet",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl s_server starts");
    let server = TlsServer {
        child,
        port,
        ca: d.join("ca.pem"),
        _dir: dir,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "openssl s_server did not listen"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    server
}

#[tokio::test]
async fn https_verifies_the_server_certificate() {
    let tls = tls_server();
    let endpoint = format!("https://127.0.0.1:{}/client/api", tls.port);
    // Not signed by a CA we trust: refused, and the error says why.
    let mut cfg = ClientConfig::new(endpoint.clone(), Credentials::new("k", "s"));
    cfg.read_retries = 0;
    let err = Client::new(cfg.clone())
        .unwrap()
        .list_zones()
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Unreachable {
                timed_out: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().to_lowercase().contains("certificate"),
        "{err}"
    );
    // With the CA file the handshake succeeds; s_server's HTML status page is
    // then (correctly) not a CloudStack answer.
    cfg.ca_file = Some(tls.ca.clone());
    let err = Client::new(cfg).unwrap().list_zones().await.unwrap_err();
    assert!(matches!(err, Error::Malformed { .. }), "{err:?}");
}

/// The defaults README.md and API.md state.
#[test]
fn documented_defaults() {
    let cfg = ClientConfig::new("http://127.0.0.1/client/api", Credentials::new("k", "s"));
    assert_eq!(cfg.request_timeout, Duration::from_secs(10));
    assert_eq!(cfg.read_retries, 2);
    assert_eq!(cfg.page_size, 500);
    assert_eq!(cfg.job_poll_interval, Duration::from_secs(1));
    assert_eq!(cfg.job_timeout, Duration::from_secs(300));
    assert_eq!(cfg.expires_after, Duration::from_secs(300));
    assert!(cfg.ca_file.is_none());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]
    /// Random names and values through the client and the double's decoding
    /// and re-encoding: every request passes and arrives unchanged.
    #[test]
    fn random_requests_pass_the_doubles_check(
        params in proptest::collection::btree_map("[a-z][a-z0-9]{0,9}", proptest::prelude::any::<String>(), 0..6)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cs = CloudStackDouble::start().unwrap();
        let c = client(&cs);
        let mut p = Params::new();
        for (k, v) in &params {
            // Names the client sets itself are not free parameters.
            if !["command", "response", "apikey", "signature", "signatureversion", "expires", "page", "pagesize"].contains(&k.as_str()) {
                p.set(k.clone(), v.clone());
            }
        }
        rt.block_on(c.call("listZones", &p)).unwrap();
        proptest::prop_assert!(cs.rejections().is_empty(), "{:?}", cs.rejections());
        let call = cs.calls().pop().unwrap();
        for (k, v) in p.pairs() {
            proptest::prop_assert_eq!(&call.params[k], v);
        }
    }
}
