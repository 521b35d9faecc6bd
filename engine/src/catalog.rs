//! Reference data loaded as data, not code: the counties of a region and the
//! trade catalogue. Linfen's 17 counties and the default trades are embedded.

use crate::geo::LatLon;
use compact_str::CompactString;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// Linfen City's 17 county-level divisions (GB/T 2260 code, name, seat, 2020 census).
pub const LINFEN_COUNTIES_CSV: &str = include_str!("../data/linfen-counties.csv");
/// The default trade catalogue.
pub const DEFAULT_TRADES_CSV: &str = include_str!("../data/trades.csv");

/// Most trades a catalogue may hold; trade indexes are `u16`.
pub const MAX_TRADES: usize = 4096;

/// Errors loading reference data.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CatalogError {
    /// The CSV header lacks a required column.
    #[error("missing column `{0}`")]
    MissingColumn(&'static str),
    /// A data row could not be parsed.
    #[error("line {line}: {reason}")]
    BadRow {
        /// 1-based line number in the CSV text.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// Two rows share a key.
    #[error("duplicate key `{0}`")]
    Duplicate(String),
    /// The catalogue has no rows, or more than the supported maximum.
    #[error("catalogue size {0} outside 1..={MAX_TRADES}")]
    Size(usize),
}

/// A county-level division.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct County {
    /// GB/T 2260 six-digit division code, e.g. 141002.
    pub code: u32,
    /// Chinese name.
    pub name: CompactString,
    /// County seat position.
    pub seat: LatLon,
    /// Resident population (2020 census).
    pub population: u64,
}

/// Index of a county inside [`Regions`].
pub type CountyIdx = u16;

/// The set of counties an engine serves.
#[derive(Clone, Debug, PartialEq)]
pub struct Regions {
    counties: Vec<County>,
    by_code: FxHashMap<u32, CountyIdx>,
}

impl Regions {
    /// Linfen's 17 counties.
    pub fn linfen() -> Self {
        Self::from_csv(LINFEN_COUNTIES_CSV).expect("embedded county data is valid")
    }

    /// Builds from counties given directly.
    pub fn new(counties: Vec<County>) -> Result<Self, CatalogError> {
        if counties.is_empty() || counties.len() > u16::MAX as usize {
            return Err(CatalogError::Size(counties.len()));
        }
        let mut by_code = FxHashMap::default();
        for (i, c) in counties.iter().enumerate() {
            if by_code.insert(c.code, i as CountyIdx).is_some() {
                return Err(CatalogError::Duplicate(c.code.to_string()));
            }
        }
        Ok(Self { counties, by_code })
    }

    /// Parses `code,name,seat_lat,seat_lon,population_2020` CSV.
    pub fn from_csv(text: &str) -> Result<Self, CatalogError> {
        let rows = parse_csv(text, &["code", "name", "seat_lat", "seat_lon", "population_2020"])?;
        let mut counties = Vec::with_capacity(rows.len());
        for (line, f) in rows {
            let bad = |reason: &str| CatalogError::BadRow { line, reason: reason.into() };
            let code: u32 = f[0].parse().map_err(|_| bad("code is not a number"))?;
            let lat: f64 = f[2].parse().map_err(|_| bad("seat_lat is not a number"))?;
            let lon: f64 = f[3].parse().map_err(|_| bad("seat_lon is not a number"))?;
            let seat = LatLon::new(lat, lon).ok_or_else(|| bad("seat out of range"))?;
            let population = f[4].parse().map_err(|_| bad("population is not a number"))?;
            counties.push(County { code, name: f[1].into(), seat, population });
        }
        Self::new(counties)
    }

    /// All counties in load order.
    pub fn counties(&self) -> &[County] {
        &self.counties
    }

    /// Looks up a county by division code.
    pub fn index_of(&self, code: u32) -> Option<CountyIdx> {
        self.by_code.get(&code).copied()
    }

    /// The county at an index.
    pub fn get(&self, idx: CountyIdx) -> &County {
        &self.counties[idx as usize]
    }

    /// Number of counties.
    pub fn len(&self) -> usize {
        self.counties.len()
    }

    /// Always false for a constructed set.
    pub fn is_empty(&self) -> bool {
        self.counties.is_empty()
    }
}

/// One trade of the catalogue.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trade {
    /// Stable identifier, e.g. `mason`.
    pub id: CompactString,
    /// Chinese name.
    pub name_zh: CompactString,
    /// English name.
    pub name_en: CompactString,
    /// Industry group (建筑建材, 搬家货运, ...).
    pub industry: CompactString,
    /// National occupation classification code.
    pub occupation_code: CompactString,
}

/// Index of a trade inside [`TradeCatalog`].
pub type TradeIdx = u16;

