//! Text renderings of the engine's reports for the offline tools: the
//! standards and funds table and the ledger (markdown or CSV), and the market
//! directory as GeoJSON (for map marking) or CSV.

use linggong_engine::standards::{Fund, StandardsReport};
use linggong_engine::{LedgerReport, MarketSpec};
use serde_json::json;
use std::fmt::Write as _;

/// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn csv_line(fields: &[String]) -> String {
    let mut line = fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(",");
    line.push('\n');
    line
}

fn markdown_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|{}\n", header.join(" | "), "---|".repeat(header.len()));
    for row in rows {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

const STANDARDS_HEADER: [&str; 10] = [
    "county",
    "name",
    "population",
    "required_area",
    "market",
    "indoor_area_m2",
    "verdict",
    "reason",
    "employment_subsidy_yuan",
    "special_fund_yuan",
];

fn standards_rows(r: &StandardsReport) -> Vec<Vec<String>> {
    r.counties
        .iter()
        .map(|c| {
            let (market, area) = match &c.market {
                Some((id, area, _)) => (id.to_string(), area.to_string()),
                None => (String::new(), String::new()),
            };
            vec![
                c.county.to_string(),
                c.name.to_string(),
                c.population.to_string(),
                c.required.to_string(),
                market,
                area,
                c.verdict.name().to_string(),
                c.reason.clone(),
                c.employment_subsidy.to_string(),
                c.special_fund.to_string(),
            ]
        })
        .collect()
}

fn total_summary(r: &StandardsReport) -> Vec<String> {
    r.totals
        .iter()
        .map(|t| {
            let mut line =
                format!("{}: computed {} yuan, the plan states {} yuan", t.fund.name(), t.computed, t.stated);
            if t.computed == t.stated {
                line.push_str(": they agree");
            } else if let Some(e) = t.explained_by.first() {
                let _ = write!(
                    line,
                    ": the difference of {} yuan is explained by {} ({}), population {}, {} from the {} boundary \
                     ({} yuan now, {} yuan in the other band)",
                    t.stated as i128 - t.computed as i128,
                    e.name,
                    e.county,
                    e.population,
                    e.population.abs_diff(e.boundary),
                    e.boundary,
                    e.amount_now,
                    e.amount_other
                );
            } else {
                line.push_str(": no single county explains the difference");
            }
            line
        })
        .collect()
}

/// The standards report as a markdown table with the city totals below it.
pub fn standards_markdown(r: &StandardsReport) -> String {
    let mut out = String::from("# Standards acceptance check and city funds\n\n");
    out.push_str(&markdown_table(&STANDARDS_HEADER, &standards_rows(r)));
    out.push('\n');
    for line in total_summary(r) {
        let _ = writeln!(out, "- {line}");
    }
    out
}

/// The standards report as CSV: one row per county, then one `total` row per fund.
pub fn standards_csv(r: &StandardsReport) -> String {
    let mut out = csv_line(&STANDARDS_HEADER.map(String::from));
    for row in standards_rows(r) {
        out.push_str(&csv_line(&row));
    }
    for (t, summary) in r.totals.iter().zip(total_summary(r)) {
        let (subsidy, special) = match t.fund {
            Fund::EmploymentSubsidy => (t.computed.to_string(), String::new()),
            Fund::SpecialFiscalFund => (String::new(), t.computed.to_string()),
        };
        let mut row = vec![String::from("total"), String::new(), String::new(), String::new(), String::new()];
        row.extend([String::new(), String::new(), summary, subsidy, special]);
        out.push_str(&csv_line(&row));
    }
    out
}

const LEDGER_HEADER: [&str; 19] = [
    "day",
    "county",
    "registrations",
    "waiting_by_trade",
    "postings_by_state",
    "postings_by_source",
    "instant_matches",
    "offers_made",
    "placements",
    "fill_rate",
    "median_fill_secs",
    "median_travel_m",
    "hardship_share",
    "no_shows",
    "complaints_filed",
    "complaints_resolved",
    "median_resolve_secs_by_category",
    "active_hours",
    "active_hour_count",
];

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

fn pairs<K: std::fmt::Debug, V: std::fmt::Display>(items: impl Iterator<Item = (K, V)>) -> String {
    items.map(|(k, v)| format!("{k:?}={v}")).collect::<Vec<_>>().join(" ")
}

fn ledger_row(r: &LedgerReport) -> Vec<String> {
    let filed: u32 = r.complaints.iter().map(|c| c.filed).sum();
    let resolved: u32 = r.complaints.iter().map(|c| c.resolved).sum();
    vec![
        r.day.to_string(),
        r.county.to_string(),
        r.registrations.to_string(),
        r.waiting_by_trade
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(t, n)| format!("{t}={n}"))
            .collect::<Vec<_>>()
            .join(" "),
        pairs(r.postings_by_state.iter().filter(|(_, n)| *n > 0).map(|(s, n)| (s, n))),
        pairs(r.postings_by_source.iter().map(|(s, n)| (s, n))),
        r.instant_matches.to_string(),
        r.offers_made.to_string(),
        r.placements.to_string(),
        opt(r.fill_rate.map(|f| format!("{f:.3}"))),
        opt(r.median_fill_secs),
        opt(r.median_travel_m),
        opt(r.hardship_share.map(|f| format!("{f:.3}"))),
        r.no_shows.to_string(),
        filed.to_string(),
        resolved.to_string(),
        pairs(
            r.complaints
                .iter()
                .filter(|c| c.filed + c.resolved > 0)
                .map(|c| (c.category, format!("{}/{}/{}", c.filed, c.resolved, opt(c.median_resolve_secs)))),
        ),
        r.active_hours.iter().map(|h| format!("{h:02}")).collect::<Vec<_>>().join(" "),
        r.active_hours.len().to_string(),
    ]
}

