//! The RAKP key exchange, session keys, integrity MACs and AES-CBC-128 of
//! every implemented suite, checked against independent implementations:
//! Python's `hmac`/`hashlib` (following IPMI 2.0 §13.31–13.32 literally) and
//! the `openssl` command. Suite 17 (SHA-256) has no real peer on this
//! machine (ipmi_sim lacks SHA-256), so this is where it is proven.

use std::io::Write;
use std::process::{Command, Stdio};

use ipmi_lan::crypto::{self, AuthAlgorithm, CipherSuite, IntegrityAlgorithm, RakpInputs};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Runs `program args` with `input` on stdin (test vectors only: nothing
/// secret ever goes to argv) and returns stdout.
fn run(program: &str, package: &str, args: &[&str], input: &[u8]) -> Vec<u8> {
    let path = test_support::require(program, package);
    let mut child = Command::new(path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The IPMI 2.0 formulas written out independently in Python.
const PYTHON: &str = r#"
import sys, hmac, hashlib, struct
v = dict(l.split('=', 1) for l in sys.stdin.read().split())
h = {'sha1': hashlib.sha1, 'sha256': hashlib.sha256}[v['hash']]
b = lambda k: bytes.fromhex(v[k])
sidm = struct.pack('<I', int(v['sidm'])); sidc = struct.pack('<I', int(v['sidc']))
rm, rc, guid, kuid, kg, uname = b('rm'), b('rc'), b('guid'), b('kuid'), b('kg'), b('uname')
role = bytes([int(v['role'])]); ulen = bytes([len(uname)])
mac = lambda k, m: hmac.new(k, m, h).digest()
icv_len = {'sha1': 12, 'sha256': 16}[v['hash']]
sik = mac(kg if kg else kuid, rm + rc + role + ulen + uname)
k1 = mac(sik, b'\x01' * h().digest_size)
k2 = mac(sik, b'\x02' * h().digest_size)
out = {
  'rakp2': mac(kuid, sidm + sidc + rm + rc + guid + role + ulen + uname),
  'rakp3': mac(kuid, rc + sidm + role + ulen + uname),
  'sik': sik,
  'rakp4': mac(sik, rm + sidc + guid)[:icv_len],
  'k1': k1, 'k2': k2,
  'msgmac': mac(k1, b('msg'))[:icv_len],
}
for k in sorted(out): print(k + '=' + out[k].hex())
"#;

fn python_vectors(
    hash: &str,
    kuid: &[u8],
    kg: &[u8],
    i: &RakpInputs,
    msg: &[u8],
) -> Vec<(String, Vec<u8>)> {
    let input = format!(
        "hash={hash} sidm={} sidc={} rm={} rc={} guid={} role={} uname={} kuid={} kg={} msg={}",
        i.console_session_id,
        i.bmc_session_id,
        hex(&i.console_random),
        hex(&i.bmc_random),
        hex(&i.bmc_guid),
        i.role,
        hex(i.username),
        hex(kuid),
        hex(kg),
        hex(msg),
    );
    let out = run("python3", "python3", &["-c", PYTHON], input.as_bytes());
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once('=').unwrap();
            (k.to_string(), unhex(v))
        })
        .collect()
}

fn inputs(username: &[u8]) -> RakpInputs<'_> {
    RakpInputs {
        console_session_id: 0xa0b1c2d3,
        bmc_session_id: 0x00000002,
        console_random: *b"0123456789abcdef",
        bmc_random: [0x5a; 16],
        bmc_guid: unhex("a123456789abcdefa123456789abcdef")
            .try_into()
            .unwrap(),
        role: 0x14,
        username,
    }
}

