//! `WorkerTree`: the waiting workers of one trade and hardship class as an
//! R-tree in parts: a packed tree in flat arrays (entries in k-d order, node
//! boxes level by level, built by bulk load; a removed entry is marked in
//! place) and a few smaller packed trees of the entries inserted since (runs
//! of a log-structured merge: the smallest is rebuilt on each insertion, each
//! merged into the next when full), all merged into a new packed tree when
//! they grow or when marked entries pile up.

use crate::index::IndexEntry;
use smallvec::SmallVec;

/// Children per node of the packed tree.
pub(super) const NODE: usize = 16;

/// The key of a removed entry of the packed tree (no worker has it: keys are
/// dense record indexes).
pub(super) const REMOVED: u32 = u32::MAX;

/// The runs are merged into the packed tree once they hold more than this many entries and
/// more than `1 / MERGE_FRACTION` of the packed tree's live ones.
const RECENT_MIN: usize = 64;
const MERGE_FRACTION: usize = 8;

/// An axis-aligned box around unit-sphere points, with what bounds the credit
/// of the workers inside: their largest time-independent credit and their
/// earliest waiting start (floored to the minute). A node's bound in the walk is
/// its nearest distance less the largest credit anyone inside could have, which
/// is often far below its tree's largest (recent insertions have waited little).
/// 32 bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Bounds {
    min: [f32; 3],
    max: [f32; 3],
    static_bonus_max_m: f32,
    waiting_since_min: i32,
}

impl Bounds {
    const EMPTY: Bounds = Bounds {
        min: [f32::INFINITY; 3],
        max: [f32::NEG_INFINITY; 3],
        static_bonus_max_m: f32::NEG_INFINITY,
        waiting_since_min: i32::MAX,
    };

    fn add_point(&mut self, p: [f32; 3]) {
        for (a, v) in p.into_iter().enumerate() {
            self.min[a] = self.min[a].min(v);
            self.max[a] = self.max[a].max(v);
        }
    }

    fn add_entry(&mut self, e: &IndexEntry) {
        self.add_point(e.point);
        self.static_bonus_max_m = self.static_bonus_max_m.max(e.static_bonus_m);
        let minutes = e.waiting_since_ms.div_euclid(60_000).clamp(i32::MIN as i64, i32::MAX as i64) as i32;
        self.waiting_since_min = self.waiting_since_min.min(minutes);
    }

    fn add(&mut self, b: &Bounds) {
        for a in 0..3 {
            self.min[a] = self.min[a].min(b.min[a]);
            self.max[a] = self.max[a].max(b.max[a]);
        }
        self.static_bonus_max_m = self.static_bonus_max_m.max(b.static_bonus_max_m);
        self.waiting_since_min = self.waiting_since_min.min(b.waiting_since_min);
    }

    /// The largest time-independent credit of a worker inside, metres.
    #[inline]
    pub(super) fn static_bonus_max_m(&self) -> f32 {
        self.static_bonus_max_m
    }

    /// No worker inside has waited since before this, milliseconds since the epoch.
    #[inline]
    pub(super) fn waiting_since_min_ms(&self) -> i64 {
        self.waiting_since_min as i64 * 60_000
    }

    fn contains(&self, p: [f32; 3]) -> bool {
        (0..3).all(|a| self.min[a] <= p[a] && p[a] <= self.max[a])
    }

    /// Squared distance from `q` to the nearest point of the box (0 inside),
    /// as `rstar`'s `AABB::distance_2`.
    #[inline]
    pub(super) fn distance_2(&self, q: &[f32; 3]) -> f32 {
        let mut d2 = 0.0;
        for (a, &v) in q.iter().enumerate() {
            let d = (self.min[a] - v).max(0.0).max(v - self.max[a]);
            d2 += d * d;
        }
        d2
    }

    fn widest_axis(&self) -> usize {
        let ext = |a: usize| self.max[a] - self.min[a];
        if ext(0) >= ext(1) && ext(0) >= ext(2) {
            0
        } else if ext(1) >= ext(2) {
            1
        } else {
            2
        }
    }
}

