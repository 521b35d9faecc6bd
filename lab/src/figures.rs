//! Fairness and service figures of a replayed (or the live) window, per county
//! and for the city, gathered by an [`Observer`] that watches every command's
//! events and the workers it touched.
//!
//! Definitions (a window is `[from, to)` in log time):
//!
//! - postings: postings first published in the window; fill rate: the share
//!   of them filled before the window ends; time to fill: publication to
//!   filled, median over the filled ones;
//! - wait to first offer: a waiting episode starts when a worker starts
//!   waiting (or at the window start for workers already waiting) and waits
//!   until their first offer; an episode with no offer by the time it ends
//!   (the worker left, or the window closed) counts with its wait so far, so
//!   these quantiles are lower bounds where many wait in vain. Split by
//!   hardship category (p50, p90);
//! - placements: offers accepted in the window; their hardship share beside
//!   the hardship share of the pool (every worker who waited in the window);
//! - travel: distance of placements, median, p90 and total;
//! - offer spread: the Gini coefficient of offers per worker among comparable
//!   workers (same county and first trade, every pool member counted,
//!   including those offered nothing), averaged over groups by size;
//! - no-shows reported in the window.

use crate::model::{Answer, History, OfferFeatures, ResponseFit};
use compact_str::CompactString;
use linggong_engine::{Command, Engine, Event, Hardship, OfferId, OfferState, Timestamp};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::collections::BTreeMap;

/// Where a figure applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Area {
    /// All counties together.
    City,
    /// One county, by division code.
    County(u32),
}

impl std::fmt::Display for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Area::City => write!(f, "city"),
            Area::County(c) => write!(f, "{c}"),
        }
    }
}

/// Which way is better for a figure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Better {
    /// Higher is better.
    Higher,
    /// Lower is better.
    Lower,
    /// Neither (a count or a context figure).
    Neither,
}

/// One figure's definition.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Metric {
    /// Machine name, e.g. `fill_rate`.
    pub key: String,
    /// Table label, with unit.
    pub label: String,
    /// Which way is better.
    pub better: Better,
}

const HARDSHIPS: [(Hardship, &str); 5] = [
    (Hardship::None, "none"),
    (Hardship::LongTermUnemployed, "long-term unemployed"),
    (Hardship::LowIncomeHousehold, "low-income household"),
    (Hardship::Disabled, "disabled"),
    (Hardship::OlderWorker, "older worker"),
];

fn hardship_slot(h: Hardship) -> usize {
    HARDSHIPS.iter().position(|(x, _)| *x == h).unwrap_or(0)
}

/// Index of each figure in a [`Figures`] row.
mod at {
    pub const POSTINGS: usize = 0;
    pub const FILL_RATE: usize = 1;
    pub const FILL_MIN: usize = 2;
    pub const OFFERS: usize = 3;
    pub const PLACEMENTS: usize = 4;
    pub const HARDSHIP_PLACED: usize = 5;
    pub const HARDSHIP_POOL: usize = 6;
    pub const TRAVEL_MEDIAN: usize = 7;
    pub const TRAVEL_P90: usize = 8;
    pub const TRAVEL_TOTAL: usize = 9;
    pub const GINI: usize = 10;
    pub const NO_SHOWS: usize = 11;
    /// Then wait p50 and p90 per hardship category.
    pub const WAITS: usize = 12;
}

/// Every figure, in row order.
pub fn metrics() -> Vec<Metric> {
    let m = |key: &str, label: &str, better| Metric { key: key.into(), label: label.into(), better };
    let mut out = vec![
        m("postings", "postings published", Better::Neither),
        m("fill_rate", "fill rate %", Better::Higher),
        m("median_fill_min", "median time to fill, min", Better::Lower),
        m("offers", "offers made", Better::Neither),
        m("placements", "placements", Better::Higher),
        m("hardship_share_placed", "hardship share of placements %", Better::Higher),
        m("hardship_share_pool", "hardship share of waiting pool %", Better::Neither),
        m("travel_median_m", "travel distance median, m", Better::Lower),
        m("travel_p90_m", "travel distance p90, m", Better::Lower),
        m("travel_total_km", "travel distance total, km", Better::Lower),
        m("offer_gini", "Gini of offers over comparable workers", Better::Lower),
        m("no_shows", "no-shows", Better::Lower),
    ];
    for (h, name) in HARDSHIPS {
        let key = format!("{h:?}").to_lowercase();
        out.push(m(&format!("wait_p50_min_{key}"), &format!("wait to first offer p50, min ({name})"), Better::Lower));
        out.push(m(&format!("wait_p90_min_{key}"), &format!("wait to first offer p90, min ({name})"), Better::Lower));
    }
    out
}

