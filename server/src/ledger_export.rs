//! The ledger (工作台账) as a county office opens it: a table over a range of
//! days for any set of counties, one value per cell (a column per trade, per
//! posting state, per source and per complaint category), county names beside
//! codes, Chinese headers by default (English on request). Written as CSV
//! with a byte-order mark (so Excel and WPS on a Chinese Windows desktop read
//! UTF-8) or as an XLSX workbook with one sheet per county and a summary
//! sheet, month by month.
//!
//! Rows are per day or per month. Flows add up over a month; stocks (waiting
//! workers, postings by state) are those at the end of the period; rates are
//! recomputed from the summed counts. Medians do not add up, so month rows
//! leave them empty.

use linggong_engine::{ComplaintCategory, Engine, LedgerDay, LedgerReport, PostingSource, PostingState};
use rust_xlsxwriter::{Format, Workbook, XlsxError};

/// Language of the headers and names.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Lang {
    /// Chinese (the default).
    #[default]
    Zh,
    /// English.
    En,
}

/// One row per day or per calendar month.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Period {
    /// A row per day.
    #[default]
    Day,
    /// A row per calendar month (China Standard Time).
    Month,
}

/// What to export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerExport {
    /// First day, inclusive.
    pub from: LedgerDay,
    /// Last day, inclusive.
    pub to: LedgerDay,
    /// County codes, in output order.
    pub counties: Vec<u32>,
    /// Row period.
    pub period: Period,
    /// Header language.
    pub lang: Lang,
}

/// Most days one export covers (a little over three years).
pub const MAX_EXPORT_DAYS: i32 = 1_200;

/// One cell.
#[derive(Clone, Debug, PartialEq)]
pub enum Cell {
    /// Text.
    Text(String),
    /// A count.
    Int(u64),
    /// A ratio or measure.
    Num(f64),
    /// Nothing (e.g. a median without samples).
    Empty,
}

impl Cell {
    fn opt_u32(v: Option<u32>) -> Cell {
        v.map_or(Cell::Empty, |v| Cell::Int(v.into()))
    }
    fn opt_ratio(v: Option<f64>) -> Cell {
        v.map_or(Cell::Empty, |v| Cell::Num((v * 1000.0).round() / 1000.0))
    }
    fn csv(&self) -> String {
        match self {
            Cell::Text(s) => crate::report::csv_field(s),
            Cell::Int(n) => n.to_string(),
            Cell::Num(x) => format!("{x}"),
            Cell::Empty => String::new(),
        }
    }
}

/// A table: headers and rows of cells.
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    /// Column headers.
    pub headers: Vec<String>,
    /// Rows, each as long as the headers.
    pub rows: Vec<Vec<Cell>>,
}

fn state_name(s: PostingState, lang: Lang) -> &'static str {
    match (s, lang) {
        (PostingState::PendingReview, Lang::Zh) => "待审核",
        (PostingState::Published, Lang::Zh) => "已发布",
        (PostingState::Filling, Lang::Zh) => "招募中",
        (PostingState::Filled, Lang::Zh) => "已招满",
        (PostingState::Expired, Lang::Zh) => "已过期",
        (PostingState::Cancelled, Lang::Zh) => "已取消",
        (PostingState::Rejected, Lang::Zh) => "已驳回",
        (PostingState::PendingReview, Lang::En) => "pending review",
        (PostingState::Published, Lang::En) => "published",
        (PostingState::Filling, Lang::En) => "filling",
        (PostingState::Filled, Lang::En) => "filled",
        (PostingState::Expired, Lang::En) => "expired",
        (PostingState::Cancelled, Lang::En) => "cancelled",
        (PostingState::Rejected, Lang::En) => "rejected",
    }
}

fn source_name(s: PostingSource, lang: Lang) -> &'static str {
    match (s, lang) {
        (PostingSource::CountyDesk, Lang::Zh) => "市场窗口",
        (PostingSource::TownshipStation, Lang::Zh) => "乡镇驿站",
        (PostingSource::Online, Lang::Zh) => "线上",
        (PostingSource::CountyDesk, Lang::En) => "county desk",
        (PostingSource::TownshipStation, Lang::En) => "township station",
        (PostingSource::Online, Lang::En) => "online",
    }
}