const _: () = assert!(std::mem::size_of::<Bounds>() == 32);

/// A packed R-tree: `entries` in k-d order, so that every aligned run of
/// `NODE^k` entries is a compact cell; `levels[0]` holds the box of each run
/// of `NODE` entries, `levels[l]` the box of each run of `NODE` boxes of
/// `levels[l - 1]`, and the last level the root's box alone.
#[derive(Clone, Default)]
pub(super) struct PackedTree {
    entries: Vec<IndexEntry>,
    levels: Vec<Vec<Bounds>>,
    live: usize,
}

impl PackedTree {
    fn build(mut entries: Vec<IndexEntry>) -> Self {
        entries.shrink_to_fit();
        kd_order(&mut entries);
        let mut levels: Vec<Vec<Bounds>> = Vec::new();
        if !entries.is_empty() {
            let mut level: Vec<Bounds> = entries
                .chunks(NODE)
                .map(|run| {
                    let mut b = Bounds::EMPTY;
                    run.iter().for_each(|e| b.add_entry(e));
                    b
                })
                .collect();
            loop {
                let root = level.len() == 1;
                let next = (!root).then(|| {
                    level
                        .chunks(NODE)
                        .map(|run| {
                            let mut b = Bounds::EMPTY;
                            run.iter().for_each(|c| b.add(c));
                            b
                        })
                        .collect()
                });
                levels.push(level);
                match next {
                    Some(n) => level = n,
                    None => break,
                }
            }
        }
        let live = entries.len();
        Self { entries, levels, live }
    }

    /// The root node as (level, index), if the tree has entries.
    pub(super) fn root(&self) -> Option<(usize, usize)> {
        (self.live > 0).then(|| (self.levels.len() - 1, 0))
    }

    /// The box of node `index` of `level`.
    #[inline]
    pub(super) fn bounds(&self, level: usize, index: usize) -> &Bounds {
        &self.levels[level][index]
    }

    /// The child boxes of an inner node (`level > 0`), with the index of the first.
    #[inline]
    pub(super) fn child_bounds(&self, level: usize, index: usize) -> (usize, &[Bounds]) {
        let below = &self.levels[level - 1];
        let first = index * NODE;
        (first, &below[first..(first + NODE).min(below.len())])
    }

    /// The entries of a level-0 node, removed ones included (key [`REMOVED`]).
    #[inline]
    pub(super) fn leaf_entries(&self, index: usize) -> &[IndexEntry] {
        let first = index * NODE;
        &self.entries[first..(first + NODE).min(self.entries.len())]
    }

    /// The entry in `slot` (removed ones included).
    #[inline]
    pub(super) fn entry(&self, slot: usize) -> &IndexEntry {
        &self.entries[slot]
    }

    /// The memory a walk reads when it expands node `index` of `level`.
    #[inline]
    pub(super) fn children_bytes(&self, level: usize, index: usize) -> (*const u8, usize) {
        if level == 0 {
            let e = self.leaf_entries(index);
            (e.as_ptr().cast(), std::mem::size_of_val(e))
        } else {
            let (_, b) = self.child_bounds(level, index);
            (b.as_ptr().cast(), std::mem::size_of_val(b))
        }
    }

    /// Marks the entry equal to `e` removed; false if there is none.
    fn remove(&mut self, e: &IndexEntry) -> bool {
        let Some(slot) = self.find(e.point, |x| x.key == e.key).first().copied() else { return false };
        self.entries[slot].key = REMOVED;
        self.live -= 1;
        true
    }

