//! A secret read from the command line or the environment (a bearer
//! token, a credential) that never shows in `Debug` output or logs.

use std::fmt;

/// A string that prints as `[redacted]`. Read it with [`Secret::expose`],
/// at the one place that compares or sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `given` is this secret, compared in constant time.
    pub fn matches(&self, given: &str) -> bool {
        use subtle::ConstantTimeEq;
        given.len() == self.0.len() && bool::from(given.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Secret(text.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_the_value() {
        let secret: Secret = "hunter2-0123456789abcdef".parse().unwrap();
        let shown = format!("{secret:?} {:?} {:#?}", Some(&secret), vec![secret.clone()]);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(secret.expose(), "hunter2-0123456789abcdef");
    }

    #[test]
    fn only_the_same_text_matches() {
        let secret = Secret::new("token-0123456789");
        assert!(secret.matches("token-0123456789"));
        assert!(!secret.matches("token-012345678"));
        assert!(!secret.matches("token-0123456780"));
    }
}
