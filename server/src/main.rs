//! `linggong-server`: serves the linggong gRPC API (the default, or `serve`),
//! and offers offline tools: write-ahead log checks (`wal verify`, `wal repair`),
//! reports (`report standards`, `report ledger`), exports (`export directory`)
//! the policy lab (`replay`) and accounts (`token add`, `token list`, `token revoke`).

use clap::Parser;
use linggong_server::app::{self, DataDirLock, Stopped};
use linggong_server::audit::{load_offline, read_window, ReplayFrom};
use linggong_server::config::{
    read_file_config, Cli, CliCommand, DirectoryFormat, ExportCommand, ExportDirectoryArgs, HistoryArgs, LedgerArgs,
    LedgerFormat, LogFormat, OfflineArgs, ReplayArgs, ReplayFormat, ReportCommand, ServeArgs, StandardsArgs,
    TokenAddArgs, TokenCommand, TokenListArgs, TokenRevokeArgs, WalCommand, WalToolArgs,
};
use linggong_server::convert::wal::decode;
use linggong_server::history::history;
use linggong_server::layout::Layout;
use linggong_server::ledger_export::{self, checked_export};
use linggong_server::report;
use linggong_server::state::ServiceState;
use linggong_server::tokens::{add_token, read_tokens_file, revoke_token, NewToken, TOKENS_FILE};
use linggong_server::wal::{repair, scan, ScanOutcome};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

/// jemalloc for the whole process (ARCHITECTURE.md, "Decisions").
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        None => serve(cli.serve),
        Some(CliCommand::Serve(args)) => serve(*args),
        Some(CliCommand::Wal { command: WalCommand::Verify(args) }) => wal_verify(&args),
        Some(CliCommand::Wal { command: WalCommand::Repair(args) }) => wal_repair(&args),
        Some(CliCommand::Report { command: ReportCommand::Standards(args) }) => report_standards(&args),
        Some(CliCommand::Report { command: ReportCommand::Ledger(args) }) => report_ledger(&args),
        Some(CliCommand::Export { command: ExportCommand::Directory(args) }) => export_directory(&args),
        Some(CliCommand::History(args)) => print_history(&args),
        Some(CliCommand::Token { command: TokenCommand::Add(args) }) => token_add(args),
        Some(CliCommand::Token { command: TokenCommand::List(args) }) => token_list(&args),
        Some(CliCommand::Token { command: TokenCommand::Revoke(args) }) => token_revoke(&args),
        Some(CliCommand::Replay(args)) => replay(&args),
        Some(CliCommand::Cluster { command }) => cluster(&command),
    }
}

/// `cluster …`: one operator call to a running member, its answer printed as JSON.
fn cluster(command: &linggong_server::raft::cli::ClusterCli) -> ExitCode {
    let (target, request) = match command.request() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(linggong_server::raft::admin_call(&target.at, &target.cluster_secret, &request)) {
        Ok(answer) => {
            println!("{}", serde_json::to_string_pretty(&answer).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}: {e}", target.at);
            ExitCode::FAILURE
        }
    }
}

