//! `--plot FILE.svg`: latency percentiles (log scale) and throughput over the run, one point per
//! sampling interval, with the warmup shaded; drawn with plotters' SVG backend.

use crate::record::Sample;
use plotters::prelude::*;
use std::path::Path;

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// Only SVG output is built in.
    #[error("unsupported plot format `{0}`: use a .svg file name")]
    Format(String),
    /// There were no samples to draw.
    #[error("no samples to plot")]
    Empty,
    /// The drawing backend failed (for example the file could not be written).
    #[error("drawing the plot: {0}")]
    Draw(String),
}

fn draw_err<E: std::fmt::Display>(e: E) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// Draws the samples into an SVG file.
pub fn plot_samples(samples: &[Sample], title: &str, path: &Path) -> Result<(), PlotError> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    if ext != "svg" {
        return Err(PlotError::Format(ext));
    }
    if samples.is_empty() {
        return Err(PlotError::Empty);
    }
    let t_max = samples.iter().map(|s| s.t_s).fold(1.0, f64::max);
    let warmup_end = samples.iter().filter(|s| !s.measuring).map(|s| s.t_s).fold(0.0, f64::max);
    let ms = |us: f64| us / 1000.0;
    let positive: Vec<f64> =
        samples.iter().flat_map(|s| [s.p50_us, s.p99_us, s.p999_us, s.max_us]).filter(|v| *v > 0.0).map(ms).collect();
    let lat_min = positive.iter().copied().fold(f64::INFINITY, f64::min).min(1.0) * 0.8;
    let lat_max = positive.iter().copied().fold(0.0, f64::max).max(lat_min * 10.0) * 1.25;
    let rate_max = samples.iter().map(|s| s.rate_per_s).fold(1.0, f64::max) * 1.1;

    let root = SVGBackend::new(path, (1100, 760)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(draw_err)?;
    let (upper, lower) = root.split_vertically(430);

    let mut latency = ChartBuilder::on(&upper)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption("latency per interval (ms, log scale)", ("sans-serif", 15))
        .build_cartesian_2d(0.0..t_max, (lat_min..lat_max).log_scale())
        .map_err(draw_err)?;
    latency
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("ms")
        .y_label_formatter(&|v| if *v >= 1.0 { format!("{v:.0}") } else { format!("{v}") })
        .draw()
        .map_err(draw_err)?;
    if warmup_end > 0.0 {
        latency
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, lat_min), (warmup_end, lat_max)],
                RGBColor(230, 230, 230).filled(),
            )))
            .map_err(draw_err)?
            .label("warmup")
            .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], RGBColor(230, 230, 230).filled()));
    }
    type Series = (&'static str, fn(&Sample) -> f64, RGBColor);
    let series: [Series; 4] = [
        ("p50", |s| s.p50_us, RGBColor(31, 119, 180)),
        ("p99", |s| s.p99_us, RGBColor(255, 127, 14)),
        ("p99.9", |s| s.p999_us, RGBColor(214, 39, 40)),
        ("max", |s| s.max_us, RGBColor(120, 120, 120)),
    ];
    for (name, value, color) in series {
        latency
            .draw_series(LineSeries::new(
                samples.iter().filter(|s| value(s) > 0.0).map(|s| (s.t_s, ms(value(s)))),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 15, y)], color.stroke_width(2)));
    }
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)?;

    let mut throughput = ChartBuilder::on(&lower)
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .caption("calls completed per second (errors in red)", ("sans-serif", 15))
        .build_cartesian_2d(0.0..t_max, 0.0..rate_max)
        .map_err(draw_err)?;
    throughput
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("calls/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(draw_err)?;
    if warmup_end > 0.0 {
        throughput
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, 0.0), (warmup_end, rate_max)],
                RGBColor(230, 230, 230).filled(),
            )))
            .map_err(draw_err)?;
    }
    throughput
        .draw_series(LineSeries::new(samples.iter().map(|s| (s.t_s, s.rate_per_s)), BLUE.stroke_width(2)))
        .map_err(draw_err)?;
    throughput
        .draw_series(LineSeries::new(samples.iter().map(|s| (s.t_s, s.errors_per_s)), RED.stroke_width(2)))
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, measuring: bool) -> Sample {
        Sample {
            t_s: t,
            measuring,
            rate_per_s: 1000.0 + t,
            errors_per_s: 0.0,
            p50_us: 100.0,
            p90_us: 200.0,
            p99_us: 400.0,
            p999_us: 900.0,
            max_us: 2000.0,
        }
    }

    #[test]
    fn writes_an_svg_with_both_panels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.svg");
        let samples: Vec<Sample> = (1..=10).map(|t| sample(t as f64, t > 2)).collect();
        plot_samples(&samples, "test run", &path).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg"), "{}", &svg[..40.min(svg.len())]);
        assert!(svg.contains("p99.9") && svg.contains("calls completed per second"));
        assert!(matches!(plot_samples(&samples, "x", &dir.path().join("run.png")), Err(PlotError::Format(_))));
        assert!(matches!(plot_samples(&[], "x", &path), Err(PlotError::Empty)));
    }
}
