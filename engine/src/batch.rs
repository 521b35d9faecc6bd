//! Batch assignment: the postings collected in a decision window are assigned
//! together, by a minimum-cost matching over their candidate sets, instead of
//! one by one.
//!
//! The input is what greedy matching would look at: for each posting its open
//! slots and its eligible candidates with their costs (the ranking policy's
//! effective distance, so the same eligibility rules and credits apply). The
//! assignment
//!
//! 1. fills as many slots as any assignment can (a worker takes at most one
//!    slot, a posting at most its open slots), and among those
//! 2. has the least total cost, counted in whole decimetres.
//!
//! The candidate graph is split into connected components (postings that share
//! no candidate never compete) and each component is solved with the
//! Kuhn–Munkres (Hungarian) algorithm of the `pathfinding` crate, one row per
//! open slot. The result is a pure function of the input order, so replaying a
//! logged batch gives the same offers.

use pathfinding::kuhn_munkres::kuhn_munkres;
use pathfinding::matrix::Matrix;
use rustc_hash::FxHashMap;

/// One candidate of a posting: a worker (any caller-chosen number, e.g. the
/// engine's worker key) and the cost of offering them this posting.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchCandidate {
    /// The worker.
    pub worker: u32,
    /// Effective distance under the ranking policy, metres (lower is better; may be negative).
    pub cost_m: f64,
}

/// A posting in the window: its open slots and its candidates.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchPosting {
    /// Slots to fill.
    pub slots: u8,
    /// Eligible candidates; a worker listed twice keeps the cheaper entry.
    pub candidates: Vec<BatchCandidate>,
}

/// One pairing chosen by [`assign_batch`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct BatchPair {
    /// Index of the posting in the input.
    pub posting: usize,
    /// The worker.
    pub worker: u32,
}

/// Cost of a candidate in whole decimetres, the unit the optimum is exact in.
pub fn cost_dm(cost_m: f64) -> i64 {
    if cost_m.is_finite() {
        (cost_m * 10.0).round().clamp(-1e12, 1e12) as i64
    } else {
        1_000_000_000_000
    }
}

/// Assigns workers to the postings' slots: most slots filled, then least total
/// cost (see the module docs). Pairs come out sorted by posting, then worker.
pub fn assign_batch(postings: &[BatchPosting]) -> Vec<BatchPair> {
    let mut graph = Graph::build(postings);
    let mut pairs = Vec::new();
    for component in graph.components() {
        solve_component(&graph, &component, &mut pairs);
    }
    pairs.sort_unstable();
    pairs
}

/// The candidate graph with dense worker numbers and deduplicated edges.
struct Graph {
    /// Slots of each posting.
    slots: Vec<u8>,
    /// Worker numbers as given, by dense index.
    workers: Vec<u32>,
    /// Edges of each posting: (dense worker, cost in dm), sorted by worker.
    edges: Vec<Vec<(usize, i64)>>,
    /// Union-find parents over postings then workers.
    parent: Vec<usize>,
}

impl Graph {
    fn build(postings: &[BatchPosting]) -> Graph {
        let mut dense: FxHashMap<u32, usize> = FxHashMap::default();
        let mut workers = Vec::new();
        let mut edges = Vec::with_capacity(postings.len());
        for p in postings {
            let mut list: Vec<(usize, i64)> = Vec::with_capacity(p.candidates.len());
            if p.slots > 0 {
                for c in &p.candidates {
                    let w = *dense.entry(c.worker).or_insert_with(|| {
                        workers.push(c.worker);
                        workers.len() - 1
                    });
                    list.push((w, cost_dm(c.cost_m)));
                }
            }
            list.sort_unstable();
            list.dedup_by_key(|e| e.0);
            edges.push(list);
        }
        let parent = (0..postings.len() + workers.len()).collect();
        let mut g = Graph { slots: postings.iter().map(|p| p.slots).collect(), workers, edges, parent };
        for p in 0..g.edges.len() {
            for k in 0..g.edges[p].len() {
                let w = g.edges[p][k].0 + g.slots.len();
                g.union(p, w);
            }
        }
        g
    }

    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }

    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
            self.parent[hi] = lo;
        }
    }

    /// Postings grouped by component, in order of their first posting; postings without edges are left out.
    fn components(&mut self) -> Vec<Vec<usize>> {
        let mut by_root: FxHashMap<usize, usize> = FxHashMap::default();
        let mut out: Vec<Vec<usize>> = Vec::new();
        for p in 0..self.edges.len() {
            if self.edges[p].is_empty() {
                continue;
            }
            let root = self.find(p);
            let k = *by_root.entry(root).or_insert_with(|| {
                out.push(Vec::new());
                out.len() - 1
            });
            out[k].push(p);
        }
        out
    }
}