/// Every figure of every area; rows follow [`metrics`].
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    /// Rows by area (the city first, then counties by code); keyed `city` or the county code in JSON.
    #[serde(serialize_with = "areas_by_name")]
    pub areas: BTreeMap<Area, Vec<Option<f64>>>,
}

fn areas_by_name<S: serde::Serializer>(areas: &BTreeMap<Area, Vec<Option<f64>>>, s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(areas.iter().map(|(a, row)| (a.to_string(), row)))
}

impl Figures {
    /// A figure by metric key.
    pub fn get(&self, area: Area, key: &str) -> Option<f64> {
        let i = metrics().iter().position(|m| m.key == key)?;
        *self.areas.get(&area)?.get(i)?
    }
}

struct OfferInfo {
    posting_county: u32,
    hardship: Hardship,
    distance_m: u32,
    made_at: Timestamp,
    start: Timestamp,
    features: OfferFeatures,
    accepted_at: Option<Timestamp>,
    arrived_at: Option<Timestamp>,
}

struct Episode {
    start: Timestamp,
    offered: bool,
}

struct PoolMember {
    county: u32,
    hardship: Hardship,
    trade: u16,
    offers: u32,
}

#[derive(Default)]
struct AreaSamples {
    placements: u32,
    hardship_placements: u32,
    distances: Vec<u32>,
    no_shows: u32,
    offers: u32,
    waits: [Vec<i64>; 5],
}

/// Watches a run and gathers its figures, and (from recorded answers) the response fit.
pub struct Observer {
    from: Timestamp,
    offers: FxHashMap<OfferId, OfferInfo>,
    episodes: FxHashMap<CompactString, Episode>,
    pool: FxHashMap<CompactString, PoolMember>,
    samples: BTreeMap<Area, AreaSamples>,
    fit: ResponseFit,
    touched: Vec<CompactString>,
}

impl Observer {
    /// Starts watching at `from`, with the engine's state then (its waiting workers open episodes).
    pub fn new(engine: &Engine, from: Timestamp) -> Self {
        let mut o = Observer {
            from,
            offers: FxHashMap::default(),
            episodes: FxHashMap::default(),
            pool: FxHashMap::default(),
            samples: BTreeMap::new(),
            fit: ResponseFit::default(),
            touched: Vec::new(),
        };
        for w in engine.workers() {
            o.sync_worker(engine, &w.id.clone(), from);
        }
        o
    }

    /// The response fit gathered so far (meaningful when the answers were the recorded ones).
    pub fn fit(&self) -> &ResponseFit {
        &self.fit
    }

    fn area(&mut self, county: u32) -> [&mut AreaSamples; 2] {
        // City first, then the county: two distinct entries.
        self.samples.entry(Area::City).or_default();
        self.samples.entry(Area::County(county)).or_default();
        let mut it = self.samples.iter_mut().filter(|(a, _)| **a == Area::City || **a == Area::County(county));
        let (_, city) = it.next().expect("city entry");
        let (_, county) = it.next().expect("county entry");
        [city, county]
    }

    fn close_episode(&mut self, id: &str, at: Timestamp) {
        if let Some(e) = self.episodes.remove(id) {
            if !e.offered {
                let wait = at.0 - e.start.0;
                if let Some(m) = self.pool.get(id) {
                    let (county, slot) = (m.county, hardship_slot(m.hardship));
                    for s in self.area(county) {
                        s.waits[slot].push(wait);
                    }
                }
            }
        }
    }

    /// Brings a worker's episode in line with the engine's record.
    fn sync_worker(&mut self, engine: &Engine, id: &CompactString, now: Timestamp) {
        let Some(w) = engine.worker(id) else { return };
        use linggong_engine::WorkerStatus::*;
        match w.status {
            Waiting | Offered => {
                let start = w.waiting_since.max(self.from);
                if self.episodes.get(id.as_str()).is_some_and(|e| e.start == start) {
                    return;
                }
                self.close_episode(id, now);
                self.episodes.insert(id.clone(), Episode { start, offered: false });
                let county = engine.regions().get(w.county).code;
                let trade = w.trades.first().map_or(0, |t| t.trade);
                self.pool.entry(id.clone()).or_insert(PoolMember { county, hardship: w.hardship, trade, offers: 0 });
            }
            Engaged | Away => self.close_episode(id, now),
        }
    }