/// The policy lab: the window's days replayed under each policy, compared with the live figures.
fn replay(args: &ReplayArgs) -> ExitCode {
    use linggong_lab::{output, LabRequest, PolicyFile};
    if args.to < args.from {
        eprintln!("--to {} is before --from {}", args.to, args.from);
        return ExitCode::from(2);
    }
    let config = match args.offline.host_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let policies: Result<Vec<PolicyFile>, _> =
        args.policies.iter().map(|p| PolicyFile::load(p, &config.regions)).collect();
    let baseline = match args.baseline.as_str() {
        "current" => None,
        path => Some(PolicyFile::load(std::path::Path::new(path), &config.regions)),
    };
    let (policies, baseline) = match (policies, baseline.transpose()) {
        (Ok(p), Ok(b)) => (p, b),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (from, to) = (args.from.start(), linggong_engine::LedgerDay(args.to.0 + 1).start());
    let window = match read_window(&config, from, to) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("cannot read {}: {e}", args.offline.data_dir.display());
            return ExitCode::from(2);
        }
    };
    let start = window.start.engine();
    let live_policy = start.config().policy.clone();
    let request = LabRequest {
        start,
        steps: &window.steps,
        from,
        to,
        baseline: baseline.unwrap_or_else(|| PolicyFile::current("current", live_policy.clone())),
        policies,
        seeds: args.seeds,
    };
    let (comparison, replayed) = match request.compare(&live_policy) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("the replay could not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The baseline check: the log with its own answers must give the live ledger back.
    let live = window.end.engine();
    let mut county_days = 0;
    let mut differ = Vec::new();
    for day in args.from.0..=args.to.0 {
        for county in live.regions().counties() {
            let day = linggong_engine::LedgerDay(day);
            county_days += 1;
            if replayed.ledger_report(day, county.code) != live.ledger_report(day, county.code) {
                differ.push(format!("{day} {}", county.code));
            }
        }
    }
    let check = if differ.is_empty() {
        format!(
            "Baseline check: the log replayed with its recorded answers reproduces the live ledger of all {county_days} county-days exactly.\n"
        )
    } else {
        format!("Baseline check FAILED: the replayed ledger differs from the live one for {}.\n", differ.join(", "))
    };
    match args.format {
        ReplayFormat::Markdown => print!("{}\n{check}", output::markdown(&comparison, start.regions())),
        ReplayFormat::Csv => print!("{}", output::csv(&comparison)),
        ReplayFormat::Json => println!("{}", output::json(&comparison)),
    }
    if args.format != ReplayFormat::Markdown {
        eprint!("{check}");
    }
    if let Some(path) = &args.chart {
        let written = output::chart_svg(&comparison, start.regions(), &args.chart_figure)
            .map_err(|e| e.to_string())
            .and_then(|svg| std::fs::write(path, svg).map_err(|e| format!("{}: {e}", path.display())));
        if let Err(e) = written {
            eprintln!("chart: {e}");
            return ExitCode::FAILURE;
        }
    }
    if differ.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_history(args: &HistoryArgs) -> ExitCode {
    let Some(subject) = args.subject() else {
        eprintln!("give one of --worker, --posting, --employer, --complaint");
        return ExitCode::from(2);
    };
    let entries = match history(&args.log_dir(), &subject, 0, usize::MAX) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("cannot read the log: {e}");
            return ExitCode::from(2);
        }
    };
    println!("seq\ttime (UTC)\tactor\tperson_id\trole\taction\tdetail\toutcome");
    for h in entries {
        let (name, person, role) = match &h.actor {
            Some(a) => (a.name.as_str(), a.person_id.as_deref().unwrap_or(""), a.role.as_str()),
            None => ("(service)", "", ""),
        };
        println!("{}\t{}\t{name}\t{person}\t{role}\t{}\t{}\t{}", h.seq, utc_time(h.at), h.action, h.detail, h.outcome);
    }
    ExitCode::SUCCESS
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` of an engine time.
fn utc_time(t: linggong_engine::Timestamp) -> String {
    let day = linggong_engine::LedgerDay(t.0.div_euclid(86_400_000) as i32);
    let ms = t.0.rem_euclid(86_400_000);
    format!("{day}T{:02}:{:02}:{:02}.{:03}Z", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000)
}

fn token_add(args: TokenAddArgs) -> ExitCode {
    let configured = match &args.config {
        Some(path) => match read_file_config(path) {
            Ok(f) => f.tokens,
            Err(e) => {
                eprintln!("bad configuration: {e}");
                return ExitCode::from(2);
            }
        },
        None => Vec::new(),
    };
    if let Err(e) = std::fs::create_dir_all(&args.data_dir) {
        eprintln!("cannot create {}: {e}", args.data_dir.display());
        return ExitCode::from(2);
    }
    let new = NewToken {
        name: args.name.clone(),
        role: args.role.into(),
        counties: args.counties,
        township: args.township,
        person_id: args.person_id,
        rate_per_minute: args.rate_per_minute,
    };
    match add_token(&args.data_dir, new, &configured) {
        Ok(token) => {
            println!(
                "Added token `{}`. It is shown only this once (only its hash is stored); a running server picks it up \
                 within seconds:\n\n    {token}\n\nUse it as `authorization: Bearer {token}`.",
                args.name
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("token not added: {e}");
            ExitCode::from(2)
        }
    }
}

fn token_list(args: &TokenListArgs) -> ExitCode {
    let tokens = match read_tokens_file(&args.data_dir.join(TOKENS_FILE)) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("cannot read the token table: {e}");
            return ExitCode::from(2);
        }
    };
    println!("name\trole\tcounties\ttownship\tperson_id\trate_per_minute\tsha256");
    for t in tokens {
        let counties: Vec<String> = t.counties.iter().map(u32::to_string).collect();
        println!(
            "{}\t{:?}\t{}\t{}\t{}\t{}\t{}…",
            t.name,
            t.role,
            counties.join(","),
            t.township.unwrap_or_default(),
            t.person_id.unwrap_or_default(),
            t.rate_per_minute.map(|r| r.to_string()).unwrap_or_default(),
            t.sha256.get(..12).unwrap_or(&t.sha256)
        );
    }
    ExitCode::SUCCESS
}

fn token_revoke(args: &TokenRevokeArgs) -> ExitCode {
    match revoke_token(&args.data_dir, &args.name) {
        Ok(t) => {
            println!("revoked `{}`; a running server stops accepting it within seconds", t.name);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("not revoked: {e}");
            ExitCode::from(2)
        }
    }
}

/// Reads a data directory offline (snapshot and log), reporting why not on stderr.
fn offline_state(args: &OfflineArgs, from: ReplayFrom) -> Result<ServiceState, ExitCode> {
    let config = args.host_config().map_err(|e| {
        eprintln!("bad configuration: {e}");
        ExitCode::from(2)
    })?;
    load_offline(&config, from).map_err(|e| {
        eprintln!("cannot read {}: {e}", args.data_dir.display());
        ExitCode::from(2)
    })
}

fn report_standards(args: &StandardsArgs) -> ExitCode {
    let state = match offline_state(&args.offline, ReplayFrom::Newest) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let r = state.engine().standards_report();
    print!("{}", if args.csv { report::standards_csv(&r) } else { report::standards_markdown(&r) });
    ExitCode::SUCCESS
}

fn report_ledger(args: &LedgerArgs) -> ExitCode {
    let from = if args.rebuild { ReplayFrom::Oldest } else { ReplayFrom::Newest };
    let Some((first, last)) = args.range() else {
        eprintln!("give --day, or --from and --to");
        return ExitCode::from(2);
    };
    let format = args.output_format();
    if format == LedgerFormat::Xlsx && args.out.is_none() {
        eprintln!("an XLSX workbook needs --out FILE");
        return ExitCode::from(2);
    }
    let state = match offline_state(&args.offline, from) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let engine = state.engine();
    let export = match checked_export(engine, first, last, &args.counties, args.period.into(), args.lang.into()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let bytes = match format {
        LedgerFormat::Markdown => report::table_markdown(&ledger_export::table(engine, &export)).into_bytes(),
        LedgerFormat::Csv => ledger_export::to_csv(&ledger_export::table(engine, &export)),
        LedgerFormat::Xlsx => match ledger_export::to_xlsx(&ledger_export::sheets(engine, &export)) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cannot build the workbook: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let written = match &args.out {
        Some(path) => std::fs::write(path, &bytes).map_err(|e| format!("cannot write {}: {e}", path.display())),
        None => std::io::Write::write_all(&mut std::io::stdout(), &bytes).map_err(|e| e.to_string()),
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn export_directory(args: &ExportDirectoryArgs) -> ExitCode {
    let state = match offline_state(&args.offline, ReplayFrom::Newest) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let markets = state.engine().directory().iter();
    print!(
        "{}",
        match args.format {
            DirectoryFormat::Geojson => report::directory_geojson(markets, args.crs.into()),
            DirectoryFormat::Csv => report::directory_csv(markets, args.crs.into()),
        }
    );
    ExitCode::SUCCESS
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour codes only on a terminal: a file or a pipe gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).init(),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    init_logging(args.log_format());
    let config = match args.resolve() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "bad configuration");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("linggong").build() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async move {
        let server = app::start(config).await?;
        println!("linggong-server: gRPC on {}", server.addr);
        if let Some(http) = server.http_addr {
            println!(
                "linggong-server: web console on http://{http}/ (gRPC-Web and /directory.geojson on the same address)"
            );
        }
        if let Some(dev) = server.dev_token.as_ref().filter(|d| d.created) {
            println!(
                "\nCreated a development operator token (kept in {path}; only its hash is in the token table):\n\n    \
                 {token}\n\nUse it as a bearer token, for example:\n\n    \
                 grpcurl -plaintext -H 'authorization: Bearer {token}' {addr} list\n\n\
                 or paste it into the web console's sign-in.\n\n\
                 This is printed once. For real deployments configure hashed tokens in a --config file.\n",
                path = dev.path.display(),
                token = dev.token,
                addr = server.addr,
            );
        } else if let Some(dev) = &server.dev_token {
            tracing::info!(file = %dev.path.display(), "a development operator token is available");
        }
        server.run_until_stopped().await
    });
    match outcome {
        Ok(Stopped::Signal(_)) => ExitCode::SUCCESS,
        Ok(Stopped::LogFailed(_)) => {
            // Fail-stop: do not wait for anything that might touch the failing disk.
            std::process::exit(3);
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "linggong-server could not run");
            ExitCode::FAILURE
        }
    }
}

fn print_scan(outcome: &ScanOutcome) {
    if outcome.segments.is_empty() {
        println!("no segments");
    }
    for s in &outcome.segments {
        let range = match s.last_seq {
            Some(last) => format!("{}..={last}", s.first_seq),
            None => "empty".to_string(),
        };
        println!(
            "{}  records={}  seq={}  valid_bytes={}/{}",
            s.path.display(),
            s.records,
            range,
            s.valid_len,
            s.file_len
        );
    }
}

fn wal_verify(args: &WalToolArgs) -> ExitCode {
    let wal_dir = args.log_dir();
    let layout = args.layout();
    let check = |payload: &[u8]| -> Result<(), String> {
        match layout {
            Layout::Member => linggong_server::raft::log_store::verify_record(payload),
            Layout::SingleNode => decode(payload).map(|_| ()).map_err(|e| e.to_string()),
        }
    };
    let outcome = match scan(&wal_dir, 0, |_, payload| check(payload)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cannot read {}: {e}", wal_dir.display());
            return ExitCode::from(2);
        }
    };
    print_scan(&outcome);
    match layout.snapshots(&args.data_dir) {
        Ok(snaps) if snaps.is_empty() => println!("no snapshot"),
        Ok(snaps) => {
            for snapshot in snaps {
                let len = std::fs::metadata(&snapshot.path).map(|m| m.len()).unwrap_or(0);
                println!("{}  snapshot  bytes={len}", snapshot.path.display());
            }
        }
        Err(e) => println!("snapshots: {e}"),
    }
    match &outcome.problem {
        None => {
            println!("ok: last record {}", outcome.last_seq.map_or("none".to_string(), |s| s.to_string()));
            ExitCode::SUCCESS
        }
        Some(p) => {
            println!("first problem: {p}");
            if p.is_torn_tail() {
                println!("{}", p.explanation());
            }
            ExitCode::FAILURE
        }
    }
}

fn wal_repair(args: &WalToolArgs) -> ExitCode {
    let _lock = match DataDirLock::acquire(&args.data_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let wal_dir = args.log_dir();
    match repair(&wal_dir) {
        Ok(None) => {
            println!("the log is clean; nothing to repair");
            ExitCode::SUCCESS
        }
        Ok(Some(p)) => {
            println!(
                "truncated {} at byte offset {} ({}); a copy of the damaged segment was kept beside it as {}.damaged[.N] \
                 and any later segments were moved aside as *.orphaned. Everything after that record is gone.",
                p.path.display(),
                p.offset,
                p.reason,
                p.path.display()
            );
            match scan(&wal_dir, 0, |_, _| Ok(())) {
                Ok(after) => {
                    print_scan(&after);
                    if let Some(p) = after.problem {
                        println!("still damaged: {p}");
                        return ExitCode::FAILURE;
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cannot re-read {}: {e}", wal_dir.display());
                    ExitCode::FAILURE
                }
            }
        }
        Err(e) => {
            eprintln!("repair failed: {e}");
            ExitCode::from(2)
        }
    }
}
