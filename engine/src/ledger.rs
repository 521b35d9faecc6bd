//! The ledger (工作台账): what each county market did on each day, kept up to
//! date inside [`crate::Engine::apply`] from the command's `now`.
//!
//! Days are calendar days in China Standard Time (UTC+8, no daylight saving):
//! a command applied at 2024-03-01T16:30Z counts for 2024-03-02. Flows
//! (registrations, postings by source, matches, placements, fills, no-shows,
//! complaints, active hours) are counted as they happen. Stocks (waiting
//! workers by trade, postings by state) are the state at the end of the day:
//! when the first state-changing command of a later day arrives, the engine
//! records every county's stocks for the day that closes (before applying it);
//! for the open day they are read live. A day on which nothing changed has the
//! stocks of the last earlier day that did.
//!
//! Medians are exact: each county-day keeps its samples (4 bytes per filled
//! posting, placement and resolved complaint), and a report sorts a copy.
//! Memory stays bounded: once a day is [`RAW_SAMPLE_DAYS`] days older than the
//! open day, its samples are sealed into their count and median, so a year of
//! ledger costs a fixed few hundred bytes per county-day.

use crate::model::{ComplaintCategory, PostingSource, PostingState, Timestamp};
use crate::stats::median;
use compact_str::CompactString;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

const MS_PER_HOUR: i64 = 3_600_000;
const MS_PER_DAY: i64 = 24 * MS_PER_HOUR;
/// China Standard Time's offset from UTC, milliseconds.
pub const CST_OFFSET_MS: i64 = 8 * MS_PER_HOUR;

/// A calendar day in China Standard Time, as days since 1970-01-01.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct LedgerDay(pub i32);

impl LedgerDay {
    /// The CST day of an instant.
    pub fn of(t: Timestamp) -> LedgerDay {
        let day = t.0.saturating_add(CST_OFFSET_MS).div_euclid(MS_PER_DAY);
        LedgerDay(day.clamp(i32::MIN.into(), i32::MAX.into()) as i32)
    }

    /// The CST hour (0-23) of an instant.
    pub fn hour_of(t: Timestamp) -> u8 {
        (t.0.saturating_add(CST_OFFSET_MS).rem_euclid(MS_PER_DAY) / MS_PER_HOUR) as u8
    }

    /// 00:00 CST of the day.
    pub fn start(self) -> Timestamp {
        Timestamp(self.0 as i64 * MS_PER_DAY - CST_OFFSET_MS)
    }

    /// The day of a proleptic Gregorian date, `None` if the date does not exist.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<LedgerDay> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        // Days from civil (H. Hinnant's algorithm).
        let y = if month <= 2 { year as i64 - 1 } else { year as i64 };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let mp = (month as i64 + 9) % 12;
        let doy = (153 * mp + 2) / 5 + day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        i32::try_from(era * 146_097 + doe - 719_468).ok().map(LedgerDay)
    }

    /// Year, month, day.
    pub fn ymd(self) -> (i32, u32, u32) {
        let z = self.0 as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let y = (yoe + era * 400 + if m <= 2 { 1 } else { 0 }) as i32;
        (y, m, d)
    }

    /// Parses `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<LedgerDay> {
        let mut parts = s.split('-');
        let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
            return None;
        }
        LedgerDay::from_ymd(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

impl fmt::Display for LedgerDay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// Days (counting the open one) whose samples stay raw; older days keep only
/// each figure's count and median.
pub const RAW_SAMPLE_DAYS: i32 = 7;

/// The samples behind one median of a county-day.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Samples {
    /// Every sample, for a recent day.
    Raw(Vec<u32>),
    /// A day past [`RAW_SAMPLE_DAYS`]: how many samples there were and their median.
    Sealed {
        /// Number of samples.
        count: u32,
        /// Their median (the lower one of an even count).
        median: Option<u32>,
    },
}

impl Default for Samples {
    fn default() -> Self {
        Samples::Raw(Vec::new())
    }
}

