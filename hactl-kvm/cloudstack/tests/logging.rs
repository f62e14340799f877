//! Nothing the client logs (ours and the HTTP stack's, at TRACE) carries the
//! secret key or a request signature, in success, retry and failure paths.

use cloudstack_api::{Client, ClientConfig, Credentials, Params};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_support::cloudstack::{CloudStackDouble, DoubleHost};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn logs_never_carry_secrets() {
    let captured = Captured::default();
    let sink = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let cs = CloudStackDouble::start().unwrap();
    let z = cs.add_zone("z");
    let p = cs.add_pod("p", &z);
    let c = cs.add_cluster("c", &p);
    let h = cs.add_host(DoubleHost::kvm("h", "127.0.3.1", &c));
    cs.update_host(&h, |h| h.state = "Alert".into());
    let mut cfg = ClientConfig::new(
        cs.endpoint(),
        Credentials::new(cs.api_key(), cs.secret_key()),
    );
    cfg.retry_backoff = Duration::from_millis(10);
    cfg.job_poll_interval = Duration::from_millis(10);
    let client = Client::new(cfg.clone()).unwrap();
    rt.block_on(async {
        client.list_kvm_hosts(None).await.unwrap();
        client.declare_host_as_degraded(&h).await.unwrap();
        client
            .call("listZones", &Params::new().with("name", "z"))
            .await
            .unwrap();
        cs.set_unreachable(true);
        client.list_zones().await.unwrap_err();
        cs.set_unreachable(false);
        let mut wrong = cfg.clone();
        wrong.credentials = Credentials::new(cs.api_key(), "another-secret-value");
        Client::new(wrong).unwrap().list_zones().await.unwrap_err();
    });
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("CloudStack request"),
        "our debug lines are captured"
    );
    assert!(text.contains("retrying"), "the retry warning is captured");
    for secret in [cs.secret_key(), "another-secret-value", "signature="] {
        assert!(!text.contains(secret), "{secret:?} in the logs:\n{text}");
    }
}
