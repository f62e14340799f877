//! The CloudStack API double over raw HTTP, signed by a signer written here
//! (HMAC-SHA1 over the sorted, lower-cased, Java-URL-encoded query), so the
//! double is checked without the client crate.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha1::Sha1;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use test_support::cloudstack::{CloudStackDouble, DoubleHost};

fn enc(v: &str) -> String {
    v.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-*_".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The signed query string for `params` (plus apikey, response, version 3).
fn query(cs: &CloudStackDouble, params: &[(&str, &str)]) -> String {
    let mut all: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    all.push(("apikey".into(), cs.api_key().into()));
    all.push(("response".into(), "json".into()));
    all.push(("signatureversion".into(), "3".into()));
    all.push(("expires".into(), "2100-01-01T00:00:00+0000".into()));
    all.sort();
    let joined = all
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let mut mac = Hmac::<Sha1>::new_from_slice(cs.secret_key().as_bytes()).unwrap();
    mac.update(joined.to_lowercase().as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    format!("{joined}&signature={}", enc(&sig))
}

/// One request on a connection; returns (status, JSON body).
fn send(conn: &mut BufReader<TcpStream>, request: &str) -> (u16, Value) {
    conn.get_mut().write_all(request.as_bytes()).unwrap();
    let mut status = String::new();
    conn.read_line(&mut status).unwrap();
    let code: u16 = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        conn.read_line(&mut h).unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    conn.read_exact(&mut body).unwrap();
    (code, serde_json::from_slice(&body).unwrap())
}

fn get(cs: &CloudStackDouble, params: &[(&str, &str)]) -> (u16, Value) {
    let mut c = BufReader::new(TcpStream::connect(cs.addr()).unwrap());
    send(
        &mut c,
        &format!(
            "GET /client/api?{} HTTP/1.1\r\nHost: x\r\n\r\n",
            query(cs, params)
        ),
    )
}

fn setup(n: usize) -> (CloudStackDouble, Vec<String>, Vec<String>) {
    let cs = CloudStackDouble::start().unwrap();
    let z = cs.add_zone("z1");
    let p = cs.add_pod("p1", &z);
    let clusters = vec![cs.add_cluster("c1", &p), cs.add_cluster("c2", &p)];
    let hosts = (0..n)
        .map(|i| {
            cs.add_host(DoubleHost::kvm(
                &format!("h{i}"),
                &format!("127.0.2.{i}"),
                &clusters[i % 2],
            ))
        })
        .collect();
    (cs, clusters, hosts)
}

#[test]
fn serves_the_real_shapes_with_paging_and_filters() {
    let (cs, clusters, hosts) = setup(5);
    let (code, v) = get(
        &cs,
        &[
            ("command", "listHosts"),
            ("type", "Routing"),
            ("hypervisor", "KVM"),
        ],
    );
    assert_eq!(code, 200);
    let r = &v["listhostsresponse"];
    assert_eq!(r["count"], 5);
    let h = &r["host"][0];
    for field in [
        "id",
        "name",
        "state",
        "resourcestate",
        "ipaddress",
        "clusterid",
        "podid",
        "zoneid",
        "lastpinged",
        "managementserverid",
        "type",
        "hypervisor",
    ] {
        assert!(h[field].is_string(), "{field} in {h}");
    }
    assert_eq!(h["outofbandmanagement"]["enabled"], true);
    assert_eq!(h["outofbandmanagement"]["port"], "623");
    assert_eq!(h["outofbandmanagement"]["password"], "x****");
    assert_eq!(h["hostha"]["haenable"], false);
    // Pages: count is the total, each page holds pagesize items.
    let (_, v) = get(
        &cs,
        &[("command", "listHosts"), ("page", "3"), ("pagesize", "2")],
    );
    assert_eq!(v["listhostsresponse"]["count"], 5);
    assert_eq!(v["listhostsresponse"]["host"].as_array().unwrap().len(), 1);
    // Filters.
    let (_, v) = get(
        &cs,
        &[("command", "listHosts"), ("clusterid", &clusters[1])],
    );
    assert_eq!(v["listhostsresponse"]["count"], 2);
    // Move, remove, change.
    cs.move_host(&hosts[0], &clusters[1]);
    cs.remove_host(&hosts[1]);
    cs.update_host(&hosts[2], |h| h.state = "Alert".into());
    let (_, v) = get(
        &cs,
        &[("command", "listHosts"), ("clusterid", &clusters[1])],
    );
    assert_eq!(
        v["listhostsresponse"]["count"], 2,
        "h0 moved in, h1 removed"
    );
    let (_, v) = get(&cs, &[("command", "listHosts"), ("state", "Alert")]);
    assert_eq!(v["listhostsresponse"]["host"][0]["id"], hosts[2]);
    // Empty list: {}.
    let (_, v) = get(&cs, &[("command", "listHosts"), ("state", "Down")]);
    assert_eq!(v["listhostsresponse"], serde_json::json!({}));
    let (_, v) = get(&cs, &[("command", "listClusters")]);
    assert_eq!(
        v["listclustersresponse"]["cluster"][0]["managedstate"],
        "Managed"
    );
    let calls = cs.calls();
    assert_eq!(calls.len(), 7);
    assert_eq!(calls[1].params["page"], "3");
    assert!(!calls[0].params.contains_key("signature"));
}

#[test]
fn keep_alive_post_and_errors() {
    let (cs, _, hosts) = setup(1);
    let mut c = BufReader::new(TcpStream::connect(cs.addr()).unwrap());
    for _ in 0..3 {
        let (code, _) = send(
            &mut c,
            &format!(
                "GET /client/api?{} HTTP/1.1\r\n\r\n",
                query(&cs, &[("command", "listZones")])
            ),
        );
        assert_eq!(code, 200);
    }
    // A form POST is verified the same way.
    let body = query(&cs, &[("command", "listPods")]);
    let (code, _) = send(
        &mut c,
        &format!(
            "POST /client/api HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(code, 200);
    assert_eq!(cs.calls().len(), 4);
    // Unknown command: 432 in CloudStack's error shape.
    let (code, v) = get(&cs, &[("command", "fooBar")]);
    assert_eq!(code, 432);
    assert_eq!(v["foobarresponse"]["errorcode"], 432);
    assert!(v["foobarresponse"]["errortext"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    // declareHostAsDegraded on an Up host: the job fails with the reason.
    let (code, v) = get(
        &cs,
        &[("command", "declareHostAsDegraded"), ("id", &hosts[0])],
    );
    assert_eq!(code, 200);
    let job = v["declarehostasdegradedresponse"]["jobid"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, v) = get(&cs, &[("command", "queryAsyncJobResult"), ("jobid", &job)]);
    assert_eq!(v["queryasyncjobresultresponse"]["jobstatus"], 0);
    let (_, v) = get(&cs, &[("command", "queryAsyncJobResult"), ("jobid", &job)]);
    let r = &v["queryasyncjobresultresponse"];
    assert_eq!(r["jobstatus"], 2);
    assert_eq!(r["jobresult"]["errorcode"], 431);
    assert_eq!(cs.host(&hosts[0]).unwrap().resourcestate, "Enabled");
}

#[test]
fn unreachable_and_slow() {
    let (cs, _, _) = setup(0);
    cs.set_unreachable(true);
    let mut s = TcpStream::connect(cs.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(
        s,
        "GET /client/api?{} HTTP/1.1\r\n\r\n",
        query(&cs, &[("command", "listZones")])
    );
    let mut buf = Vec::new();
    assert_eq!(
        s.read_to_end(&mut buf).unwrap_or(0),
        0,
        "closed without an answer"
    );
    assert!(cs.dropped() >= 1);
    assert!(cs.calls().is_empty());
    cs.set_unreachable(false);
    cs.set_delay(Duration::from_millis(300));
    let t = std::time::Instant::now();
    assert_eq!(get(&cs, &[("command", "listZones")]).0, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}