impl Samples {
    /// Adds a sample. A sealed day (reached only by a command dated more than
    /// [`RAW_SAMPLE_DAYS`] before the open day, which the service's monotonic
    /// clock never sends) counts it but keeps its median.
    pub fn push(&mut self, value: u32) {
        match self {
            Samples::Raw(v) => v.push(value),
            Samples::Sealed { count, .. } => *count = count.saturating_add(1),
        }
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        match self {
            Samples::Raw(v) => v.len(),
            Samples::Sealed { count, .. } => *count as usize,
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The median (the lower one of an even count), `None` when empty.
    pub fn median(&self) -> Option<u32> {
        match self {
            Samples::Raw(v) => median(v),
            Samples::Sealed { median, .. } => *median,
        }
    }

    fn seal(&mut self) {
        if let Samples::Raw(v) = self {
            *self = Samples::Sealed { count: u32::try_from(v.len()).unwrap_or(u32::MAX), median: median(v) };
        }
    }
}

/// Stocks at the end of a day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Closing {
    /// Waiting workers per trade, in catalogue order.
    pub waiting_by_trade: Vec<u32>,
    /// Postings per state, in [`PostingState::ALL`] order.
    pub postings_by_state: [u32; PostingState::ALL.len()],
}

/// Complaints of one category on one day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ComplaintDay {
    /// Filed that day.
    pub filed: u32,
    /// Resolved that day.
    pub resolved: u32,
    /// Filing-to-resolution times of those resolved, seconds.
    pub resolve_secs: Samples,
}

/// One county's ledger for one day.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DayLedger {
    /// New worker registrations.
    pub registrations: u32,
    /// Postings submitted, per source in [`PostingSource::ALL`] order.
    pub postings_by_source: [u32; 3],
    /// Instant matches (即时快招) that made at least one offer.
    pub instant_matches: u32,
    /// Offers made (instant and reverse matches).
    pub offers_made: u32,
    /// Offers accepted (placements).
    pub placements: u32,
    /// Placements that went to hardship workers.
    pub hardship_placements: u32,
    /// Travel distance of each placement, metres.
    pub placement_distances_m: Samples,
    /// Postings that became filled.
    pub postings_filled: u32,
    /// Time from publication to filled of each, seconds.
    pub fill_secs: Samples,
    /// Postings that expired or were cancelled without ever filling.
    pub postings_unfilled: u32,
    /// No-shows reported.
    pub no_shows: u32,
    /// Complaints per category in [`ComplaintCategory::ALL`] order.
    pub complaints: [ComplaintDay; 5],
    /// Bit `h` set when anything happened in hour `h` (CST): the plan's 运营时间.
    pub active_hours: u32,
    /// End-of-day stocks, once the day has closed.
    pub closing: Option<Closing>,
}

impl DayLedger {
    fn seal(&mut self) {
        self.placement_distances_m.seal();
        self.fill_secs.seal();
        for c in &mut self.complaints {
            c.resolve_secs.seal();
        }
    }
}

/// Every county-day ledger, and the day still open.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Ledger {
    days: BTreeMap<(u32, LedgerDay), DayLedger>,
    open_day: Option<LedgerDay>,
}

fn secs_u32(ms: i64) -> u32 {
    u32::try_from(ms.max(0) / 1000).unwrap_or(u32::MAX)
}

impl Ledger {
    /// The day whose stocks are live (the day of the last state change).
    pub fn open_day(&self) -> Option<LedgerDay> {
        self.open_day
    }

    /// A county-day entry as stored.
    pub fn get(&self, county: u32, day: LedgerDay) -> Option<&DayLedger> {
        self.days.get(&(county, day))
    }

    /// Every stored entry: ((county code, day), entry).
    pub fn entries(&self) -> impl Iterator<Item = (&(u32, LedgerDay), &DayLedger)> {
        self.days.iter()
    }

    /// Whether a command at `day` closes the open day.
    pub(crate) fn closes_open_day(&self, day: LedgerDay) -> bool {
        self.open_day.is_some_and(|open| day > open)
    }

