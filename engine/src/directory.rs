//! The market directory (零工市场名录): each county's gig market and township
//! stations (零工驿站) with what the plan asks counties to publish — address,
//! map position, indoor area, opening hours, hotline, complaint channel and the
//! trades each focuses on. Entries change only through the `UpsertMarket` and
//! `RemoveMarket` commands, so the directory is logged and snapshotted like
//! the rest of the state.

use crate::geo::LatLon;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most focus trades a directory entry may list.
pub const MAX_MARKET_TRADES: usize = 32;
/// Largest indoor area accepted, m² (a sanity bound against typos).
pub const MAX_INDOOR_AREA_M2: u32 = 100_000;

/// What kind of place a directory entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MarketKind {
    /// The county's public-welfare gig market (one per county).
    CountyMarket,
    /// A township station (乡镇就业服务站, 零工驿站).
    TownshipStation,
}

impl MarketKind {
    /// Lower-case name for exports.
    pub fn name(self) -> &'static str {
        match self {
            MarketKind::CountyMarket => "county_market",
            MarketKind::TownshipStation => "township_station",
        }
    }
}

/// One directory entry, as given by `UpsertMarket` and as stored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MarketSpec {
    /// External id.
    pub id: CompactString,
    /// County division code.
    pub county: u32,
    /// Township code: required for a station, optional for a county market.
    pub township: Option<CompactString>,
    /// Name.
    pub name: CompactString,
    /// County market or township station.
    pub kind: MarketKind,
    /// Street address.
    pub address: CompactString,
    /// Map position (WGS-84).
    pub position: LatLon,
    /// Indoor service area, m².
    pub indoor_area_m2: u32,
    /// Whether it adapts an existing recruitment hall.
    pub adapts_recruitment_hall: bool,
    /// Opening hours, as published (e.g. `07:00-18:00`).
    pub opening_hours: CompactString,
    /// Service hotline.
    pub hotline: CompactString,
    /// Complaint and reporting channel (投诉举报): a phone number, address or URL.
    pub complaint_channel: CompactString,
    /// Catalogue ids of the trades it focuses on, no repeats.
    pub trades: Vec<CompactString>,
}

/// The directory: entries by id (so listings and exports come out in id order).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Directory {
    markets: BTreeMap<CompactString, MarketSpec>,
}

impl Directory {
    /// Builds from entries (from a snapshot); `None` if an id repeats.
    pub fn from_entries(entries: Vec<MarketSpec>) -> Option<Self> {
        let mut markets = BTreeMap::new();
        for m in entries {
            if markets.insert(m.id.clone(), m).is_some() {
                return None;
            }
        }
        Some(Self { markets })
    }

    /// An entry by id.
    pub fn get(&self, id: &str) -> Option<&MarketSpec> {
        self.markets.get(id)
    }

    /// Every entry, in id order.
    pub fn iter(&self) -> impl Iterator<Item = &MarketSpec> + Clone {
        self.markets.values()
    }

    /// Entries of one county, in id order.
    pub fn of_county(&self, county: u32) -> impl Iterator<Item = &MarketSpec> + Clone {
        self.markets.values().filter(move |m| m.county == county)
    }

    /// The county market of a county, if any.
    pub fn county_market(&self, county: u32) -> Option<&MarketSpec> {
        self.of_county(county).find(|m| m.kind == MarketKind::CountyMarket)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.markets.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.markets.is_empty()
    }

    /// Inserts or replaces; returns whether it was new.
    pub(crate) fn upsert(&mut self, spec: MarketSpec) -> bool {
        self.markets.insert(spec.id.clone(), spec).is_none()
    }

    /// Removes; returns the entry if it was there.
    pub(crate) fn remove(&mut self, id: &str) -> Option<MarketSpec> {
        self.markets.remove(id)
    }
}