    /// Takes in one applied command: its events and the workers it touched.
    pub fn applied(&mut self, engine: &Engine, now: Timestamp, command: &Command, events: &[Event]) {
        self.touched.clear();
        match command {
            Command::UpsertWorker(spec) => self.touched.push(spec.id.clone()),
            Command::MoveWorker { worker, .. }
            | Command::SetAvailability { worker, .. }
            | Command::WithdrawWorker { worker } => self.touched.push(worker.clone()),
            _ => {}
        }
        for event in events {
            let Event::Offer(e) = event else { continue };
            self.touched.push(e.worker.clone());
            match e.state {
                OfferState::Pending => self.offer_made(engine, e),
                state => self.offer_changed(e.offer, state, e.at),
            }
        }
        let touched = std::mem::take(&mut self.touched);
        for id in &touched {
            self.sync_worker(engine, id, now);
        }
        self.touched = touched;
    }

    fn offer_made(&mut self, engine: &Engine, e: &linggong_engine::OfferEvent) {
        let (Some(w), Some(p)) = (engine.worker(&e.worker), engine.posting(&e.posting)) else { return };
        let features = OfferFeatures {
            distance_m: e.distance_m,
            wage_ratio: p.daily_wage as f64 / w.min_daily_wage.max(1) as f64,
            history: History::of(&w.reliability),
        };
        let worker_county = engine.regions().get(w.county).code;
        let info = OfferInfo {
            posting_county: e.county,
            hardship: w.hardship,
            distance_m: e.distance_m,
            made_at: e.at,
            start: p.start,
            features,
            accepted_at: None,
            arrived_at: None,
        };
        for s in self.area(e.county) {
            s.offers += 1;
        }
        if let Some(ep) = self.episodes.get_mut(e.worker.as_str()) {
            if !ep.offered {
                ep.offered = true;
                let wait = e.at.0 - ep.start.0;
                let slot = hardship_slot(w.hardship);
                for s in self.area(worker_county) {
                    s.waits[slot].push(wait);
                }
            }
        }
        if let Some(m) = self.pool.get_mut(e.worker.as_str()) {
            m.offers += 1;
        }
        self.offers.insert(e.offer, info);
    }

    fn offer_changed(&mut self, offer: OfferId, state: OfferState, at: Timestamp) {
        let Some(info) = self.offers.get_mut(&offer) else { return };
        let since_offer = at.0 - info.made_at.0;
        let features = info.features;
        match state {
            OfferState::Accepted => {
                info.accepted_at = Some(at);
                let (county, hardship, distance) = (info.posting_county, info.hardship, info.distance_m);
                self.fit.answer(&features, Answer::Accept, since_offer);
                for s in self.area(county) {
                    s.placements += 1;
                    s.hardship_placements += u32::from(hardship.is_hardship());
                    s.distances.push(distance);
                }
            }
            OfferState::Declined => {
                self.fit.answer(&features, Answer::Decline, since_offer);
                self.offers.remove(&offer);
            }
            OfferState::Expired => {
                self.fit.answer(&features, Answer::NoReply, since_offer);
                self.offers.remove(&offer);
            }
            OfferState::Arrived | OfferState::NoShow => {
                let arrived = state == OfferState::Arrived;
                let base = info.accepted_at.unwrap_or(at).max(info.start);
                info.arrived_at = Some(at);
                let county = info.posting_county;
                self.fit.attendance(features.history, arrived, at.0 - base.0);
                if !arrived {
                    for s in self.area(county) {
                        s.no_shows += 1;
                    }
                    self.offers.remove(&offer);
                }
            }
            OfferState::Completed => {
                if let Some(arrived) = info.arrived_at {
                    self.fit.completion(at.0 - arrived.0);
                }
                self.offers.remove(&offer);
            }
            OfferState::Withdrawn | OfferState::Cancelled | OfferState::Pending => {
                self.offers.remove(&offer);
            }
        }
    }

