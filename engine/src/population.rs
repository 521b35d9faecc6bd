//! A deterministic, seeded generator of a Linfen-shaped population: workers
//! scattered around the county seats in proportion to census population, trades
//! drawn from the catalogue. Shared by tests, benches and the load tool.

use crate::catalog::{Regions, TradeCatalog};
use crate::command::{EmployerSpec, PostingSpec, TradeSkillSpec, WorkerSpec};
use crate::geo::LatLon;
use crate::model::{Availability, EmployerKind, Hardship, PostingSource, Timestamp};
use compact_str::{format_compact, CompactString};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use smallvec::SmallVec;

/// Generator settings.
#[derive(Clone, Debug)]
pub struct PopulationConfig {
    /// RNG seed: the same seed gives the same population.
    pub seed: u64,
    /// Standard deviation of a worker's distance from the county seat, metres.
    pub spread_m: f64,
    /// Share of workers with a hardship category.
    pub hardship_share: f64,
    /// Share of employers that are verified.
    pub verified_share: f64,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        Self { seed: 20231, spread_m: 8_000.0, hardship_share: 0.12, verified_share: 0.8 }
    }
}

/// The generator. Draws are sequential: call in the same order for the same result.
pub struct Population {
    config: PopulationConfig,
    regions: Regions,
    trades: TradeCatalog,
    cumulative: Vec<u64>,
    rng: ChaCha8Rng,
}

impl Population {
    /// A generator over the given regions and trades.
    pub fn new(config: PopulationConfig, regions: Regions, trades: TradeCatalog) -> Self {
        let mut acc = 0;
        let cumulative = regions
            .counties()
            .iter()
            .map(|c| {
                acc += c.population.max(1);
                acc
            })
            .collect();
        let rng = ChaCha8Rng::seed_from_u64(config.seed);
        Self { config, regions, trades, cumulative, rng }
    }

    /// Linfen's 17 counties and the default trades.
    pub fn linfen(config: PopulationConfig) -> Self {
        Self::new(config, Regions::linfen(), TradeCatalog::default_catalog())
    }

    /// A county index drawn in proportion to population.
    pub fn pick_county(&mut self) -> usize {
        let total = *self.cumulative.last().expect("regions are never empty");
        let x = self.rng.random_range(0..total);
        self.cumulative.partition_point(|&c| c <= x)
    }

    /// A county code drawn in proportion to population.
    pub fn pick_county_code(&mut self) -> u32 {
        let i = self.pick_county();
        self.regions.counties()[i].code
    }

    /// A position scattered around a county's seat (normal in distance).
    pub fn position_near(&mut self, county_code: u32) -> LatLon {
        let seat = self
            .regions
            .index_of(county_code)
            .map(|i| self.regions.get(i).seat)
            .unwrap_or(LatLon { lat: 36.08, lon: 111.52 });
        // Box-Muller for two independent normal offsets.
        let u1: f64 = self.rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = self.rng.random_range(0.0..1.0);
        let r = (-2.0 * u1.ln()).sqrt() * self.config.spread_m;
        let (dn, de) = (r * (std::f64::consts::TAU * u2).cos(), r * (std::f64::consts::TAU * u2).sin());
        let lat = (seat.lat + dn / 111_195.0).clamp(-89.9, 89.9);
        let lon = seat.lon + de / (111_195.0 * lat.to_radians().cos());
        LatLon { lat, lon: lon.clamp(-180.0, 180.0) }
    }

    /// A trade id drawn uniformly from the catalogue.
    pub fn pick_trade(&mut self) -> CompactString {
        let i = self.rng.random_range(0..self.trades.len());
        self.trades.trades()[i].id.clone()
    }

    /// The `i`-th worker: id `w{i}`, 1 to 3 trades, always available.
    pub fn worker(&mut self, i: u64) -> WorkerSpec {
        let county = self.pick_county_code();
        let position = self.position_near(county);
        let n_trades = 1 + (self.rng.random_range(0..10u32) / 5) as usize + usize::from(self.rng.random_bool(0.1));
        let mut trades: SmallVec<[TradeSkillSpec; 4]> = SmallVec::new();
        while trades.len() < n_trades.min(self.trades.len()) {
            let t = self.pick_trade();
            if !trades.iter().any(|x| x.trade == t) {
                trades.push(TradeSkillSpec { trade: t, level: self.rng.random_range(1..=5) });
            }
        }
        let hardship = if self.rng.random_bool(self.config.hardship_share) {
            [Hardship::LongTermUnemployed, Hardship::LowIncomeHousehold, Hardship::Disabled, Hardship::OlderWorker]
                [self.rng.random_range(0..4)]
        } else {
            Hardship::None
        };
        WorkerSpec {
            id: format_compact!("w{i}"),
            name: format_compact!("零工{i}"),
            phone: format_compact!("1{:010}", self.rng.random_range(3_000_000_000u64..9_999_999_999)),
            trades,
            position,
            county,
            township: Some(format_compact!("{county}{:03}", self.rng.random_range(1..=12))),
            availability: Availability::ALWAYS,
            min_daily_wage: self.rng.random_range(8..=20) * 10,
            hardship,
        }
    }

    /// The `i`-th employer: id `e{i}`.
    pub fn employer(&mut self, i: u64) -> EmployerSpec {
        let company = self.rng.random_bool(0.6);
        EmployerSpec {
            id: format_compact!("e{i}"),
            name: format_compact!("用工单位{i}"),
            kind: if company {
                EmployerKind::Company { credit_code: format_compact!("91141000MA{:08}", i % 100_000_000) }
            } else {
                EmployerKind::Individual
            },
            verified: self.rng.random_bool(self.config.verified_share),
        }
    }

    /// The `i`-th posting (id `p{i}`) of an employer, starting an hour after `now`.
    pub fn posting(&mut self, i: u64, employer: &str, now: Timestamp) -> PostingSpec {
        let county = self.pick_county_code();
        PostingSpec {
            id: format_compact!("p{i}"),
            employer: employer.into(),
            trade: self.pick_trade(),
            headcount: self.rng.random_range(1..=10),
            position: self.position_near(county),
            county,
            township: None,
            max_distance_m: self.rng.random_range(5..=30) * 1000,
            daily_wage: self.rng.random_range(15..=35) * 10,
            start: now.plus_secs(3600),
            duration_minutes: 8 * 60,
            offer_ttl_secs: 0,
            description: CompactString::default(),
            source: [PostingSource::CountyDesk, PostingSource::TownshipStation, PostingSource::Online]
                [self.rng.random_range(0..3)],
            version: 1,
        }
    }

    /// Direct access to the generator's RNG, for callers drawing their own mixes.
    pub fn rng(&mut self) -> &mut ChaCha8Rng {
        &mut self.rng
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_population() {
        let mut a = Population::linfen(PopulationConfig::default());
        let mut b = Population::linfen(PopulationConfig::default());
        for i in 0..100 {
            assert_eq!(a.worker(i), b.worker(i));
        }
    }

    #[test]
    fn counties_drawn_by_population() {
        let mut p = Population::linfen(PopulationConfig::default());
        let n = 20_000;
        let yaodu = (0..n).filter(|_| p.pick_county_code() == 141002).count();
        // 959,198 of 3,976,481 = 24.1%.
        let share = yaodu as f64 / n as f64;
        assert!((share - 0.241).abs() < 0.015, "{share}");
    }
}
