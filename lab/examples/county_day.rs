//! Compares the current ranking policy with a hardship-first one and with
//! batch assignment in 5-second decision windows on a generated county day
//! and prints the markdown table; `--svg FILE` also writes the chart of the
//! hardship share of placements. `--postings N` and `--workers N` size the
//! day, `--batch-secs S` sets the window (default 5).

use linggong_engine::{EngineConfig, RankingPolicy};
use linggong_lab::generate::{county_day, DayConfig};
use linggong_lab::{output, BatchSettings, LabRequest, PolicyFile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let svg = value("--svg");
    let batch_secs: u32 = value("--batch-secs").map_or(Ok(5), |v| v.parse())?;
    let mut config = DayConfig::default();
    if let Some(n) = value("--postings") {
        config.postings = n.parse()?;
    }
    if let Some(n) = value("--workers") {
        config.workers = n.parse()?;
    }
    let live = RankingPolicy::default();
    let day = county_day(&config, &live)?;
    let start = day.start(EngineConfig::default())?;
    let request = LabRequest {
        start: &start,
        steps: &day.steps,
        from: day.from,
        to: day.to,
        baseline: PolicyFile::current("current", live.clone()),
        policies: vec![
            PolicyFile::current(
                "hardship-first",
                RankingPolicy { hardship_bonus_m: 4_000.0, ..RankingPolicy::default() },
            ),
            PolicyFile {
                batch: BatchSettings { window_secs: batch_secs, counties: Vec::new() },
                ..PolicyFile::current(format!("batch-{batch_secs}s"), live.clone())
            },
        ],
        seeds: 5,
    };
    let (c, _) = request.compare(&live)?;
    print!("{}", output::markdown(&c, start.regions()));
    if let Some(path) = svg {
        std::fs::write(path, output::chart_svg(&c, start.regions(), "hardship_share_placed")?)?;
    }
    Ok(())
}
