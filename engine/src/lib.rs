//! linggong-engine: the deterministic matching engine for public-welfare gig
//! labour markets (公益性零工市场).
//!
//! The engine keeps every worker, employer, posting and live offer of a region
//! in memory and applies [`Command`]s with a caller-supplied `now`. It does no
//! IO and reads no clock, so the same commands always give the same state:
//! that is what makes a write-ahead log replayable. Waiting workers are indexed
//! per trade (and hardship class) in R-trees over 3-D unit vectors (packed
//! flat arrays plus a small `rstar` tree of recent insertions), so
//! that R-tree distance order equals great-circle order; final distances are
//! haversine.
//!
//! ```
//! use linggong_engine::*;
//! let mut engine = Engine::linfen(EngineConfig::default());
//! let now = Timestamp(1_700_000_000_000);
//! let mut events = Vec::new();
//! let outcome = engine.apply(now, &Command::Tick, &mut events).unwrap();
//! assert_eq!(outcome, Outcome::Ticked { offers_expired: 0, postings_expired: 0, offers_made: 0 });
//! assert!(events.is_empty());
//! assert_eq!(engine.next_deadline(), None);
//! ```

pub mod batch;
pub mod catalog;
pub mod command;
pub mod config;
pub mod cow_vec;
pub mod crs;
mod decode;
pub mod directory;
mod engine;
pub mod error;
pub mod geo;
mod index;
pub mod ledger;
pub mod model;
pub mod population;
pub mod standards;
pub mod stats;

pub use batch::{assign_batch, BatchCandidate, BatchPair, BatchPosting};
pub use catalog::{County, Regions, Trade, TradeCatalog};
pub use command::*;
pub use config::{BatchPolicy, EngineConfig, Limits, PolicyViolation, RankingPolicy};
pub use cow_vec::CowVec;
pub use crs::Crs;
pub use directory::{Directory, MarketKind, MarketSpec};
pub use engine::{
    normalized_phone, validate, BatchWindow, BatchWindows, Engine, EngineRecords, EngineSnapshot, MAX_WINDOW_REQUESTS,
};
pub use error::{EngineError, InvariantViolation, SnapshotError};
pub use geo::LatLon;
pub use ledger::{LedgerDay, LedgerReport};
pub use model::*;
pub use standards::StandardsReport;
pub use stats::{CountyCounters, CountyStats};