fn category_name(c: ComplaintCategory, lang: Lang) -> &'static str {
    match (c, lang) {
        (ComplaintCategory::WageArrears, Lang::Zh) => "拖欠工资",
        (ComplaintCategory::Safety, Lang::Zh) => "安全隐患",
        (ComplaintCategory::FalsePosting, Lang::Zh) => "虚假信息",
        (ComplaintCategory::Discrimination, Lang::Zh) => "就业歧视",
        (ComplaintCategory::Other, Lang::Zh) => "其他",
        (ComplaintCategory::WageArrears, Lang::En) => "wage arrears",
        (ComplaintCategory::Safety, Lang::En) => "safety",
        (ComplaintCategory::FalsePosting, Lang::En) => "false posting",
        (ComplaintCategory::Discrimination, Lang::En) => "discrimination",
        (ComplaintCategory::Other, Lang::En) => "other",
    }
}

fn headers(engine: &Engine, export: &LedgerExport) -> Vec<String> {
    let zh = export.lang == Lang::Zh;
    let t = |zh_text: &str, en_text: &str| if zh { zh_text.to_string() } else { en_text.to_string() };
    let mut h = vec![
        match (export.period, zh) {
            (Period::Day, true) => "日期".into(),
            (Period::Day, false) => "day".into(),
            (Period::Month, true) => "月份".into(),
            (Period::Month, false) => "month".into(),
        },
        t("区县代码", "county code"),
        t("区县", "county"),
        t("新登记零工", "registrations"),
    ];
    for trade in engine.trades().trades() {
        h.push(if zh { format!("待岗零工·{}", trade.name_zh) } else { format!("waiting: {}", trade.name_en) });
    }
    for s in PostingState::ALL {
        h.push(if zh {
            format!("用工信息·{}", state_name(s, export.lang))
        } else {
            format!("postings: {}", state_name(s, export.lang))
        });
    }
    for s in PostingSource::ALL {
        h.push(if zh {
            format!("新发布·{}", source_name(s, export.lang))
        } else {
            format!("submitted: {}", source_name(s, export.lang))
        });
    }
    h.extend([
        t("即时快招", "instant matches"),
        t("派单", "offers made"),
        t("匹配成功", "placements"),
        t("困难零工匹配", "hardship placements"),
        t("困难零工占比", "hardship share"),
        t("招满", "postings filled"),
        t("未招满结束", "postings unfilled"),
        t("招满率", "fill rate"),
        t("招满用时中位数（秒）", "median time to fill (s)"),
        t("通勤距离中位数（米）", "median travel distance (m)"),
        t("未到岗", "no-shows"),
    ]);
    for c in ComplaintCategory::ALL {
        let name = category_name(c, export.lang);
        if zh {
            h.push(format!("投诉受理·{name}"));
            h.push(format!("投诉办结·{name}"));
            h.push(format!("办结用时中位数（秒）·{name}"));
        } else {
            h.push(format!("complaints filed: {name}"));
            h.push(format!("complaints resolved: {name}"));
            h.push(format!("median time to resolve (s): {name}"));
        }
    }
    h.extend([
        t("运营小时数", "active hours"),
        t("首个运营时段", "first active hour"),
        t("末个运营时段", "last active hour"),
    ]);
    h
}

/// One county over one period: the days' reports folded together.
struct Fold {
    label: String,
    first: LedgerReport,
    last: LedgerReport,
    days: Vec<LedgerReport>,
}

fn month_label(day: LedgerDay) -> String {
    let (y, m, _) = day.ymd();
    format!("{y:04}-{m:02}")
}

