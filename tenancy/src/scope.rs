//! A key's scope: the model names it reaches, as patterns where `*` stands
//! for any run of characters (`fraud-*`, `*-staging`, `*`).

use serde::{Deserialize, Serialize};

/// Most patterns one key may carry.
pub const MAX_PATTERNS: usize = 64;

/// The model name patterns of a key. An empty scope reaches no model.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Scope {
    patterns: Vec<String>,
}

impl Scope {
    /// Every model.
    pub fn everything() -> Scope {
        Scope { patterns: vec!["*".to_string()] }
    }

    /// A scope of `patterns`, each checked: 1 to 128 of the characters of a
    /// model name (letters, digits, `-`, `_`, `.`) or `*`.
    pub fn new(patterns: Vec<String>) -> Result<Scope, String> {
        if patterns.is_empty() {
            return Err("a scope needs at least one model name pattern (use '*' for every model)".into());
        }
        if patterns.len() > MAX_PATTERNS {
            return Err(format!("a scope holds at most {MAX_PATTERNS} patterns, not {}", patterns.len()));
        }
        for pattern in &patterns {
            let valid = pattern.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '*'));
            if pattern.is_empty() || pattern.len() > 128 || !valid {
                return Err(format!(
                    "scope pattern '{pattern}' is invalid: use 1 to 128 letters, digits, '-', '_', '.' or '*'"
                ));
            }
        }
        Ok(Scope { patterns })
    }

    /// The patterns.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether `model` matches one of the patterns.
    pub fn covers(&self, model: &str) -> bool {
        self.patterns.iter().any(|pattern| glob_match(pattern.as_bytes(), model.as_bytes()))
    }

    /// Whether this scope reaches every model.
    pub fn is_everything(&self) -> bool {
        self.patterns.iter().any(|p| p.bytes().all(|b| b == b'*'))
    }
}

/// `*`-only glob matching, linear in practice: on a mismatch it goes back
/// to just after the last `*` and lets that star swallow one more byte.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(patterns: &[&str]) -> Scope {
        Scope::new(patterns.iter().map(|p| p.to_string()).collect()).unwrap()
    }

    #[test]
    fn patterns_match_as_globs() {
        let fraud = scope(&["fraud-*"]);
        assert!(fraud.covers("fraud-1"));
        assert!(fraud.covers("fraud-"));
        assert!(!fraud.covers("fraud"));
        assert!(!fraud.covers("antifraud-1"));
        let middle = scope(&["a*b*c"]);
        assert!(middle.covers("abc"));
        assert!(middle.covers("axxbyyc"));
        assert!(!middle.covers("axxbyy"));
        assert!(!middle.covers("xabc"));
        let exact = scope(&["clf"]);
        assert!(exact.covers("clf"));
        assert!(!exact.covers("clf2"));
        assert!(scope(&["x", "*-staging"]).covers("cnn-staging"));
        assert!(scope(&["*"]).covers("anything"));
        assert!(scope(&["*"]).is_everything());
        assert!(!fraud.is_everything());
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Scope::new(vec![]).is_err());
        assert!(Scope::new(vec!["a/b".into()]).is_err());
        assert!(Scope::new(vec!["".into()]).is_err());
        assert!(Scope::new(vec!["x".repeat(129)]).is_err());
        assert!(Scope::new(vec!["a".into(); MAX_PATTERNS + 1]).is_err());
    }
}
