//! API keys: how one is issued, how it is stored (a hash, never the key),
//! and how a presented key is checked.
//!
//! A key reads `maas_<id>_<secret>`: a 12-hex-digit id, by which its record
//! is found, and 64 hex digits (256 random bits) of secret. The record
//! keeps the sha256 of the whole key; a key that random needs no slow hash.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::limits::Limits;
use crate::role::Role;
use crate::scope::Scope;

const PREFIX: &str = "maas_";
const ID_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

/// A key as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key's public id (also in the key itself).
    pub id: String,
    /// The tenant the key belongs to; usage and tenant limits count per tenant.
    pub tenant: String,
    /// What the key may do.
    pub role: Role,
    /// Which models it reaches.
    pub scope: Scope,
    /// Its rate limits and quotas.
    #[serde(default)]
    pub limits: Limits,
    /// Priority of its requests that ask for none (Triton's: 1 is the
    /// highest; none means the lowest level).
    #[serde(default)]
    pub priority: Option<u32>,
    /// What the key is for.
    #[serde(default)]
    pub description: String,
    /// When it was created, seconds since the epoch.
    pub created_unix: u64,
    /// sha256 of the whole key, hex.
    pub hash: String,
}

/// What a new key is made of, before it is issued.
#[derive(Debug, Clone)]
pub struct KeySpec {
    /// The tenant.
    pub tenant: String,
    /// The role.
    pub role: Role,
    /// The scope.
    pub scope: Scope,
    /// Limits.
    pub limits: Limits,
    /// Default priority.
    pub priority: Option<u32>,
    /// Description.
    pub description: String,
}

/// A freshly issued key: the secret text (shown once) and its record.
#[derive(Debug)]
pub struct IssuedKey {
    /// The key to hand to its user.
    pub key: String,
    /// What is stored.
    pub record: KeyRecord,
}

/// Checks a tenant name: 1 to 64 letters, digits, `-`, `_` or `.`.
pub fn check_tenant(tenant: &str) -> Result<(), String> {
    let valid = tenant.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if tenant.is_empty() || tenant.len() > 64 || !valid {
        return Err(format!("tenant name '{tenant}' is invalid: use 1 to 64 letters, digits, '-', '_' or '.'"));
    }
    Ok(())
}

/// Issues a new random key for `spec`.
pub fn issue(spec: KeySpec) -> Result<IssuedKey, String> {
    check_tenant(&spec.tenant)?;
    spec.limits.check()?;
    if spec.description.len() > 256 {
        return Err("a key's description holds at most 256 bytes".into());
    }
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut id);
    rand::rng().fill_bytes(&mut secret);
    let id = hex::encode(id);
    let key = format!("{PREFIX}{id}_{}", hex::encode(secret));
    let created_unix = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default();
    let record = KeyRecord {
        id,
        tenant: spec.tenant,
        role: spec.role,
        scope: spec.scope,
        limits: spec.limits,
        priority: spec.priority,
        description: spec.description,
        created_unix,
        hash: digest(&key),
    };
    Ok(IssuedKey { key, record })
}

/// The id a presented key names, if it has the shape of a key.
pub fn id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    let hex_digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex_digits(id, ID_BYTES * 2) && hex_digits(secret, SECRET_BYTES * 2)).then_some(id)
}

impl KeyRecord {
    /// Whether `key` is this record's key (constant time).
    pub fn matches(&self, key: &str) -> bool {
        bool::from(digest(key).as_bytes().ct_eq(self.hash.as_bytes()))
    }
}

fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> KeySpec {
        KeySpec {
            tenant: "team-a".into(),
            role: Role::Inference,
            scope: Scope::new(vec!["a-*".into()]).unwrap(),
            limits: Limits::default(),
            priority: None,
            description: String::new(),
        }
    }

    #[test]
    fn an_issued_key_matches_its_record_and_nothing_else() {
        let issued = issue(spec()).unwrap();
        assert_eq!(id_of(&issued.key), Some(issued.record.id.as_str()));
        assert!(issued.record.matches(&issued.key));
        assert!(!issued.record.hash.contains(&issued.key[20..]), "the record holds no part of the secret");
        let mut forged = issued.key.clone();
        forged.pop();
        forged.push(if issued.key.ends_with('0') { '1' } else { '0' });
        assert!(!issued.record.matches(&forged));
        let other = issue(spec()).unwrap();
        assert_ne!(other.record.id, issued.record.id);
        assert!(!issued.record.matches(&other.key));
    }

    #[test]
    fn only_key_shaped_text_has_an_id() {
        let issued = issue(spec()).unwrap();
        assert!(id_of(&issued.key).is_some());
        assert_eq!(id_of("maas_abc_def"), None);
        assert_eq!(id_of("some-admin-token-0123456789"), None);
        assert_eq!(id_of(&issued.key.replace("maas_", "mass_")), None);
        assert_eq!(id_of(&format!("{}0", issued.key)), None);
    }

    #[test]
    fn bad_tenants_are_refused() {
        assert!(issue(KeySpec { tenant: "a b".into(), ..spec() }).is_err());
        assert!(issue(KeySpec { tenant: String::new(), ..spec() }).is_err());
    }
}
