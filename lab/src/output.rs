//! A comparison as a side-by-side table (markdown, CSV, JSON) and as SVG
//! bar charts with confidence intervals (plotters).

use crate::compare::{Comparison, Estimate};
use crate::figures::Area;
use linggong_engine::{LedgerDay, Regions};
use plotters::prelude::*;
use std::fmt::Write;

/// Figures shown per county in the markdown table (the city shows all).
pub const COUNTY_FIGURES: [&str; 6] =
    ["fill_rate", "placements", "hardship_share_placed", "hardship_share_pool", "travel_median_m", "offer_gini"];

fn area_name(regions: &Regions, area: Area) -> String {
    match area {
        Area::City => "city (all counties)".into(),
        Area::County(code) => match regions.index_of(code) {
            Some(i) => format!("{} {}", code, regions.get(i).name),
            None => code.to_string(),
        },
    }
}

fn num(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn est(e: Option<Estimate>) -> String {
    match e {
        None => "–".into(),
        Some(e) if e.n < 2 => num(e.mean),
        Some(e) => format!("{} ± {}", num(e.mean), num(e.half_width)),
    }
}

fn diff(e: Option<Estimate>) -> String {
    match e {
        None => "–".into(),
        Some(e) => {
            let sign = if e.mean > 0.0 { "+" } else { "" };
            let mut s = format!("{sign}{}", num(e.mean));
            if e.n >= 2 {
                let _ = write!(s, " ± {}", num(e.half_width));
                if e.mean.abs() > e.half_width {
                    s.push_str(" *");
                }
            }
            s
        }
    }
}

fn window(c: &Comparison) -> String {
    let from = LedgerDay::of(c.from);
    let last = LedgerDay::of(linggong_engine::Timestamp(c.to.0 - 1));
    if from == last {
        format!("{from}")
    } else {
        format!("{from} to {last}")
    }
}

/// The side-by-side markdown table: the city in full, then the key figures per county.
pub fn markdown(c: &Comparison, regions: &Regions) -> String {
    let mut out = String::new();
    let seeds = c.columns.first().map_or(0, |col| col.seeds.len());
    let _ = writeln!(out, "## Policy comparison, {} (China Standard Time)\n", window(c));
    let m = &c.model;
    let _ = writeln!(
        out,
        "Response model fitted on {} answered offers: accept {:.1}%, decline {:.1}%, no reply {:.1}%; \
         no-show {:.1}% (new), {:.1}% (reliable), {:.1}% (with a no-show). Replays: {} seeds each; \
         `± x` is the 95% interval across seeds, `*` a difference larger than its interval. \
         Live: the log with its own answers ({} commands, {} refused).\n",
        m.offers,
        100.0 * m.shares[0],
        100.0 * m.shares[1],
        100.0 * m.shares[2],
        100.0 * m.no_show[0],
        100.0 * m.no_show[1],
        100.0 * m.no_show[2],
        seeds,
        c.live_stats.logged_applied + c.live_stats.logged_refused,
        c.live_stats.logged_refused,
    );
    let header = |out: &mut String, first: &str| {
        let _ = write!(out, "| {first} | live |");
        for col in &c.columns {
            let _ = write!(out, " {} |", col.policy.name);
        }
        for col in c.columns.iter().skip(1) {
            let _ = write!(out, " Δ {} |", col.policy.name);
        }
        out.push('\n');
        out.push_str("|---|---:|");
        for _ in 0..(2 * c.columns.len()).saturating_sub(1) {
            out.push_str("---:|");
        }
        out.push('\n');
    };
    let row = |out: &mut String, first: String, area: Area, i: usize| {
        let _ = write!(out, "| {first} | {} |", c.live(area, i).map_or("–".into(), num));
        for k in 0..c.columns.len() {
            let _ = write!(out, " {} |", est(c.estimate(k, area, i)));
        }
        for k in 1..c.columns.len() {
            let _ = write!(out, " {} |", diff(c.difference(k, area, i)));
        }
        out.push('\n');
    };
    let _ = writeln!(out, "### {}\n", area_name(regions, Area::City));
    header(&mut out, "figure");
    for (i, metric) in c.metrics.iter().enumerate() {
        row(&mut out, metric.label.clone(), Area::City, i);
    }
    out.push_str("\n### Counties\n\n");
    header(&mut out, "county · figure");
    for area in c.areas().into_iter().filter(|a| *a != Area::City) {
        if c.live(area, 0).is_none() && c.live(area, 3).unwrap_or(0.0) == 0.0 {
            continue;
        }
        for key in COUNTY_FIGURES {
            if let Some(i) = c.metrics.iter().position(|m| m.key == key) {
                row(&mut out, format!("{} · {}", area_name(regions, area), c.metrics[i].label), area, i);
            }
        }
    }
    out
}

/// Every figure of every area and column, one line each:
/// `area,metric,column,mean,ci_half_width,seeds,diff_mean,diff_ci_half_width` (the live column has no interval).
pub fn csv(c: &Comparison) -> String {
    let mut out = String::from("area,metric,column,mean,ci_half_width,seeds,diff_mean,diff_ci_half_width\n");
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    for area in c.areas() {
        for (i, metric) in c.metrics.iter().enumerate() {
            let _ = writeln!(out, "{area},{},live,{},,1,,", metric.key, opt(c.live(area, i)));
            for (k, col) in c.columns.iter().enumerate() {
                let e = c.estimate(k, area, i);
                let d = if k == 0 { None } else { c.difference(k, area, i) };
                let _ = writeln!(
                    out,
                    "{area},{},{},{},{},{},{},{}",
                    metric.key,
                    col.policy.name.replace(',', " "),
                    opt(e.map(|e| e.mean)),
                    opt(e.map(|e| e.half_width)),
                    e.map_or(0, |e| e.n),
                    opt(d.map(|d| d.mean)),
                    opt(d.map(|d| d.half_width)),
                );
            }
        }
    }
    out
}

/// The whole comparison as JSON (figures per seed included).
pub fn json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
#[error("drawing the chart: {0}")]
pub struct ChartError(String);

/// Grouped bars of one figure per area (the city and every county with
/// data): the live value as a marker, each policy's mean as a bar with its
/// 95% interval.
pub fn chart_svg(c: &Comparison, regions: &Regions, metric_key: &str) -> Result<String, ChartError> {
    let err = |e: &dyn std::fmt::Display| ChartError(e.to_string());
    let i = c
        .metrics
        .iter()
        .position(|m| m.key == metric_key)
        .ok_or_else(|| ChartError(format!("no figure `{metric_key}`")))?;
    let areas: Vec<Area> =
        c.areas().into_iter().filter(|a| (0..c.columns.len()).any(|k| c.estimate(k, *a, i).is_some())).collect();
    if areas.is_empty() {
        return Err(ChartError(format!("no area has `{metric_key}`")));
    }
    let top = areas
        .iter()
        .flat_map(|a| {
            (0..c.columns.len())
                .filter_map(|k| c.estimate(k, *a, i).map(|e| e.mean + e.half_width))
                .chain(c.live(*a, i))
                .collect::<Vec<_>>()
        })
        .fold(0.0f64, f64::max)
        .max(1e-9)
        * 1.15;
    let mut svg = String::new();
    {
        let width = (120 + areas.len() * 70).max(700) as u32;
        let root = SVGBackend::with_string(&mut svg, (width, 480)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| err(&e))?;
        let title = format!("{} — {} ", c.metrics[i].label, window(c));
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..areas.len() as f64, 0f64..top)
            .map_err(|e| err(&e))?;
        let names: Vec<String> = areas
            .iter()
            .map(|a| match a {
                Area::City => "city".to_string(),
                Area::County(code) => {
                    regions.index_of(*code).map_or(code.to_string(), |x| regions.get(x).name.to_string())
                }
            })
            .collect();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(areas.len())
            .x_label_formatter(&|x| names.get(x.floor() as usize).cloned().unwrap_or_default())
            .y_desc(c.metrics[i].label.clone())
            .draw()
            .map_err(|e| err(&e))?;
        let n = c.columns.len() as f64;
        let bar = 0.8 / n;
        for (k, col) in c.columns.iter().enumerate() {
            let colour = Palette99::pick(k).to_rgba();
            let bars: Vec<(f64, Estimate)> =
                areas.iter().enumerate().filter_map(|(x, a)| Some((x as f64, c.estimate(k, *a, i)?))).collect();
            chart
                .draw_series(bars.iter().map(|(x, e)| {
                    let x0 = x + 0.1 + k as f64 * bar;
                    Rectangle::new([(x0, 0.0), (x0 + bar * 0.9, e.mean)], colour.filled())
                }))
                .map_err(|e| err(&e))?
                .label(col.policy.name.clone())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
            chart
                .draw_series(bars.iter().map(|(x, e)| {
                    let xm = x + 0.1 + k as f64 * bar + bar * 0.45;
                    PathElement::new(
                        vec![(xm, e.mean - e.half_width), (xm, e.mean + e.half_width)],
                        BLACK.stroke_width(2),
                    )
                }))
                .map_err(|e| err(&e))?;
        }
        let live: Vec<(f64, f64)> =
            areas.iter().enumerate().filter_map(|(x, a)| Some((x as f64 + 0.5, c.live(*a, i)?))).collect();
        chart
            .draw_series(live.iter().map(|(x, v)| Circle::new((*x, *v), 4, BLACK.filled())))
            .map_err(|e| err(&e))?
            .label("live")
            .legend(|(x, y)| Circle::new((x + 6, y), 4, BLACK.filled()));
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperRight)
            .draw()
            .map_err(|e| err(&e))?;
        root.present().map_err(|e| err(&e))?;
    }
    Ok(svg)
}
