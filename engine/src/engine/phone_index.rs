//! `PhoneIndex`: workers by exact phone number (after [`normalized_phone`]),
//! for a county desk's look-up. Derived from the records: kept in sync when a
//! registration sets or changes a phone, checked by `check_invariants`,
//! rebuilt on restore, never in snapshots.
//!
//! Stored compactly: an open-addressing table of 4-byte entries hashed by
//! the normalised phone, which it compares against the phones in the worker
//! records (no strings of its own). An entry is a worker key, or, for a
//! phone several workers share, the index of a shared list (high bit set).

use super::Engine;
use crate::cow_vec::CowVec;
use crate::error::InvariantViolation;
use crate::model::{Worker, WorkerKey};
use compact_str::CompactString;
use hashbrown::HashTable;
use rustc_hash::FxHasher;
use std::hash::Hasher;

/// A phone number as the index keys it: spaces and dashes dropped, so
/// `138-1234 5678` and `13812345678` are the same number.
pub fn normalized_phone(phone: &str) -> CompactString {
    phone.chars().filter(|c| !matches!(c, ' ' | '-')).collect()
}

/// The bytes of [`normalized_phone`] without building it (space and dash are
/// ASCII, so dropping their bytes drops exactly those characters).
fn phone_bytes(phone: &str) -> impl Iterator<Item = u8> + '_ {
    phone.bytes().filter(|b| !matches!(b, b' ' | b'-'))
}

fn phone_hash(phone: &str) -> u64 {
    let mut h = FxHasher::default();
    let mut n = 0u64;
    for b in phone_bytes(phone) {
        h.write_u8(b);
        n += 1;
    }
    h.write_u64(n);
    h.finish()
}

fn same_phone(a: &str, b: &str) -> bool {
    phone_bytes(a).eq(phone_bytes(b))
}

/// Entries with this bit set name a shared list, not a worker.
const SHARED: u32 = 1 << 31;

/// Worker keys by normalised phone, each list in ascending key order
/// (registration order).
#[derive(Clone, Default)]
pub(super) struct PhoneIndex {
    table: HashTable<u32>,
    /// Lists of the phones several workers share (ascending keys, never empty
    /// while in use); `free` holds the indexes of unused ones.
    shared: Vec<Vec<WorkerKey>>,
    free: Vec<u32>,
}

impl PhoneIndex {
    /// The keys an entry stands for.
    fn entry_keys<'a>(&'a self, entry: &'a u32) -> &'a [WorkerKey] {
        if entry & SHARED == 0 {
            std::slice::from_ref(entry)
        } else {
            &self.shared[(entry & !SHARED) as usize]
        }
    }

    /// A worker an entry stands for, whose phone is the entry's phone.
    fn representative(shared: &[Vec<WorkerKey>], entry: u32) -> WorkerKey {
        if entry & SHARED == 0 {
            entry
        } else {
            shared[(entry & !SHARED) as usize][0]
        }
    }

    /// The index of `workers` (keys are their positions).
    pub(super) fn bulk_load(workers: &CowVec<Worker>) -> Self {
        let mut index = Self { table: HashTable::with_capacity(workers.len()), ..Self::default() };
        for key in 0..workers.len() {
            index.insert(workers, key as WorkerKey, &workers[key].phone);
        }
        index
    }

    /// Adds `key` under `phone`, in key order among the workers sharing it.
    fn insert(&mut self, workers: &CowVec<Worker>, key: WorkerKey, phone: &str) {
        let Self { table, shared, free } = self;
        let hash = phone_hash(phone);
        let found =
            table.find_mut(hash, |&e| same_phone(&workers[Self::representative(shared, e) as usize].phone, phone));
        match found {
            None => {
                table.insert_unique(hash, key, |&e| {
                    phone_hash(&workers[Self::representative(shared, e) as usize].phone)
                });
            }
            Some(e) if *e & SHARED == 0 => {
                let list = if *e < key { vec![*e, key] } else { vec![key, *e] };
                let at = match free.pop() {
                    Some(at) => {
                        shared[at as usize] = list;
                        at
                    }
                    None => {
                        shared.push(list);
                        (shared.len() - 1) as u32
                    }
                };
                *e = SHARED | at;
            }
            Some(e) => {
                let list = &mut shared[(*e & !SHARED) as usize];
                let at = list.partition_point(|k| *k < key);
                list.insert(at, key);
            }
        }
    }

