//! Request signing exactly as CloudStack's `ApiServer.verifyRequest` checks it.
//!
//! The server takes every query parameter but `signature`, sorts them by name
//! (case-sensitive, as received), joins `name=value` with `&` where each value
//! is re-encoded with Java's `URLEncoder.encode(v, "UTF-8")` with `+` turned
//! into `%20`, lower-cases the whole string and compares
//! `base64(HMAC-SHA1(secret, string))` with the `signature` parameter.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use std::time::SystemTime;

/// Encodes a parameter value as Java's `URLEncoder` does (UTF-8 bytes; `A-Z
/// a-z 0-9 . - * _` kept, everything else `%XX` upper-case hex), with a space
/// as `%20` instead of `+` (CloudStack replaces `+` after encoding).
pub fn encode_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'*' | b'_') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b >> 4)]));
            out.push(char::from(b"0123456789ABCDEF"[usize::from(b & 15)]));
        }
    }
    out
}

/// The string CloudStack signs: parameters but `signature` (any case), sorted
/// by name, `name=encoded value` joined with `&`, lower-cased.
pub fn canonical_string<N: AsRef<str>, V: AsRef<str>>(params: &[(N, V)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_ref(), v.as_ref()))
        .filter(|(n, _)| !n.eq_ignore_ascii_case("signature"))
        .collect();
    // Java's Collections.sort on String compares UTF-16 code units; for the
    // ASCII names CloudStack uses this is byte order.
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let mut s = String::new();
    for (i, (n, v)) in sorted.iter().enumerate() {
        if i > 0 {
            s.push('&');
        }
        s.push_str(n);
        s.push('=');
        s.push_str(&encode_value(v));
    }
    s.to_lowercase()
}

/// `base64(HMAC-SHA1(secret_key, canonical_string(params)))`.
pub fn signature<N: AsRef<str>, V: AsRef<str>>(secret_key: &str, params: &[(N, V)]) -> String {
    let mut mac =
        Hmac::<Sha1>::new_from_slice(secret_key.as_bytes()).expect("HMAC accepts any key length");
    mac.update(canonical_string(params).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// The `expires` value for `signatureversion=3`: `yyyy-MM-dd'T'HH:mm:ssZ` in
/// UTC (`+0000`), the format CloudStack's `DateUtil.parseTZDateString` reads.
pub fn expires_string(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let dt = chrono::DateTime::from_timestamp(i64::try_from(secs).unwrap_or(i64::MAX), 0)
        .unwrap_or_default();
    dt.format("%Y-%m-%dT%H:%M:%S+0000").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_urlencoder_set() {
        assert_eq!(encode_value("aZ09.-*_"), "aZ09.-*_");
        assert_eq!(encode_value("a b+c/d=e~"), "a%20b%2Bc%2Fd%3De%7E");
        assert_eq!(encode_value("é"), "%C3%A9");
    }

    #[test]
    fn expires_format() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_318_248_000);
        assert_eq!(expires_string(t), "2011-10-10T12:00:00+0000");
    }
}