    /// Slots of the live entries at `point` for which `pick` holds.
    fn find(&self, point: [f32; 3], pick: impl Fn(&IndexEntry) -> bool) -> SmallVec<[usize; 2]> {
        let mut found = SmallVec::new();
        let Some(root) = self.root() else { return found };
        let mut stack: SmallVec<[(usize, usize); 64]> = SmallVec::new();
        if self.bounds(root.0, root.1).contains(point) {
            stack.push(root);
        }
        while let Some((level, index)) = stack.pop() {
            if level == 0 {
                let first = index * NODE;
                for (i, x) in self.leaf_entries(index).iter().enumerate() {
                    if x.key != REMOVED && x.point == point && pick(x) {
                        found.push(first + i);
                    }
                }
            } else {
                let (first, children) = self.child_bounds(level, index);
                for (i, b) in children.iter().enumerate() {
                    if b.contains(point) {
                        stack.push((level - 1, first + i));
                    }
                }
            }
        }
        found
    }

    fn live_entries(&self) -> impl Iterator<Item = &IndexEntry> {
        self.entries.iter().filter(|e| e.key != REMOVED)
    }
}

/// Orders `entries` so that every run of `NODE^k` entries starting at a
/// multiple of `NODE^k` is a cell of a k-d split: each slice is cut, across
/// its widest axis, at a multiple of the largest such run size below its
/// length, and both halves are ordered the same way.
fn kd_order(entries: &mut [IndexEntry]) {
    let n = entries.len();
    if n <= NODE {
        return;
    }
    let mut unit = NODE;
    while unit * NODE < n {
        unit *= NODE;
    }
    let mid = unit * n.div_ceil(unit).div_ceil(2);
    let mut b = Bounds::EMPTY;
    entries.iter().for_each(|e| b.add_point(e.point));
    let axis = b.widest_axis();
    entries.select_nth_unstable_by(mid, |x, y| x.point[axis].total_cmp(&y.point[axis]));
    let (left, right) = entries.split_at_mut(mid);
    kd_order(left);
    kd_order(right);
}

/// Live entries of the smallest run of recent insertions before it is merged
/// into the next; each further run holds `RUN_GROWTH` times more.
const RUN_FIRST: usize = 32;
const RUN_GROWTH: usize = 8;

/// One trade and hardship class's indexed workers: see the module docs.
#[derive(Clone, Default)]
pub(super) struct WorkerTree {
    packed: PackedTree,
    /// Packed trees of the entries inserted since the last merge into
    /// `packed`, smallest first: run `i` is merged into run `i + 1` once it
    /// holds more than `RUN_FIRST * RUN_GROWTH^i` live entries (a
    /// log-structured merge, so an entry is rebuilt a few times, not
    /// restructured in place).
    runs: Vec<PackedTree>,
}

impl WorkerTree {
    /// A tree of these entries, all packed.
    pub(super) fn bulk_load(entries: Vec<IndexEntry>) -> Self {
        Self { packed: PackedTree::build(entries), runs: Vec::new() }
    }

    /// Entries in the tree.
    pub(super) fn size(&self) -> usize {
        self.packed.live + self.recent_size()
    }

    fn recent_size(&self) -> usize {
        self.runs.iter().map(|r| r.live).sum()
    }

    /// The packed part and the runs of recent insertions (some may be empty).
    pub(super) fn parts(&self) -> impl Iterator<Item = &PackedTree> {
        std::iter::once(&self.packed).chain(self.runs.iter())
    }

    pub(super) fn insert(&mut self, e: IndexEntry) {
        debug_assert_ne!(e.key, REMOVED);
        if self.runs.is_empty() {
            self.runs.push(PackedTree::default());
        }
        let first = &self.runs[0];
        let mut all = Vec::with_capacity(first.live + 1);
        all.extend(first.live_entries().copied());
        all.push(e);
        self.runs[0] = PackedTree::build(all);
        if self.recent_size() > RECENT_MIN.max(self.packed.live / MERGE_FRACTION) {
            self.merge();
            return;
        }
        let mut cap = RUN_FIRST;
        let mut i = 0;
        while self.runs[i].live > cap {
            if i + 1 == self.runs.len() {
                self.runs.push(PackedTree::default());
            }
            let mut all = Vec::with_capacity(self.runs[i].live + self.runs[i + 1].live);
            all.extend(self.runs[i].live_entries().copied());
            all.extend(self.runs[i + 1].live_entries().copied());
            self.runs[i] = PackedTree::default();
            self.runs[i + 1] = PackedTree::build(all);
            cap *= RUN_GROWTH;
            i += 1;
        }
    }

