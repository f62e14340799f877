//! A secret value (password, key) that never shows itself: `Debug`/`Display` print
//! `[hidden]`, and the memory is zeroed when it is dropped.

use std::fmt;

use zeroize::Zeroizing;

/// A password or key. Only [`Secret::expose`] gives the bytes, for the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Secret {
        Secret(Zeroizing::new(value))
    }

    /// The secret text, for building a protocol message. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([hidden])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints_itself() {
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "[hidden] Secret([hidden])");
        assert_eq!(s.expose(), "hunter2");
    }
}