    /// After a state-changing command at `day`: records the closing stocks of
    /// the previously open day (if `closing` is given) and opens `day`.
    pub(crate) fn advance(&mut self, day: LedgerDay, closing: Option<Vec<(u32, Closing)>>) {
        if let (Some(open), Some(closing)) = (self.open_day, closing) {
            for (county, c) in closing {
                self.days.entry((county, open)).or_default().closing = Some(c);
            }
        }
        if self.open_day.is_none_or(|open| day > open) {
            self.open_day = Some(day);
            let keep_raw_from = LedgerDay(day.0.saturating_sub(RAW_SAMPLE_DAYS - 1));
            for (_, d) in self.days.iter_mut().filter(|((_, d), _)| *d < keep_raw_from) {
                d.seal();
            }
        }
    }

    /// The county-day entry of an instant, marking its hour active.
    pub(crate) fn at(&mut self, county: u32, now: Timestamp) -> &mut DayLedger {
        let d = self.days.entry((county, LedgerDay::of(now))).or_default();
        d.active_hours |= 1 << LedgerDay::hour_of(now);
        d
    }

    pub(crate) fn posting_submitted(&mut self, county: u32, now: Timestamp, source: PostingSource) {
        let i = PostingSource::ALL.iter().position(|s| *s == source).unwrap_or(0);
        self.at(county, now).postings_by_source[i] += 1;
    }

    pub(crate) fn placement(&mut self, county: u32, now: Timestamp, distance_m: u32, hardship: bool) {
        let d = self.at(county, now);
        d.placements += 1;
        d.hardship_placements += hardship as u32;
        d.placement_distances_m.push(distance_m);
    }

    pub(crate) fn filled(&mut self, county: u32, now: Timestamp, secs: u64) {
        let d = self.at(county, now);
        d.postings_filled += 1;
        d.fill_secs.push(u32::try_from(secs).unwrap_or(u32::MAX));
    }

    pub(crate) fn complaint_filed(&mut self, county: u32, now: Timestamp, category: ComplaintCategory) {
        self.at(county, now).complaints[category_slot(category)].filed += 1;
    }

    pub(crate) fn complaint_resolved(
        &mut self,
        county: u32,
        now: Timestamp,
        category: ComplaintCategory,
        filed_at: Timestamp,
    ) {
        let c = &mut self.at(county, now).complaints[category_slot(category)];
        c.resolved += 1;
        c.resolve_secs.push(secs_u32(now.0.saturating_sub(filed_at.0)));
    }

    /// The end-of-day stocks in force for `county` on `day`: the closing of
    /// the last closed day at or before it. `None` when `day` is the open day
    /// or later (read the live state), or before any recorded day (all zero).
    pub(crate) fn closing_on(&self, county: u32, day: LedgerDay) -> Option<Option<&Closing>> {
        if self.open_day.is_none_or(|open| day >= open) {
            return None;
        }
        Some(self.days.range((county, LedgerDay(i32::MIN))..=(county, day)).rev().find_map(|(_, d)| d.closing.as_ref()))
    }
}

fn category_slot(c: ComplaintCategory) -> usize {
    ComplaintCategory::ALL.iter().position(|x| *x == c).unwrap_or(0)
}

/// One complaint category of a ledger report.
#[derive(Clone, Debug, PartialEq)]
pub struct ComplaintLine {
    /// Category.
    pub category: ComplaintCategory,
    /// Filed that day.
    pub filed: u32,
    /// Resolved that day.
    pub resolved: u32,
    /// Median filing-to-resolution time of those resolved, seconds.
    pub median_resolve_secs: Option<u32>,
}

/// One county's ledger for one day, with the derived figures.
#[derive(Clone, Debug, PartialEq)]
pub struct LedgerReport {
    /// The day (CST).
    pub day: LedgerDay,
    /// County division code.
    pub county: u32,
    /// New worker registrations.
    pub registrations: u32,
    /// Waiting workers per trade id at the end of the day (live for the open day).
    pub waiting_by_trade: Vec<(CompactString, u32)>,
    /// Postings per state at the end of the day (live for the open day).
    pub postings_by_state: Vec<(PostingState, u32)>,
    /// Postings submitted per source.
    pub postings_by_source: Vec<(PostingSource, u32)>,
    /// Instant matches that made at least one offer.
    pub instant_matches: u32,
    /// Offers made.
    pub offers_made: u32,
    /// Offers accepted.
    pub placements: u32,
    /// Placements that went to hardship workers.
    pub hardship_placements: u32,
    /// `hardship_placements / placements`; `None` without placements.
    pub hardship_share: Option<f64>,
    /// Postings that became filled.
    pub postings_filled: u32,
    /// Postings that expired or were cancelled unfilled.
    pub postings_unfilled: u32,
    /// `filled / (filled + unfilled)` over postings that reached an end that day; `None` if none did.
    pub fill_rate: Option<f64>,
    /// Median time from publication to filled, seconds.
    pub median_fill_secs: Option<u32>,
    /// Median travel distance of placements, metres.
    pub median_travel_m: Option<u32>,
    /// No-shows.
    pub no_shows: u32,
    /// Complaints per category.
    pub complaints: Vec<ComplaintLine>,
    /// Hours (CST, 0-23) with any activity.
    pub active_hours: Vec<u8>,
}