/// The trade catalogue: data, extensible without code changes.
#[derive(Clone, Debug, PartialEq)]
pub struct TradeCatalog {
    trades: Vec<Trade>,
    by_id: FxHashMap<CompactString, TradeIdx>,
}

impl TradeCatalog {
    /// The embedded default catalogue.
    pub fn default_catalog() -> Self {
        Self::from_csv(DEFAULT_TRADES_CSV).expect("embedded trade data is valid")
    }

    /// Builds from trades given directly (at most [`MAX_TRADES`]).
    pub fn new(trades: Vec<Trade>) -> Result<Self, CatalogError> {
        if trades.is_empty() || trades.len() > MAX_TRADES {
            return Err(CatalogError::Size(trades.len()));
        }
        let mut by_id = FxHashMap::default();
        for (i, t) in trades.iter().enumerate() {
            if by_id.insert(t.id.clone(), i as TradeIdx).is_some() {
                return Err(CatalogError::Duplicate(t.id.to_string()));
            }
        }
        Ok(Self { trades, by_id })
    }

    /// Parses `id,name_zh,name_en,industry,occupation_code[,...]` CSV.
    pub fn from_csv(text: &str) -> Result<Self, CatalogError> {
        let rows = parse_csv(text, &["id", "name_zh", "name_en", "industry", "occupation_code"])?;
        let trades = rows
            .into_iter()
            .map(|(line, f)| {
                if f[0].is_empty() {
                    return Err(CatalogError::BadRow { line, reason: "empty id".into() });
                }
                Ok(Trade {
                    id: f[0].into(),
                    name_zh: f[1].into(),
                    name_en: f[2].into(),
                    industry: f[3].into(),
                    occupation_code: f[4].into(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(trades)
    }

    /// All trades in load order.
    pub fn trades(&self) -> &[Trade] {
        &self.trades
    }

    /// Looks up a trade by id.
    pub fn index_of(&self, id: &str) -> Option<TradeIdx> {
        self.by_id.get(id).copied()
    }

    /// The trade at an index.
    pub fn get(&self, idx: TradeIdx) -> &Trade {
        &self.trades[idx as usize]
    }

    /// Number of trades.
    pub fn len(&self) -> usize {
        self.trades.len()
    }

    /// Always false for a constructed catalogue.
    pub fn is_empty(&self) -> bool {
        self.trades.is_empty()
    }
}

/// Splits simple CSV (no quoting) and returns, per data row, the fields named by
/// `columns` in that order, with the row's 1-based line number.
fn parse_csv<'a>(text: &'a str, columns: &[&'static str]) -> Result<Vec<(usize, Vec<&'a str>)>, CatalogError> {
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().map(|(_, h)| h.split(',').map(str::trim).collect()).unwrap_or_default();
    let positions = columns
        .iter()
        .map(|c| header.iter().position(|h| h == c).ok_or(CatalogError::MissingColumn(c)))
        .collect::<Result<Vec<_>, _>>()?;
    lines
        .map(|(i, line)| {
            let fields: Vec<&str> = line.split(',').map(str::trim).collect();
            let picked = positions
                .iter()
                .map(|&p| {
                    fields.get(p).copied().ok_or_else(|| CatalogError::BadRow {
                        line: i + 1,
                        reason: format!("expected {} fields, found {}", header.len(), fields.len()),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok((i + 1, picked))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linfen_has_17_counties_adding_to_census_total() {
        let r = Regions::linfen();
        assert_eq!(r.len(), 17);
        let total: u64 = r.counties().iter().map(|c| c.population).sum();
        assert_eq!(total, 3_976_481);
        assert_eq!(r.get(r.index_of(141002).unwrap()).name, "尧都区");
    }

    #[test]
    fn catalogue_holds_256_trades_without_code_change() {
        let mut csv = String::from("id,name_zh,name_en,industry,occupation_code\n");
        for i in 0..300 {
            csv.push_str(&format!("t{i},工{i},trade {i},建筑建材,6-00-00-{i:02}\n"));
        }
        let c = TradeCatalog::from_csv(&csv).unwrap();
        assert_eq!(c.len(), 300);
        assert_eq!(c.index_of("t299"), Some(299));
    }

    #[test]
    fn default_catalogue_loads() {
        let c = TradeCatalog::default_catalog();
        assert!(c.len() >= 13);
        assert!(c.index_of("mason").is_some());
    }

    #[test]
    fn bad_rows_are_reported() {
        let err = Regions::from_csv("code,name,seat_lat,seat_lon,population_2020\nx,a,1,2,3\n").unwrap_err();
        assert!(matches!(err, CatalogError::BadRow { line: 2, .. }));
        let err = TradeCatalog::from_csv("id,name_zh\n").unwrap_err();
        assert_eq!(err, CatalogError::MissingColumn("name_en"));
    }
}