fn row(engine: &Engine, export: &LedgerExport, f: &Fold) -> Vec<Cell> {
    let name =
        engine.regions().index_of(f.first.county).map(|i| engine.regions().get(i).name.to_string()).unwrap_or_default();
    let sum = |g: &dyn Fn(&LedgerReport) -> u32| -> u64 { f.days.iter().map(|d| u64::from(g(d))).sum() };
    let single = f.days.len() == 1;
    let median = |v: Option<u32>| if single { Cell::opt_u32(v) } else { Cell::Empty };
    let ratio =
        |num: u64, den: u64| if den == 0 { Cell::Empty } else { Cell::opt_ratio(Some(num as f64 / den as f64)) };
    let mut r = vec![
        Cell::Text(f.label.clone()),
        Cell::Int(f.first.county.into()),
        Cell::Text(name),
        Cell::Int(sum(&|d| d.registrations)),
    ];
    r.extend(f.last.waiting_by_trade.iter().map(|(_, n)| Cell::Int((*n).into())));
    r.extend(f.last.postings_by_state.iter().map(|(_, n)| Cell::Int((*n).into())));
    for i in 0..PostingSource::ALL.len() {
        r.push(Cell::Int(sum(&|d| d.postings_by_source.get(i).map_or(0, |(_, n)| *n))));
    }
    let placements = sum(&|d| d.placements);
    let hardship = sum(&|d| d.hardship_placements);
    let filled = sum(&|d| d.postings_filled);
    let unfilled = sum(&|d| d.postings_unfilled);
    r.extend([
        Cell::Int(sum(&|d| d.instant_matches)),
        Cell::Int(sum(&|d| d.offers_made)),
        Cell::Int(placements),
        Cell::Int(hardship),
        ratio(hardship, placements),
        Cell::Int(filled),
        Cell::Int(unfilled),
        ratio(filled, filled + unfilled),
        median(f.first.median_fill_secs),
        median(f.first.median_travel_m),
        Cell::Int(sum(&|d| d.no_shows)),
    ]);
    for i in 0..ComplaintCategory::ALL.len() {
        r.push(Cell::Int(sum(&|d| d.complaints.get(i).map_or(0, |c| c.filed))));
        r.push(Cell::Int(sum(&|d| d.complaints.get(i).map_or(0, |c| c.resolved))));
        r.push(median(f.first.complaints.get(i).and_then(|c| c.median_resolve_secs)));
    }
    let hours = sum(&|d| d.active_hours.len() as u32);
    let first_hour = f.days.iter().flat_map(|d| d.active_hours.first()).min();
    let last_hour = f.days.iter().flat_map(|d| d.active_hours.last()).max();
    let hour = |h: Option<&u8>| h.map_or(Cell::Empty, |h| Cell::Text(format!("{h:02}:00")));
    r.extend([Cell::Int(hours), hour(first_hour), hour(last_hour)]);
    debug_assert_eq!(r.len(), headers(engine, export).len());
    r
}

/// The folds of one county over the export's range, by period.
fn folds(engine: &Engine, export: &LedgerExport, county: u32) -> Vec<Fold> {
    let mut out: Vec<Fold> = Vec::new();
    for d in export.from.0..=export.to.0 {
        let day = LedgerDay(d);
        let Some(report) = engine.ledger_report(day, county) else { return Vec::new() };
        let label = match export.period {
            Period::Day => day.to_string(),
            Period::Month => month_label(day),
        };
        match out.last_mut() {
            Some(f) if f.label == label => {
                f.last = report.clone();
                f.days.push(report);
            }
            _ => out.push(Fold { label, first: report.clone(), last: report.clone(), days: vec![report] }),
        }
    }
    out
}

/// The ledger table: for each county in order, one row per period.
pub fn table(engine: &Engine, export: &LedgerExport) -> Table {
    let rows = export
        .counties
        .iter()
        .flat_map(|&c| folds(engine, export, c).into_iter().map(|f| row(engine, export, &f)).collect::<Vec<_>>())
        .collect();
    Table { headers: headers(engine, export), rows }
}

/// The UTF-8 byte-order mark Excel and WPS need to read UTF-8 CSV.
pub const BOM: &str = "\u{feff}";

/// CSV with a byte-order mark and CRLF line ends (RFC 4180).
pub fn to_csv(t: &Table) -> Vec<u8> {
    let mut out = String::from(BOM);
    let line = |cells: Vec<String>| cells.join(",") + "\r\n";
    out.push_str(&line(t.headers.iter().map(|h| crate::report::csv_field(h)).collect()));
    for r in &t.rows {
        out.push_str(&line(r.iter().map(Cell::csv).collect()));
    }
    out.into_bytes()
}