    /// Removes `key` from the entry of `phone` (found by the key, so the
    /// record may already hold another phone).
    fn remove(&mut self, key: WorkerKey, phone: &str) {
        let Self { table, shared, free } = self;
        let entry = table.find_entry(phone_hash(phone), |&e| {
            if e & SHARED == 0 {
                e == key
            } else {
                shared[(e & !SHARED) as usize].contains(&key)
            }
        });
        let Ok(entry) = entry else { return };
        let e = *entry.get();
        if e & SHARED == 0 {
            entry.remove();
            return;
        }
        let at = e & !SHARED;
        let list = &mut shared[at as usize];
        list.retain(|k| *k != key);
        if list.is_empty() {
            entry.remove();
            free.push(at);
        }
    }

    /// Adds a newly registered worker (the highest key so far), whose record
    /// is already in `workers`.
    pub(super) fn add(&mut self, workers: &CowVec<Worker>, key: WorkerKey) {
        self.insert(workers, key, &workers[key as usize].phone);
    }

    /// Moves a worker from `old` to their record's current phone (no-op when
    /// they normalise the same).
    pub(super) fn change(&mut self, workers: &CowVec<Worker>, key: WorkerKey, old: &str) {
        let new = &workers[key as usize].phone;
        if same_phone(old, new) {
            return;
        }
        self.remove(key, old);
        self.insert(workers, key, new);
    }

    /// Keys of the workers with this phone, in registration order.
    pub(super) fn keys(&self, workers: &CowVec<Worker>, phone: &str) -> &[WorkerKey] {
        self.table
            .find(phone_hash(phone), |&e| {
                same_phone(&workers[Self::representative(&self.shared, e) as usize].phone, phone)
            })
            .map_or(&[], |e| self.entry_keys(e))
    }

    /// Every worker is listed once, under their own phone, in key order, and
    /// found by it.
    pub(super) fn check(&self, workers: &CowVec<Worker>) -> Result<(), InvariantViolation> {
        let bad = |m: String| Err(InvariantViolation(m));
        let mut listed = 0usize;
        let mut in_use = 0usize;
        for e in &self.table {
            if e & SHARED != 0 {
                in_use += 1;
                if self.shared.get((e & !SHARED) as usize).is_none() {
                    return bad(format!("phone index entry {e:#x} names no list"));
                }
            }
            let keys = self.entry_keys(e);
            if keys.is_empty() || keys.windows(2).any(|w| w[0] >= w[1]) {
                return bad(format!("phone index entry {e:#x} is empty or out of order"));
            }
            let Some(first) = workers.get(keys[0] as usize) else {
                return bad(format!("phone index lists unknown worker key {}", keys[0]));
            };
            for &k in keys {
                match workers.get(k as usize) {
                    Some(w) if same_phone(&w.phone, &first.phone) => {}
                    _ => return bad(format!("phone index lists worker key {k} under {}", first.phone)),
                }
            }
            if !std::ptr::eq(self.keys(workers, &first.phone), keys) {
                return bad(format!("phone {} is not found at its own entry", first.phone));
            }
            listed += keys.len();
        }
        if listed != workers.len() {
            return bad(format!("phone index lists {listed} workers of {}", workers.len()));
        }
        if in_use + self.free.len() != self.shared.len() {
            return bad("phone index shared lists out of sync".into());
        }
        Ok(())
    }
}

impl Engine {
    /// The workers registered with this phone number (exact match after
    /// [`normalized_phone`]), in registration order.
    pub fn workers_with_phone<'a>(&'a self, phone: &str) -> impl Iterator<Item = &'a Worker> + 'a {
        self.phone_index.keys(&self.workers, phone).iter().map(|&k| &self.workers[k as usize])
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

        // A shared number left by everyone, then shared again, and a worker
        // registered under a number another had left.
        e.apply(now, &Command::UpsertWorker(spec("c", "137 0000 2222")), &mut events).unwrap();
        e.check_invariants().unwrap();
        assert!(ids(&e, "13812345678").is_empty());
        e.apply(now, &Command::UpsertWorker(spec("d", "13700002222")), &mut events).unwrap();
        e.apply(now, &Command::UpsertWorker(spec("e", "13812345678")), &mut events).unwrap();
        e.check_invariants().unwrap();
        assert_eq!(ids(&e, "137-0000-2222"), ["c", "d"]);
        assert_eq!(ids(&e, "13812345678"), ["e"]);
        e.apply(now, &Command::UpsertWorker(spec("c", "13812345678")), &mut events).unwrap();
        e.check_invariants().unwrap();
        assert_eq!(ids(&e, "13812345678"), ["c", "e"], "registration order, not order of change");
        assert_eq!(ids(&e, "13700002222"), ["d"]);

        // Rebuilt on restore.
        let restored = Engine::restore(EngineConfig::default(), e.snapshot()).unwrap();
        restored.check_invariants().unwrap();
        assert_eq!(ids(&restored, "13900001111"), ["a", "b"]);
        assert_eq!(ids(&restored, "13812345678"), ["c", "e"]);
        assert_eq!(ids(&restored, "13700002222"), ["d"]);
    }
}
