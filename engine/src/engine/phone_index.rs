//! `PhoneIndex`: workers by exact phone number (after [`normalized_phone`]),
//! for a county desk's look-up. Derived from the records: kept in sync when a
//! registration sets or changes a phone, checked by `check_invariants`,
//! rebuilt on restore, never in snapshots.

use super::Engine;
use crate::error::InvariantViolation;
use crate::model::{Worker, WorkerKey};
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use smallvec::SmallVec;

/// A phone number as the index keys it: spaces and dashes dropped, so
/// `138-1234 5678` and `13812345678` are the same number.
pub fn normalized_phone(phone: &str) -> CompactString {
    phone.chars().filter(|c| !matches!(c, ' ' | '-')).collect()
}

/// Worker keys by normalised phone, each list in ascending key order
/// (registration order).
#[derive(Clone, Default)]
pub(super) struct PhoneIndex {
    by_phone: FxHashMap<CompactString, SmallVec<[WorkerKey; 1]>>,
}

impl PhoneIndex {
    /// The index of `workers` (keys are their positions).
    pub(super) fn bulk_load(workers: &[Worker]) -> Self {
        let mut index = Self::default();
        for (key, w) in workers.iter().enumerate() {
            index.by_phone.entry(normalized_phone(&w.phone)).or_default().push(key as WorkerKey);
        }
        index
    }

    /// Adds a newly registered worker (the highest key so far).
    pub(super) fn add(&mut self, key: WorkerKey, phone: &str) {
        self.by_phone.entry(normalized_phone(phone)).or_default().push(key);
    }

    /// Moves a worker from `old` to `new` (no-op when they normalise the same).
    pub(super) fn change(&mut self, key: WorkerKey, old: &str, new: &str) {
        let (old, new) = (normalized_phone(old), normalized_phone(new));
        if old == new {
            return;
        }
        if let Some(keys) = self.by_phone.get_mut(&old) {
            keys.retain(|k| *k != key);
            if keys.is_empty() {
                self.by_phone.remove(&old);
            }
        }
        let keys = self.by_phone.entry(new).or_default();
        let at = keys.partition_point(|k| *k < key);
        keys.insert(at, key);
    }

    /// Keys of the workers with this phone, in registration order.
    pub(super) fn keys(&self, phone: &str) -> &[WorkerKey] {
        self.by_phone.get(&normalized_phone(phone)).map_or(&[], |k| k.as_slice())
    }

    /// Every worker is listed once, under their own phone, in key order.
    pub(super) fn check(&self, workers: &[Worker]) -> Result<(), InvariantViolation> {
        let mut listed = 0usize;
        for (phone, keys) in &self.by_phone {
            if keys.is_empty() || keys.windows(2).any(|w| w[0] >= w[1]) {
                return Err(InvariantViolation(format!("phone index entry {phone} is empty or out of order")));
            }
            for &k in keys {
                match workers.get(k as usize) {
                    Some(w) if normalized_phone(&w.phone) == *phone => {}
                    _ => return Err(InvariantViolation(format!("phone index lists worker key {k} under {phone}"))),
                }
            }
            listed += keys.len();
        }
        if listed != workers.len() {
            return Err(InvariantViolation(format!("phone index lists {listed} workers of {}", workers.len())));
        }
        Ok(())
    }
}

impl Engine {
    /// The workers registered with this phone number (exact match after
    /// [`normalized_phone`]), in registration order.
    pub fn workers_with_phone<'a>(&'a self, phone: &str) -> impl Iterator<Item = &'a Worker> + 'a {
        self.phone_index.keys(phone).iter().map(|&k| &self.workers[k as usize])
    }
}

#[cfg(test)]
mod tests {
    use crate::command::{Command, TradeSkillSpec, WorkerSpec};
    use crate::config::EngineConfig;
    use crate::engine::Engine;
    use crate::geo::LatLon;
    use crate::model::{Availability, Hardship, Timestamp};

    fn spec(id: &str, phone: &str) -> WorkerSpec {
        WorkerSpec {
            id: id.into(),
            name: format!("零工 {id}").into(),
            phone: phone.into(),
            trades: smallvec::smallvec![TradeSkillSpec { trade: "porter".into(), level: 3 }],
            position: LatLon { lat: 36.08, lon: 111.52 },
            county: 141002,
            township: None,
            availability: Availability::ALWAYS,
            min_daily_wage: 100,
            hardship: Hardship::None,
        }
    }

    fn ids<'a>(e: &'a Engine, phone: &str) -> Vec<&'a str> {
        e.workers_with_phone(phone).map(|w| w.id.as_str()).collect()
    }

    #[test]
    fn workers_are_found_by_exact_phone_through_changes_and_restore() {
        let mut e = Engine::linfen(EngineConfig::default());
        let mut events = Vec::new();
        let now = Timestamp(1_700_000_000_000);
        for (id, phone) in [("a", "13812345678"), ("b", "139 0000 1111"), ("c", "138-1234-5678")] {
            e.apply(now, &Command::UpsertWorker(spec(id, phone)), &mut events).unwrap();
        }
        e.check_invariants().unwrap();
        assert_eq!(ids(&e, "13812345678"), ["a", "c"], "dashes and spaces do not matter");
        assert_eq!(ids(&e, "138 1234 5678"), ["a", "c"]);
        assert_eq!(ids(&e, "13900001111"), ["b"]);
        assert!(ids(&e, "1381234567").is_empty(), "exact match only, no prefix");

        // A new number moves the worker; the order stays registration order.
        e.apply(now, &Command::UpsertWorker(spec("a", "13900001111")), &mut events).unwrap();
        e.check_invariants().unwrap();
        assert_eq!(ids(&e, "13812345678"), ["c"]);
        assert_eq!(ids(&e, "13900001111"), ["a", "b"]);

        // Rebuilt on restore.
        let restored = Engine::restore(EngineConfig::default(), e.snapshot()).unwrap();
        assert_eq!(ids(&restored, "13900001111"), ["a", "b"]);
        assert_eq!(ids(&restored, "13812345678"), ["c"]);
    }
}