fn write_sheet(sheet: &mut rust_xlsxwriter::Worksheet, t: &Table, bold: &Format) -> Result<(), XlsxError> {
    for (c, h) in t.headers.iter().enumerate() {
        sheet.write_string_with_format(0, c as u16, h, bold)?;
    }
    for (r, row) in t.rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, cell) in row.iter().enumerate() {
            let c = c as u16;
            match cell {
                Cell::Text(s) => {
                    sheet.write_string(r, c, s)?;
                }
                Cell::Int(n) => {
                    sheet.write_number(r, c, *n as f64)?;
                }
                Cell::Num(x) => {
                    sheet.write_number(r, c, *x)?;
                }
                Cell::Empty => {}
            }
        }
    }
    sheet.set_freeze_panes(1, 3)?;
    sheet.set_column_width(0, 12)?;
    sheet.set_column_width(2, 10)?;
    Ok(())
}

/// The sheets of a workbook: named tables.
#[derive(Clone, Debug, PartialEq)]
pub struct Sheets {
    /// (sheet name, table), summary first.
    pub sheets: Vec<(String, Table)>,
}

/// The workbook's sheets: a summary (every county, month by month), then one
/// sheet per county named after it, by the export's period. Built from the
/// engine; [`to_xlsx`] encodes them without it.
pub fn sheets(engine: &Engine, export: &LedgerExport) -> Sheets {
    let summary_export = LedgerExport { period: Period::Month, ..export.clone() };
    let summary_name = if export.lang == Lang::Zh { "汇总（按月）" } else { "summary by month" };
    let mut sheets = vec![(summary_name.to_string(), table(engine, &summary_export))];
    for &county in &export.counties {
        let name = engine
            .regions()
            .index_of(county)
            .map(|i| format!("{} {}", engine.regions().get(i).name, county))
            .unwrap_or_else(|| county.to_string());
        let one = LedgerExport { counties: vec![county], ..export.clone() };
        sheets.push((name, table(engine, &one)));
    }
    Sheets { sheets }
}

/// An XLSX workbook of the sheets.
pub fn to_xlsx(sheets: &Sheets) -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    // A fixed creation time keeps the file a function of the ledger alone.
    let created = rust_xlsxwriter::ExcelDateTime::from_ymd(2000, 1, 1)?;
    workbook.set_properties(&rust_xlsxwriter::DocProperties::new().set_creation_datetime(&created));
    let bold = Format::new().set_bold();
    for (name, table) in &sheets.sheets {
        write_sheet(workbook.add_worksheet().set_name(name)?, table, &bold)?;
    }
    workbook.save_to_buffer()
}

/// Why an export was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportRangeError {
    /// `to` before `from`.
    #[error("the last day {to} is before the first day {from}")]
    Reversed {
        /// First day.
        from: LedgerDay,
        /// Last day.
        to: LedgerDay,
    },
    /// Too many days.
    #[error("{days} days requested; at most {MAX_EXPORT_DAYS} per export")]
    TooLong {
        /// Days requested.
        days: i64,
    },
    /// A county that is not served.
    #[error("unknown county {0}")]
    UnknownCounty(u32),
}

/// Checks a range and counties; an empty county list means every county.
pub fn checked_export(
    engine: &Engine,
    from: LedgerDay,
    to: LedgerDay,
    counties: &[u32],
    period: Period,
    lang: Lang,
) -> Result<LedgerExport, ExportRangeError> {
    if to < from {
        return Err(ExportRangeError::Reversed { from, to });
    }
    let days = i64::from(to.0) - i64::from(from.0) + 1;
    if days > i64::from(MAX_EXPORT_DAYS) {
        return Err(ExportRangeError::TooLong { days });
    }
    let counties = if counties.is_empty() {
        engine.regions().counties().iter().map(|c| c.code).collect()
    } else {
        for &c in counties {
            engine.regions().index_of(c).ok_or(ExportRangeError::UnknownCounty(c))?;
        }
        counties.to_vec()
    };
    Ok(LedgerExport { from, to, counties, period, lang })
}