/// Ledger reports as a markdown table (one row per county).
pub fn ledger_markdown(reports: &[LedgerReport]) -> String {
    let day = reports.first().map(|r| r.day.to_string()).unwrap_or_default();
    let mut out = format!(
        "# Ledger for {day} (China Standard Time)\n\nComplaints by category: filed/resolved/median seconds to resolve.\n\n"
    );
    out.push_str(&markdown_table(&LEDGER_HEADER, &reports.iter().map(ledger_row).collect::<Vec<_>>()));
    out
}

/// Ledger reports as CSV (one row per county).
pub fn ledger_csv(reports: &[LedgerReport]) -> String {
    let mut out = csv_line(&LEDGER_HEADER.map(String::from));
    for r in reports {
        out.push_str(&csv_line(&ledger_row(r)));
    }
    out
}

/// The directory as a GeoJSON `FeatureCollection` of points (longitude first, as GeoJSON requires).
pub fn directory_geojson<'a>(markets: impl Iterator<Item = &'a MarketSpec>) -> String {
    directory_geojson_in(markets, |p| p)
}

/// The directory as GeoJSON with every position passed through `to_map`
/// (from WGS-84 to the map's coordinate system).
pub fn directory_geojson_in<'a>(
    markets: impl Iterator<Item = &'a MarketSpec>,
    to_map: impl Fn(linggong_engine::LatLon) -> linggong_engine::LatLon,
) -> String {
    let features: Vec<serde_json::Value> = markets
        .map(|m| {
            let at = to_map(m.position);
            json!({
                "type": "Feature",
                "id": m.id.as_str(),
                "geometry": { "type": "Point", "coordinates": [at.lon, at.lat] },
                "properties": {
                    "name": m.name.as_str(),
                    "kind": m.kind.name(),
                    "county": m.county,
                    "township": m.township.as_deref(),
                    "address": m.address.as_str(),
                    "indoor_area_m2": m.indoor_area_m2,
                    "adapts_recruitment_hall": m.adapts_recruitment_hall,
                    "opening_hours": m.opening_hours.as_str(),
                    "hotline": m.hotline.as_str(),
                    "complaint_channel": m.complaint_channel.as_str(),
                    "trades": m.trades.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                }
            })
        })
        .collect();
    let collection = json!({ "type": "FeatureCollection", "features": features });
    let mut text = serde_json::to_string_pretty(&collection).unwrap_or_default();
    text.push('\n');
    text
}

/// The directory as CSV, one row per entry; trades are separated by `;`.
pub fn directory_csv<'a>(markets: impl Iterator<Item = &'a MarketSpec>) -> String {
    let header = [
        "id",
        "county",
        "township",
        "kind",
        "name",
        "address",
        "lat",
        "lon",
        "indoor_area_m2",
        "adapts_recruitment_hall",
        "opening_hours",
        "hotline",
        "complaint_channel",
        "trades",
    ];
    let mut out = csv_line(&header.map(String::from));
    for m in markets {
        out.push_str(&csv_line(&[
            m.id.to_string(),
            m.county.to_string(),
            m.township.as_deref().unwrap_or_default().to_string(),
            m.kind.name().to_string(),
            m.name.to_string(),
            m.address.to_string(),
            m.position.lat.to_string(),
            m.position.lon.to_string(),
            m.indoor_area_m2.to_string(),
            m.adapts_recruitment_hall.to_string(),
            m.opening_hours.to_string(),
            m.hotline.to_string(),
            m.complaint_channel.to_string(),
            m.trades.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(";"),
        ]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("尧都区"), "尧都区");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_line(&["x".into(), "1\n2".into()]), "x,\"1\n2\"\n");
    }
}
