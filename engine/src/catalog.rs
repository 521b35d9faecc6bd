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
    /// A data row is not well-formed CSV (wrong number of fields, bad quoting, not UTF-8).
    #[error("line {line}: {reason}")]
    BadRow {
        /// 1-based line number in the CSV text.
        line: usize,
        /// What was wrong.
        reason: String,
    },
    /// A field of a data row holds an unusable value.
    #[error("line {line}, column {column} (`{name}`): {reason}")]
    BadField {
        /// 1-based line number in the CSV text.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// Column name from the header.
        name: &'static str,
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
        for row in rows {
            let code: u32 = row.parse(0, "not a number")?;
            let lat: f64 = row.parse(2, "not a number")?;
            let lon: f64 = row.parse(3, "not a number")?;
            let seat = LatLon::new(lat, lon).ok_or_else(|| row.bad(2, "seat out of range"))?;
            let population = row.parse(4, "not a number")?;
            counties.push(County { code, name: row.get(1).into(), seat, population });
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
            .map(|row| {
                if row.get(0).is_empty() {
                    return Err(row.bad(0, "empty id"));
                }
                Ok(Trade {
                    id: row.get(0).into(),
                    name_zh: row.get(1).into(),
                    name_en: row.get(2).into(),
                    industry: row.get(3).into(),
                    occupation_code: row.get(4).into(),
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

/// One data row of a CSV file: the wanted columns' values, in the order asked for.
struct Row {
    line: usize,
    record: csv::StringRecord,
    /// Per wanted column: its name and 0-based position in the file.
    columns: std::rc::Rc<[(&'static str, usize)]>,
}

impl Row {
    /// The value of the `i`-th wanted column (present: rows have the header's length).
    fn get(&self, i: usize) -> &str {
        self.record.get(self.columns[i].1).unwrap_or_default()
    }

    fn bad(&self, i: usize, reason: &str) -> CatalogError {
        let (name, position) = self.columns[i];
        CatalogError::BadField { line: self.line, column: position + 1, name, reason: reason.into() }
    }

    fn parse<T: std::str::FromStr>(&self, i: usize, reason: &str) -> Result<T, CatalogError> {
        self.get(i).parse().map_err(|_| self.bad(i, &format!("{reason}: `{}`", self.get(i))))
    }
}

/// Reads CSV through the `csv` crate (RFC 4180 quoting, a leading UTF-8
/// byte-order mark as Excel and WPS write for "CSV UTF-8", blank lines
/// skipped, fields trimmed) and returns the data rows with the columns named
/// by `columns` located by the header.
fn parse_csv(text: &str, columns: &[&'static str]) -> Result<Vec<Row>, CatalogError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(text.as_bytes());
    // The line a record starts on, from the byte offset where reading it
    // began (blank lines before it skipped).
    let line_at = |p: &csv::Position| {
        let mut byte = (p.byte() as usize).min(text.len());
        while matches!(text.as_bytes().get(byte), Some(b'\r' | b'\n')) {
            byte += 1;
        }
        text.as_bytes()[..byte].iter().filter(|&&b| b == b'\n').count() + 1
    };
    let row_error = |e: csv::Error| {
        let line = e.position().map(line_at).unwrap_or(1);
        let reason = match e.kind() {
            csv::ErrorKind::UnequalLengths { expected_len, len, .. } => {
                format!("expected {expected_len} fields, found {len}")
            }
            csv::ErrorKind::Utf8 { err, .. } => format!("field {} is not UTF-8", err.field() + 1),
            _ => e.to_string(),
        };
        CatalogError::BadRow { line, reason }
    };
    let header = reader.headers().map_err(row_error)?.clone();
    let wanted = columns
        .iter()
        .map(|&c| header.iter().position(|h| h == c).map(|p| (c, p)).ok_or(CatalogError::MissingColumn(c)))
        .collect::<Result<std::rc::Rc<[_]>, _>>()?;
    let mut rows = Vec::new();
    loop {
        let start = reader.position().clone();
        let mut record = csv::StringRecord::new();
        if !reader.read_record(&mut record).map_err(row_error)? {
            break;
        }
        rows.push(Row { line: line_at(&start), record, columns: wanted.clone() });
    }
    Ok(rows)
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

    const COUNTY_HEADER: &str = "code,name,seat_lat,seat_lon,population_2020\n";

    #[test]
    fn bad_rows_are_reported_with_line_and_column() {
        let err =
            Regions::from_csv(&format!("{COUNTY_HEADER}141002,尧都区,36.08,111.52,1\n141023,襄汾县,x,111.44,2\n"))
                .unwrap_err();
        assert_eq!(err.to_string(), "line 3, column 3 (`seat_lat`): not a number: `x`");
        let err = Regions::from_csv(&format!("{COUNTY_HEADER}141002,尧都区,36.08\n")).unwrap_err();
        assert_eq!(err, CatalogError::BadRow { line: 2, reason: "expected 5 fields, found 3".into() });
        let err = TradeCatalog::from_csv("id,name_zh\n").unwrap_err();
        assert_eq!(err, CatalogError::MissingColumn("name_en"));
        let err =
            TradeCatalog::from_csv("id,name_zh,name_en,industry,occupation_code\n,泥瓦工,mason,建筑,6\n").unwrap_err();
        assert_eq!(err.to_string(), "line 2, column 1 (`id`): empty id");
    }

    #[test]
    fn a_byte_order_mark_from_excel_or_wps_is_skipped() {
        let text = format!("\u{feff}{COUNTY_HEADER}141002,尧都区,36.08,111.52,1\r\n");
        let r = Regions::from_csv(&text).unwrap();
        assert_eq!(r.get(0).name, "尧都区");
        let trades =
            TradeCatalog::from_csv("\u{feff}id,name_zh,name_en,industry,occupation_code\nmason,泥瓦工,Mason,建筑,6\n");
        assert_eq!(trades.unwrap().index_of("mason"), Some(0));
    }

    #[test]
    fn quoted_fields_may_hold_commas_and_quotes() {
        let text = "id,name_zh,name_en,industry,occupation_code,note\n\
                    porter,装卸搬运工,\"Porter, loader\",\"搬家,货运\",6-29-01-01,\"say \"\"hi\"\"\"\n";
        let c = TradeCatalog::from_csv(text).unwrap();
        let t = c.get(0);
        assert_eq!((t.name_en.as_str(), t.industry.as_str()), ("Porter, loader", "搬家,货运"));
        // Columns are found by name, in any order, and blank lines are skipped.
        let r = Regions::from_csv("name,code,population_2020,seat_lon,seat_lat\n\n\"吉县\",141028,1,110.68,36.1\n")
            .unwrap();
        assert_eq!((r.get(0).code, r.get(0).name.as_str()), (141028, "吉县"));
    }
}