fn solve_component(g: &Graph, postings: &[usize], out: &mut Vec<BatchPair>) {
    // Workers of the component, in first-seen order, and each slot's posting.
    let mut local: FxHashMap<usize, usize> = FxHashMap::default();
    let mut workers: Vec<usize> = Vec::new();
    for &p in postings {
        for &(w, _) in &g.edges[p] {
            local.entry(w).or_insert_with(|| {
                workers.push(w);
                workers.len() - 1
            });
        }
    }
    let mut slots: Vec<usize> = Vec::new();
    for &p in postings {
        let usable = (g.slots[p] as usize).min(g.edges[p].len());
        slots.extend(std::iter::repeat_n(p, usable));
    }
    let (lo, hi) = postings
        .iter()
        .flat_map(|&p| g.edges[p].iter().map(|e| e.1))
        .fold((i64::MAX, i64::MIN), |(lo, hi), c| (lo.min(c), hi.max(c)));
    // Every filled slot is worth more than any cost saving over the whole component.
    let range = hi - lo + 1;
    let n = slots.len().max(workers.len()) as i64;
    let big = range.saturating_mul(n + 1).saturating_add(1);
    let mut cost: FxHashMap<(usize, usize), i64> = FxHashMap::default();
    for &p in postings {
        for &(w, c) in &g.edges[p] {
            cost.insert((p, local[&w]), c);
        }
    }
    let weight = |slot: usize, worker: usize| -> i64 { cost.get(&(slots[slot], worker)).map_or(0, |c| big - (c - lo)) };
    if slots.len() <= workers.len() {
        let m = Matrix::from_fn(slots.len(), workers.len(), |(s, w)| weight(s, w));
        let (_, chosen) = kuhn_munkres(&m);
        for (s, &w) in chosen.iter().enumerate() {
            if weight(s, w) > 0 {
                out.push(BatchPair { posting: slots[s], worker: g.workers[workers[w]] });
            }
        }
    } else {
        let m = Matrix::from_fn(workers.len(), slots.len(), |(w, s)| weight(s, w));
        let (_, chosen) = kuhn_munkres(&m);
        for (w, &s) in chosen.iter().enumerate() {
            if weight(s, w) > 0 {
                out.push(BatchPair { posting: slots[s], worker: g.workers[workers[w]] });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Best (filled, -cost) over every assignment, by exhaustive search over slots.
    fn brute_force(postings: &[BatchPosting]) -> (usize, i64) {
        let slots: Vec<usize> =
            postings.iter().enumerate().flat_map(|(i, p)| std::iter::repeat_n(i, p.slots as usize)).collect();
        fn go(
            postings: &[BatchPosting],
            slots: &[usize],
            used: &mut Vec<u32>,
            filled: usize,
            cost: i64,
        ) -> (usize, i64) {
            let Some((&p, rest)) = slots.split_first() else { return (filled, cost) };
            // Leave the slot empty.
            let mut best = go(postings, rest, used, filled, cost);
            for c in &postings[p].candidates {
                if used.contains(&c.worker) {
                    continue;
                }
                used.push(c.worker);
                let r = go(postings, rest, used, filled + 1, cost + cost_dm(c.cost_m));
                used.pop();
                if r.0 > best.0 || (r.0 == best.0 && r.1 < best.1) {
                    best = r;
                }
            }
            best
        }
        go(postings, &slots, &mut Vec::new(), 0, 0)
    }

    fn random_instance(rng: &mut ChaCha8Rng) -> Vec<BatchPosting> {
        let workers = rng.random_range(1..7u32);
        (0..rng.random_range(1..4))
            .map(|_| {
                let mut candidates: Vec<BatchCandidate> = (0..workers)
                    .filter_map(|w| {
                        let cost_m = rng.random_range(-2_000.0..9_000.0);
                        rng.random_bool(0.6).then_some(BatchCandidate { worker: w * 7 + 3, cost_m })
                    })
                    .collect();
                if rng.random_bool(0.2) {
                    candidates.clear();
                }
                BatchPosting { slots: rng.random_range(0..3), candidates }
            })
            .collect()
    }

    fn check(postings: &[BatchPosting], pairs: &[BatchPair]) -> (usize, i64) {
        let mut seen = Vec::new();
        let mut per_posting = vec![0u8; postings.len()];
        let mut cost = 0;
        for pair in pairs {
            assert!(!seen.contains(&pair.worker), "worker {} assigned twice: {pairs:?}", pair.worker);
            seen.push(pair.worker);
            per_posting[pair.posting] += 1;
            let c = postings[pair.posting].candidates.iter().find(|c| c.worker == pair.worker);
            cost += cost_dm(c.expect("assigned worker is a candidate").cost_m);
        }
        for (p, n) in per_posting.iter().enumerate() {
            assert!(*n <= postings[p].slots, "posting {p} over its slots");
        }
        (pairs.len(), cost)
    }

    #[test]
    fn equals_brute_force_on_small_random_instances() {
        let mut rng = ChaCha8Rng::seed_from_u64(15);
        for round in 0..600 {
            let postings = random_instance(&mut rng);
            let pairs = assign_batch(&postings);
            assert_eq!(check(&postings, &pairs), brute_force(&postings), "round {round}: {postings:?} -> {pairs:?}");
        }
    }

    #[test]
    fn beats_greedy_where_greedy_takes_the_shared_worker() {
        // Greedy gives posting 0 its nearest worker 1, leaving posting 1 (which only worker 1
        // can reach) empty; the batch fills both.
        let postings = vec![
            BatchPosting {
                slots: 1,
                candidates: vec![
                    BatchCandidate { worker: 1, cost_m: 100.0 },
                    BatchCandidate { worker: 2, cost_m: 300.0 },
                ],
            },
            BatchPosting { slots: 1, candidates: vec![BatchCandidate { worker: 1, cost_m: 500.0 }] },
        ];
        assert_eq!(
            assign_batch(&postings),
            vec![BatchPair { posting: 0, worker: 2 }, BatchPair { posting: 1, worker: 1 }]
        );
    }

    #[test]
    fn same_input_same_assignment() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let postings: Vec<BatchPosting> = (0..40)
            .map(|_| BatchPosting {
                slots: rng.random_range(1..4),
                candidates: (0..8)
                    .map(|_| BatchCandidate { worker: rng.random_range(0..60), cost_m: rng.random_range(0.0..5_000.0) })
                    .collect(),
            })
            .collect();
        let a = assign_batch(&postings);
        assert!(!a.is_empty());
        assert_eq!(a, assign_batch(&postings));
    }
}