fn check_suite(suite_id: u8, hash: &str, kg: &[u8]) {
    let suite = CipherSuite::from_id(suite_id).unwrap();
    let mut kuid = b"secret".to_vec();
    kuid.resize(20, 0); // IPMI 2.0 passwords are 20-byte zero-padded fields
    let i = inputs(b"admin");
    let msg = b"\x06\xc0\x02\x00\x00\x00\x01\x00\x00\x00\x20\x00session-header-and-payload";
    let expected = python_vectors(hash, &kuid, kg, &i, msg);
    let get = |k: &str| expected.iter().find(|(n, _)| n == k).unwrap().1.clone();

    let auth = suite.auth;
    let key = if kg.is_empty() { &kuid[..] } else { kg };
    let sik = crypto::session_integrity_key(auth, key, &i);
    let k1 = crypto::additional_key(auth, &sik, 1);
    assert_eq!(
        crypto::rakp2_auth_code(auth, &kuid, &i),
        get("rakp2"),
        "suite {suite_id} RAKP2"
    );
    assert_eq!(
        crypto::rakp3_auth_code(auth, &kuid, &i),
        get("rakp3"),
        "suite {suite_id} RAKP3"
    );
    assert_eq!(
        sik,
        get("sik"),
        "suite {suite_id} SIK (kg {})",
        !kg.is_empty()
    );
    assert_eq!(
        crypto::rakp4_icv(auth, &sik, &i),
        get("rakp4"),
        "suite {suite_id} RAKP4"
    );
    assert_eq!(k1, get("k1"), "suite {suite_id} K1");
    assert_eq!(
        crypto::additional_key(auth, &sik, 2),
        get("k2"),
        "suite {suite_id} K2"
    );
    if suite.integrity != IntegrityAlgorithm::None {
        assert_eq!(
            suite.integrity.mac(&k1, msg),
            get("msgmac"),
            "suite {suite_id} MAC"
        );
    }
}

#[test]
fn suite_17_sha256_key_exchange_matches_python() {
    check_suite(17, "sha256", b"");
    let s = CipherSuite::from_id(17).unwrap();
    assert_eq!(s.auth, AuthAlgorithm::HmacSha256);
    assert_eq!(s.auth.hmac_len(), 32);
    assert_eq!(s.integrity.mac_len(), 16);
}

#[test]
fn suites_1_2_3_sha1_key_exchange_matches_python() {
    for id in [1, 2, 3] {
        check_suite(id, "sha1", b"");
    }
}

#[test]
fn kg_replaces_the_password_in_the_session_integrity_key() {
    let mut kg: Vec<u8> = (1..=16).collect();
    kg.resize(20, 0);
    check_suite(3, "sha1", &kg);
    check_suite(17, "sha256", &kg);
    // And it matters: the SIK with Kg differs from the one without.
    let i = inputs(b"admin");
    assert_ne!(
        crypto::session_integrity_key(AuthAlgorithm::HmacSha1, &kg, &i),
        crypto::session_integrity_key(AuthAlgorithm::HmacSha1, b"secret", &i)
    );
}

#[test]
fn aes_cbc_128_matches_openssl_both_ways() {
    let k2: Vec<u8> = (0x10..0x24).collect(); // 20 bytes; AES uses the first 16
    let iv = [0x3c; 16];
    for len in [0usize, 1, 14, 15, 16, 17, 31, 40] {
        let payload: Vec<u8> = (0..len).map(|x| (x * 7) as u8).collect();
        let ours = crypto::aes_cbc_encrypt(&k2, iv, &payload);
        assert_eq!(&ours[..16], &iv);

        // IPMI confidentiality trailer: pad bytes 1, 2, 3, ... then the pad length.
        let pad = (16 - (len + 1) % 16) % 16;
        let mut plain = payload.clone();
        plain.extend((1..=pad).map(|x| x as u8));
        plain.push(pad as u8);
        let key = hex(&k2[..16]);
        let ivh = hex(&iv);
        let theirs = run(
            "openssl",
            "openssl",
            &["enc", "-aes-128-cbc", "-K", &key, "-iv", &ivh, "-nopad"],
            &plain,
        );
        assert_eq!(&ours[16..], &theirs[..], "len {len}");
        assert_eq!(crypto::aes_cbc_decrypt(&k2, &ours).unwrap(), payload);
    }
}

#[test]
fn corrupted_ciphertext_padding_is_rejected() {
    let k2 = [1u8; 20];
    let mut c = crypto::aes_cbc_encrypt(&k2, [2; 16], b"hello");
    let last = c.len() - 1;
    c[last] ^= 0x55;
    assert!(crypto::aes_cbc_decrypt(&k2, &c).is_err());
    assert!(crypto::aes_cbc_decrypt(&k2, &c[..20]).is_err());
}
