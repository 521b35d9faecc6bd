//! Compares the current ranking policy with a hardship-first one and with
//! batch assignment in 5-second decision windows on a generated county day
//! and prints the markdown table; `--svg FILE` also writes the chart of the
//! hardship share of placements.

use linggong_engine::{EngineConfig, RankingPolicy};
use linggong_lab::generate::{county_day, DayConfig};
use linggong_lab::{output, BatchSettings, LabRequest, PolicyFile};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let svg = args.iter().position(|a| a == "--svg").and_then(|i| args.get(i + 1));
    let live = RankingPolicy::default();
    let day = county_day(&DayConfig::default(), &live)?;
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
                batch: BatchSettings { window_secs: 5, counties: Vec::new() },
                ..PolicyFile::current("batch-5s", live.clone())
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
