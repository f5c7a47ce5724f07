//! Loads a node undid because, once measured, they did not fit its budget.
//! The node reports them with what they measured: placement had counted a
//! smaller figure (measured on another node, or estimated), and without the
//! larger one it would plan the same load again and again.

use std::collections::BTreeMap;

use maas_protocol::ModelLoad;

/// The most refused loads remembered; the oldest are forgotten first.
const REMEMBERED: usize = 256;

/// Refused loads, by name and version, with the bytes each measured.
#[derive(Debug, Default)]
pub struct RefusedLoads {
    measured: BTreeMap<(String, u64), (u64, u64)>,
    /// Counts notes, to forget the oldest.
    notes: u64,
}

impl RefusedLoads {
    /// Remembers that a load of `key` measured `bytes` and was undone.
    pub fn note(&mut self, key: (String, u64), bytes: u64) {
        self.notes += 1;
        self.measured.insert(key, (bytes, self.notes));
        if self.measured.len() > REMEMBERED {
            let oldest = self.measured.iter().min_by_key(|(_, (_, note))| *note).map(|(key, _)| key.clone());
            if let Some(oldest) = oldest {
                self.measured.remove(&oldest);
            }
        }
    }

    /// Forgets `key` (it loaded).
    pub fn forget(&mut self, key: &(String, u64)) {
        self.measured.remove(key);
    }

    /// The refused loads, as queue entries with no instance.
    pub fn list(&self) -> Vec<ModelLoad> {
        self.measured
            .iter()
            .map(|((name, version), (bytes, _))| ModelLoad {
                name: name.clone(),
                version: *version,
                queued: 0,
                instances: 0,
                memory_bytes: 0,
                measured_bytes: *bytes,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_loads_are_remembered_until_they_load_and_the_oldest_go_first() {
        let mut refused = RefusedLoads::default();
        refused.note(("a".into(), 1), 10);
        refused.note(("b".into(), 1), 20);
        refused.note(("a".into(), 1), 15);
        let listed: Vec<_> = refused.list().into_iter().map(|l| (l.name, l.measured_bytes)).collect();
        assert_eq!(listed, vec![("a".to_string(), 15), ("b".to_string(), 20)]);
        refused.forget(&("a".into(), 1));
        assert_eq!(refused.list().len(), 1);
        for n in 0..REMEMBERED as u64 {
            refused.note(("m".into(), n), 1);
        }
        assert_eq!(refused.list().len(), REMEMBERED);
        assert!(refused.list().iter().all(|l| l.name != "b"), "the oldest went first");
    }
}