    /// Removes the entry equal to `e` (same key and point); false if there is none.
    /// The packed tree is searched first: it holds most entries, and its boxes
    /// barely overlap, so a miss there costs about one descent.
    pub(super) fn remove(&mut self, e: &IndexEntry) -> bool {
        if self.packed.remove(e) {
            let removed = self.packed.entries.len() - self.packed.live;
            if removed > RECENT_MIN.max(self.packed.live / 2) {
                self.merge();
            }
            return true;
        }
        self.runs.iter_mut().rev().any(|r| r.live > 0 && r.remove(e))
    }

    /// Rebuilds the packed tree from every live entry.
    fn merge(&mut self) {
        let mut all = Vec::with_capacity(self.size());
        for part in self.parts() {
            all.extend(part.live_entries().copied());
        }
        self.runs.clear();
        self.packed = PackedTree::build(all);
    }

    /// The entries at `point` with this key (for checks).
    pub(super) fn entries_at(&self, point: [f32; 3], key: u32) -> Vec<IndexEntry> {
        let mut out = Vec::new();
        for part in self.parts() {
            out.extend(part.find(point, |x| x.key == key).into_iter().map(|s| part.entries[s]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u32) -> IndexEntry {
        // Points spread over a small patch of the sphere, some repeated.
        let a = (i % 97) as f32 * 1e-4;
        let b = (i / 97 % 89) as f32 * 1e-4;
        let (x, y) = (0.6 + a, 0.5 + b);
        let z = (1.0 - x * x - y * y).max(0.0).sqrt();
        let static_bonus_m = (i % 7) as f32 * 50.0;
        let waiting_since_ms = 1_748_736_000_000 - (i as i64 % 13) * 1_234_567;
        IndexEntry { point: [x, y, z], key: i, static_bonus_m, waiting_since_ms, min_daily_wage: 0 }
    }

    fn check_boxes(t: &PackedTree) {
        for (i, e) in t.entries.iter().enumerate() {
            let mut index = i / NODE;
            for level in 0..t.levels.len() {
                let b = &t.levels[level][index];
                assert!(b.contains(e.point), "entry {i} outside its level-{level} box");
                assert!(b.static_bonus_max_m() >= e.static_bonus_m, "entry {i} credit above its level-{level} box's");
                assert!(
                    b.waiting_since_min_ms() <= e.waiting_since_ms,
                    "entry {i} waiting before its level-{level} box's"
                );
                index /= NODE;
            }
        }
        assert_eq!(t.levels.last().map(Vec::len), Some(1));
    }

    #[test]
    fn packed_tree_boxes_hold_their_entries() {
        for n in [1, 15, 16, 17, 255, 256, 257, 4097, 10_000] {
            let t = PackedTree::build((0..n).map(entry).collect());
            assert_eq!(t.live, n as usize);
            check_boxes(&t);
        }
    }

    #[test]
    fn inserts_and_removals_keep_every_entry_findable() {
        let mut tree = WorkerTree::bulk_load((0..5_000).map(entry).collect());
        for i in 5_000..9_000 {
            tree.insert(entry(i));
        }
        for i in (0..9_000).step_by(3) {
            assert!(tree.remove(&entry(i)), "entry {i} not removed");
            assert!(!tree.remove(&entry(i)), "entry {i} removed twice");
        }
        for i in 0..9_000u32 {
            let found = tree.entries_at(entry(i).point, i).len();
            assert_eq!(found, usize::from(i % 3 != 0), "entry {i}");
        }
        assert_eq!(tree.size(), 6_000);
        check_boxes(&tree.packed);
    }
}
