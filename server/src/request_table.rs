//! `RequestTable`: the request ids remembered for idempotent retries, with
//! each first result, the oldest forgotten first once the table is full.
//!
//! The entries live in a [`CowVec`] in the order they were remembered, so a
//! snapshot's frozen copy ([`FrozenRequests`]) shares them instead of copying
//! a few hundred thousand keys while applying waits. Look-ups go through a
//! hash table of entry numbers, derived from the entries and never in
//! snapshots.

use crate::state::RememberedRequest;
use hashbrown::HashTable;
use linggong_engine::CowVec;
use serde::ser::{Serialize, SerializeSeq, Serializer};
use std::hash::BuildHasher;

type Entry = (String, RememberedRequest);

fn key_hash(key: &str) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(key)
}

/// Owns: `entries[forgotten..]` are the remembered requests, oldest first,
/// at most `capacity` of them, with distinct keys; `index` holds exactly
/// their numbers (`first + position in entries`), each under its key's hash.
/// Entries before `forgotten` (fewer than a chunk) wait for their chunk to go.
#[derive(Clone)]
pub struct RequestTable {
    entries: CowVec<Entry>,
    /// Forgotten entries at the front of `entries`.
    forgotten: usize,
    /// The number of `entries[0]`: numbers grow by one per remembered key
    /// and are never reused, so a position is `number - first`.
    first: u64,
    index: HashTable<u64>,
    capacity: usize,
}

impl RequestTable {
    /// An empty table remembering at most `capacity` keys (at least one).
    pub fn new(capacity: usize) -> Self {
        Self { entries: CowVec::new(), forgotten: 0, first: 0, index: HashTable::new(), capacity: capacity.max(1) }
    }

    /// Number of keys remembered.
    pub fn len(&self) -> usize {
        self.entries.len() - self.forgotten
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The position in `entries` of `key`, whose hash is `hash`.
    fn position(&self, hash: u64, key: &str) -> Option<usize> {
        let first = self.first;
        self.index
            .find(hash, |&n| self.entries.get((n - first) as usize).is_some_and(|(k, _)| k == key))
            .map(|&n| (n - first) as usize)
    }

    /// The request remembered under `key`.
    pub fn get(&self, key: &str) -> Option<&RememberedRequest> {
        self.position(key_hash(key), key).map(|i| &self.entries[i].1)
    }

    /// Remembers `request` under `key`: a new key goes last (forgetting the
    /// oldest if the table is full); a key already remembered keeps its place
    /// and takes the new request.
    pub fn remember(&mut self, key: String, request: RememberedRequest) {
        let hash = key_hash(&key);
        if let Some(i) = self.position(hash, &key) {
            self.entries[i].1 = request;
            return;
        }
        let number = self.first + self.entries.len() as u64;
        let (entries, first) = (&self.entries, self.first);
        self.index.insert_unique(hash, number, |&n| key_hash(&entries[(n - first) as usize].0));
        self.entries.push((key, request));
        while self.len() > self.capacity {
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        let number = self.first + self.forgotten as u64;
        let hash = key_hash(&self.entries[self.forgotten].0);
        if let Ok(entry) = self.index.find_entry(hash, |&n| n == number) {
            entry.remove();
        }
        self.forgotten += 1;
        if self.forgotten >= CowVec::<Entry>::CHUNK_LEN && self.entries.remove_first_chunk() {
            self.forgotten -= CowVec::<Entry>::CHUNK_LEN;
            self.first += CowVec::<Entry>::CHUNK_LEN as u64;
        }
    }

    /// Remembered requests, oldest first.
    #[cfg(test)]
    fn iter(&self) -> impl Iterator<Item = (&str, &RememberedRequest)> {
        self.entries.iter().skip(self.forgotten).map(|(k, r)| (k.as_str(), r))
    }

    /// The remembered requests, frozen for a snapshot (shares the entries).
    pub fn frozen(&self) -> FrozenRequests {
        FrozenRequests { entries: self.entries.clone(), forgotten: self.forgotten }
    }
}

/// A [`RequestTable`]'s requests at one moment. Serialises as the sequence of
/// `(key, request)` pairs, oldest first, that snapshots hold.
#[derive(Clone)]
pub struct FrozenRequests {
    entries: CowVec<Entry>,
    forgotten: usize,
}

impl Serialize for FrozenRequests {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.entries.len() - self.forgotten))?;
        for entry in self.entries.iter().skip(self.forgotten) {
            seq.serialize_element(entry)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Applied;
    use linggong_engine::{Outcome, Timestamp};

    fn request(n: u64) -> RememberedRequest {
        RememberedRequest {
            fingerprint: Some(n),
            applied: Applied {
                seq: n,
                at: Timestamp(0),
                outcome: Outcome::WorkerUpserted { created: true, offer: None },
            },
        }
    }

    #[test]
    fn remembers_the_last_capacity_keys_and_forgets_the_oldest_first() {
        let capacity = CowVec::<Entry>::CHUNK_LEN + 37;
        let mut table = RequestTable::new(capacity);
        let total = 5 * CowVec::<Entry>::CHUNK_LEN as u64 + 11;
        for n in 0..total {
            table.remember(format!("k{n}"), request(n));
            assert_eq!(table.len(), (n as usize + 1).min(capacity));
        }
        let oldest = total - capacity as u64;
        for n in 0..total {
            let found = table.get(&format!("k{n}")).and_then(|r| r.fingerprint);
            assert_eq!(found, (n >= oldest).then_some(n), "key {n}");
        }
        let order: Vec<u64> = table.iter().map(|(_, r)| r.applied.seq).collect();
        assert_eq!(order, (oldest..total).collect::<Vec<_>>());
        assert!(table.entries.len() < capacity + CowVec::<Entry>::CHUNK_LEN, "forgotten chunks are dropped");
    }

    #[test]
    fn a_key_remembered_again_keeps_its_place_and_takes_the_new_request() {
        let mut table = RequestTable::new(3);
        for n in 0..3 {
            table.remember(format!("k{n}"), request(n));
        }
        table.remember("k0".into(), request(10));
        assert_eq!(table.get("k0").and_then(|r| r.fingerprint), Some(10));
        table.remember("k3".into(), request(3));
        assert!(table.get("k0").is_none(), "k0 was still the oldest");
        let keys: Vec<&str> = table.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["k1", "k2", "k3"]);
    }

    #[test]
    fn a_frozen_copy_keeps_its_moment_and_serialises_as_pairs_oldest_first() {
        let mut table = RequestTable::new(2);
        for n in 0..3 {
            table.remember(format!("k{n}"), request(n));
        }
        let frozen = table.frozen();
        table.remember("k9".into(), request(9));
        table.remember("k1".into(), request(11));
        let pairs: Vec<(String, RememberedRequest)> = vec![("k1".into(), request(1)), ("k2".into(), request(2))];
        assert_eq!(rmp_serde::to_vec(&frozen).unwrap(), rmp_serde::to_vec(&pairs).unwrap());
    }
}
