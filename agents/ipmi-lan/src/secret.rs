//! Password and Kg bytes that never show up in logs or error messages.

use zeroize::Zeroize;

/// Secret bytes (an IPMI password or a BMC key Kg).
///
/// `Debug` and `Display` print `[redacted]`; the bytes are overwritten with
/// zeros when the value is dropped. There is deliberately no `Clone`, so the
/// bytes live in exactly one place.
pub struct Secret(Vec<u8>);

impl Secret {
    /// Wraps the given bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Secret(bytes)
    }

    /// Number of secret bytes (not secret itself: it is needed to validate
    /// lengths against the protocol limits).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no bytes (an empty password).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Copy of the bytes zero-padded to `N` (IPMI stores passwords as
    /// fixed-size, zero-padded fields). The caller has checked the length.
    pub(crate) fn padded<const N: usize>(&self) -> Padded<N> {
        let mut out = [0u8; N];
        let n = self.0.len().min(N);
        out[..n].copy_from_slice(&self.0[..n]);
        Padded(out)
    }
}

/// A fixed-size copy of secret bytes, zeroised on drop.
pub(crate) struct Padded<const N: usize>(pub(crate) [u8; N]);

impl<const N: usize> Drop for Padded<N> {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.as_bytes().to_vec())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s.into_bytes())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(v: Vec<u8>) -> Self {
        Secret(v)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_bytes() {
        let s = Secret::from("hunter2");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn padded_copies_and_pads_with_zeros() {
        let s = Secret::from("abc");
        let p = s.padded::<5>();
        assert_eq!(&p.0, b"abc\0\0");
    }
}