fn ratio(num: u32, den: u32) -> Option<f64> {
    (den > 0).then(|| num as f64 / den as f64)
}

impl LedgerReport {
    /// Builds a report from a day's flows and the stocks in force.
    pub(crate) fn build(
        county: u32,
        day: LedgerDay,
        flows: Option<&DayLedger>,
        trade_ids: impl Iterator<Item = CompactString>,
        stocks: &Closing,
    ) -> LedgerReport {
        let empty = DayLedger::default();
        let d = flows.unwrap_or(&empty);
        LedgerReport {
            day,
            county,
            registrations: d.registrations,
            waiting_by_trade: trade_ids
                .zip(stocks.waiting_by_trade.iter().copied().chain(std::iter::repeat(0)))
                .collect(),
            postings_by_state: PostingState::ALL.iter().copied().zip(stocks.postings_by_state).collect(),
            postings_by_source: PostingSource::ALL.iter().copied().zip(d.postings_by_source).collect(),
            instant_matches: d.instant_matches,
            offers_made: d.offers_made,
            placements: d.placements,
            hardship_placements: d.hardship_placements,
            hardship_share: ratio(d.hardship_placements, d.placements),
            postings_filled: d.postings_filled,
            postings_unfilled: d.postings_unfilled,
            fill_rate: ratio(d.postings_filled, d.postings_filled + d.postings_unfilled),
            median_fill_secs: d.fill_secs.median(),
            median_travel_m: d.placement_distances_m.median(),
            no_shows: d.no_shows,
            complaints: ComplaintCategory::ALL
                .iter()
                .zip(&d.complaints)
                .map(|(&category, c)| ComplaintLine {
                    category,
                    filed: c.filed,
                    resolved: c.resolved,
                    median_resolve_secs: c.resolve_secs.median(),
                })
                .collect(),
            active_hours: (0..24u8).filter(|h| d.active_hours & (1 << h) != 0).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_china_standard_time() {
        let d = LedgerDay::from_ymd(2024, 3, 2).unwrap();
        assert_eq!(d.to_string(), "2024-03-02");
        assert_eq!(LedgerDay::parse("2024-03-02"), Some(d));
        // 2024-03-01T16:00Z is midnight in Beijing.
        let midnight = Timestamp(1_709_308_800_000);
        assert_eq!(d.start(), midnight);
        assert_eq!(LedgerDay::of(midnight), d);
        assert_eq!(LedgerDay::of(Timestamp(midnight.0 - 1)), LedgerDay(d.0 - 1));
        assert_eq!(LedgerDay::hour_of(Timestamp(midnight.0 + 9 * MS_PER_HOUR)), 9);
        assert_eq!(LedgerDay::from_ymd(1970, 1, 1), Some(LedgerDay(0)));
        assert_eq!(LedgerDay::from_ymd(2024, 2, 29).map(|d| d.ymd()), Some((2024, 2, 29)));
        assert_eq!(LedgerDay::from_ymd(2023, 2, 29), None);
        assert_eq!(LedgerDay::parse("2024-3-2"), None);
        for n in [-800_000, -1, 0, 1, 19_000, 60_000] {
            let (y, m, dd) = LedgerDay(n).ymd();
            assert_eq!(LedgerDay::from_ymd(y, m, dd), Some(LedgerDay(n)));
        }
    }
}
