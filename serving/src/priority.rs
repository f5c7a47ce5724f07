//! A request's priority level, from Triton's `priority` parameter and the
//! caller's key.
//!
//! Levels run from 1 (the highest) to [`PRIORITY_LEVELS`]; 0 or no
//! parameter means the caller's default. A key's priority is both its
//! default and the highest level it may ask for: a request asking for more
//! gets the key's level, so one tenant cannot jump the queue of another by
//! asking. Callers without a key default to [`DEFAULT_PRIORITY`].

use maas_tenancy::Caller;

pub use crate::batcher::state::PRIORITY_LEVELS;
use crate::error::{ServeError, ServeResult};

/// The level of requests from callers without a key that name none.
pub const DEFAULT_PRIORITY: u32 = 4;

/// The level a request of `caller` asking for `requested` runs at.
pub fn level(requested: Option<u64>, caller: &Caller) -> ServeResult<u32> {
    let ceiling = caller.default_priority().map(|p| p.clamp(1, PRIORITY_LEVELS));
    let requested = match requested {
        None | Some(0) => None,
        Some(level) if level <= u64::from(PRIORITY_LEVELS) => Some(level as u32),
        Some(level) => {
            return Err(ServeError::InvalidRequest(format!(
                "priority {level} is out of range: use 1 (highest) to {PRIORITY_LEVELS}, or 0 for the default"
            )))
        }
    };
    Ok(match (requested, ceiling) {
        (Some(level), Some(ceiling)) => level.max(ceiling),
        (Some(level), None) => level,
        (None, Some(ceiling)) => ceiling,
        (None, None) => DEFAULT_PRIORITY,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use maas_tenancy::{issue, Identity, KeySpec, Limits, Role, Scope};

    use super::*;

    fn key(priority: Option<u32>) -> Caller {
        let spec = KeySpec {
            tenant: "t".into(),
            role: Role::Inference,
            scope: Scope::everything(),
            limits: Limits::default(),
            priority,
            description: String::new(),
        };
        Caller::of_key(Arc::new(issue(spec).unwrap().record))
    }

    #[test]
    fn a_key_sets_the_default_and_the_ceiling() {
        let low = key(Some(6));
        assert_eq!(level(None, &low), Ok(6));
        assert_eq!(level(Some(0), &low), Ok(6));
        assert_eq!(level(Some(1), &low), Ok(6), "a key cannot ask above its level");
        assert_eq!(level(Some(8), &low), Ok(8), "it may ask for less");
        let high = key(Some(1));
        assert_eq!(level(Some(1), &high), Ok(1));
    }

    #[test]
    fn callers_without_a_key_take_the_default_or_what_they_ask() {
        assert_eq!(level(None, &Caller::from(Identity::Anonymous)), Ok(DEFAULT_PRIORITY));
        assert_eq!(level(Some(2), &Caller::from(Identity::Anonymous)), Ok(2));
        assert_eq!(level(None, &key(None)), Ok(DEFAULT_PRIORITY));
        assert!(matches!(level(Some(9), &Caller::from(Identity::Anonymous)), Err(ServeError::InvalidRequest(_))));
    }
}
