//! Spatial index entries: workers and open postings as points on the unit
//! sphere in R-trees (workers per trade and hardship class, postings
//! per trade).

use rstar::{PointDistance, RTreeObject, AABB};

/// A worker (or posting) in an R-tree: its unit-sphere point, its key, the
/// ranking inputs besides distance (the credit that does not depend on time,
/// hardship and reliability, and the waiting start), so the matcher can bound a
/// candidate's score and skip hopeless ones without reading the worker record,
/// and the worker's minimum daily wage, so it can skip postings that pay less
/// (the field fills what would otherwise be padding: the entry stays 32 bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct IndexEntry {
    pub point: [f32; 3],
    pub key: u32,
    pub static_bonus_m: f32,
    /// Waiting since, milliseconds since the epoch (0 for postings).
    pub waiting_since_ms: i64,
    /// The worker's minimum daily wage, yuan (0 for postings).
    pub min_daily_wage: u32,
}

impl IndexEntry {
    /// A posting's entry.
    pub fn posting(point: [f32; 3], key: u32) -> Self {
        Self { point, key, static_bonus_m: 0.0, waiting_since_ms: 0, min_daily_wage: 0 }
    }
}

const _: () = assert!(std::mem::size_of::<IndexEntry>() == 32);

impl PartialEq for IndexEntry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.point == other.point
    }
}

impl RTreeObject for IndexEntry {
    type Envelope = AABB<[f32; 3]>;
    fn envelope(&self) -> Self::Envelope {
        AABB::from_point(self.point)
    }
}

impl PointDistance for IndexEntry {
    fn distance_2(&self, p: &[f32; 3]) -> f32 {
        let dx = self.point[0] - p[0];
        let dy = self.point[1] - p[1];
        let dz = self.point[2] - p[2];
        dx * dx + dy * dy + dz * dz
    }
}
