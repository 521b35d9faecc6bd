//! Text renderings of the engine's reports for the offline tools: the
//! standards and funds table (markdown or CSV), tables such as the ledger as
//! markdown, and the market directory as GeoJSON (for map marking) or CSV.

use linggong_engine::standards::{Fund, StandardsReport};
use linggong_engine::{Crs, MarketSpec};
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

/// A table (such as the ledger's) as markdown, one value per cell.
pub fn table_markdown(t: &crate::ledger_export::Table) -> String {
    let header: Vec<&str> = t.headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = t
        .rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    crate::ledger_export::Cell::Text(s) => s.clone(),
                    crate::ledger_export::Cell::Int(n) => n.to_string(),
                    crate::ledger_export::Cell::Num(x) => format!("{x}"),
                    crate::ledger_export::Cell::Empty => String::new(),
                })
                .collect()
        })
        .collect();
    markdown_table(&header, &rows)
}

/// The directory as a GeoJSON `FeatureCollection` of points (longitude first,
/// as GeoJSON requires), in `crs`: WGS-84 as GeoJSON specifies, or GCJ-02 /
/// BD-09 for marking on Chinese web maps (the collection then says so in a
/// `coordinate_system` member, and each feature in a property).
pub fn directory_geojson<'a>(markets: impl Iterator<Item = &'a MarketSpec>, crs: Crs) -> String {
    let features: Vec<serde_json::Value> = markets
        .map(|m| {
            let p = crs.from_wgs84(m.position);
            json!({
                "type": "Feature",
                "id": m.id.as_str(),
                "geometry": { "type": "Point", "coordinates": [p.lon, p.lat] },
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
                    "coordinate_system": crs.name(),
                }
            })
        })
        .collect();
    let collection = json!({ "type": "FeatureCollection", "coordinate_system": crs.name(), "features": features });
    let mut text = serde_json::to_string_pretty(&collection).unwrap_or_default();
    text.push('\n');
    text
}

/// The directory as CSV, one row per entry, positions in `crs` (named in the
/// `crs` column); trades are separated by `;`.
pub fn directory_csv<'a>(markets: impl Iterator<Item = &'a MarketSpec>, crs: Crs) -> String {
    let header = [
        "id",
        "county",
        "township",
        "kind",
        "name",
        "address",
        "lat",
        "lon",
        "crs",
        "indoor_area_m2",
        "adapts_recruitment_hall",
        "opening_hours",
        "hotline",
        "complaint_channel",
        "trades",
    ];
    let mut out = csv_line(&header.map(String::from));
    for m in markets {
        let p = crs.from_wgs84(m.position);
        out.push_str(&csv_line(&[
            m.id.to_string(),
            m.county.to_string(),
            m.township.as_deref().unwrap_or_default().to_string(),
            m.kind.name().to_string(),
            m.name.to_string(),
            m.address.to_string(),
            p.lat.to_string(),
            p.lon.to_string(),
            crs.name().to_string(),
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