    /// The figures at the end of the window `to`.
    pub fn finish(mut self, engine: &Engine, to: Timestamp) -> Figures {
        let open: Vec<CompactString> = self.episodes.keys().cloned().collect();
        for id in open {
            self.close_episode(&id, to);
        }
        let mut rows: BTreeMap<Area, Vec<Option<f64>>> = BTreeMap::new();
        let n = metrics().len();
        for c in engine.regions().counties() {
            rows.insert(Area::County(c.code), vec![None; n]);
        }
        rows.insert(Area::City, vec![None; n]);
        // Postings published in the window.
        let mut fills: BTreeMap<Area, (u32, Vec<i64>)> = BTreeMap::new();
        for p in engine.postings() {
            let Some(published) = p.published_at.filter(|t| *t >= self.from && *t < to) else { continue };
            let county = engine.regions().get(p.county).code;
            for area in [Area::City, Area::County(county)] {
                let e = fills.entry(area).or_default();
                e.0 += 1;
                if let Some(filled) = p.filled_at.filter(|t| *t < to) {
                    e.1.push(filled.0 - published.0);
                }
            }
        }
        for (area, (published, mut filled)) in fills {
            let row = rows.entry(area).or_insert_with(|| vec![None; n]);
            row[at::POSTINGS] = Some(published as f64);
            row[at::FILL_RATE] = Some(100.0 * filled.len() as f64 / published as f64);
            row[at::FILL_MIN] = quantile(&mut filled, 0.5).map(|ms| ms as f64 / 60_000.0);
        }
        for (area, s) in &mut self.samples {
            let row = rows.entry(*area).or_insert_with(|| vec![None; n]);
            row[at::OFFERS] = Some(s.offers as f64);
            row[at::PLACEMENTS] = Some(s.placements as f64);
            row[at::HARDSHIP_PLACED] =
                (s.placements > 0).then(|| 100.0 * s.hardship_placements as f64 / s.placements as f64);
            row[at::TRAVEL_MEDIAN] = quantile(&mut s.distances, 0.5).map(f64::from);
            row[at::TRAVEL_P90] = quantile(&mut s.distances, 0.9).map(f64::from);
            row[at::TRAVEL_TOTAL] = Some(s.distances.iter().map(|d| *d as f64).sum::<f64>() / 1000.0);
            row[at::NO_SHOWS] = Some(s.no_shows as f64);
            for (k, waits) in s.waits.iter_mut().enumerate() {
                row[at::WAITS + 2 * k] = quantile(waits, 0.5).map(|ms| ms as f64 / 60_000.0);
                row[at::WAITS + 2 * k + 1] = quantile(waits, 0.9).map(|ms| ms as f64 / 60_000.0);
            }
        }
        // Pool shares and offer spread.
        let mut groups: BTreeMap<(u32, u16), Vec<u32>> = BTreeMap::new();
        let mut pool: BTreeMap<Area, (u32, u32)> = BTreeMap::new();
        for m in self.pool.values() {
            groups.entry((m.county, m.trade)).or_default().push(m.offers);
            for area in [Area::City, Area::County(m.county)] {
                let e = pool.entry(area).or_default();
                e.0 += 1;
                e.1 += u32::from(m.hardship.is_hardship());
            }
        }
        for (area, (all, hardship)) in pool {
            let row = rows.entry(area).or_insert_with(|| vec![None; n]);
            row[at::HARDSHIP_POOL] = Some(100.0 * hardship as f64 / all as f64);
        }
        let mut spread: BTreeMap<Area, (f64, f64)> = BTreeMap::new();
        for ((county, _), mut offers) in groups {
            if let Some(g) = gini(&mut offers) {
                for area in [Area::City, Area::County(county)] {
                    let e = spread.entry(area).or_default();
                    e.0 += g * offers.len() as f64;
                    e.1 += offers.len() as f64;
                }
            }
        }
        for (area, (sum, weight)) in spread {
            let row = rows.entry(area).or_insert_with(|| vec![None; n]);
            row[at::GINI] = (weight > 0.0).then(|| sum / weight);
        }
        Figures { areas: rows }
    }
}

/// Nearest-rank quantile (sorts in place).
pub fn quantile<T: Copy + Ord>(values: &mut [T], q: f64) -> Option<T> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

/// Gini coefficient of non-negative counts; `None` for fewer than two or an all-zero group.
pub fn gini(values: &mut [u32]) -> Option<f64> {
    let n = values.len();
    let total: f64 = values.iter().map(|v| *v as f64).sum();
    if n < 2 || total == 0.0 {
        return None;
    }
    values.sort_unstable();
    let weighted: f64 = values.iter().enumerate().map(|(i, v)| (i + 1) as f64 * *v as f64).sum();
    Some(2.0 * weighted / (n as f64 * total) - (n as f64 + 1.0) / n as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gini_of_equal_and_concentrated_counts() {
        assert_eq!(gini(&mut [3, 3, 3, 3]), Some(0.0));
        let g = gini(&mut [0, 0, 0, 8]).unwrap();
        assert!((g - 0.75).abs() < 1e-12, "{g}");
        assert_eq!(gini(&mut [0, 0]), None);
    }

    #[test]
    fn nearest_rank_quantiles() {
        let mut v = vec![5, 1, 4, 2, 3, 6, 7, 8, 9, 10];
        assert_eq!(quantile(&mut v, 0.5), Some(5));
        assert_eq!(quantile(&mut v, 0.9), Some(9));
        assert_eq!(quantile::<u32>(&mut [], 0.5), None);
    }
}
