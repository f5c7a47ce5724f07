//! A secret read from the command line or the environment (a bearer
//! token, a credential) that never shows in `Debug` output or logs, and
//! how a presented token is read and compared with one.

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
        same_secret(given, &self.0)
    }
}

/// Whether `given` equals `expected`, compared in constant time (the
/// lengths, which a token's format fixes, may leak).
pub fn same_secret(given: &str, expected: &str) -> bool {
    use subtle::ConstantTimeEq;
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// The token of an `Authorization: Bearer <token>` value (an HTTP header
/// or gRPC metadata).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    // The scheme is case-insensitive (RFC 7235).
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
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
    fn the_bearer_scheme_is_read_as_rfc_7235_says() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER\tabc "), Some("abc"));
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("abc"), None);
    }

    #[test]
    fn only_the_same_text_matches() {
        let secret = Secret::new("token-0123456789");
        assert!(secret.matches("token-0123456789"));
        assert!(!secret.matches("token-012345678"));
        assert!(!secret.matches("token-0123456780"));
    }
}
