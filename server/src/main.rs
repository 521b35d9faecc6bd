//! `linggong-server`: serves the linggong gRPC API (the default, or `serve`),
//! and offers offline tools: write-ahead log checks (`wal verify`, `wal repair`),
//! reports (`report standards`, `report ledger`) and exports (`export directory`).

use clap::Parser;
use linggong_server::app::{self, DataDirLock, Stopped};
use linggong_server::audit::{load_offline, ReplayFrom};
use linggong_server::config::{
    Cli, CliCommand, DirectoryFormat, ExportCommand, ExportDirectoryArgs, LedgerArgs, LogFormat, OfflineArgs,
    ReportCommand, ServeArgs, StandardsArgs, WalCommand, WalToolArgs,
};
use linggong_server::convert::wal::decode;
use linggong_server::report;
use linggong_server::snapshot::list_snapshots;
use linggong_server::state::ServiceState;
use linggong_server::wal::{repair, scan, ScanOutcome};
use std::process::ExitCode;
use tracing_subscriber::EnvFilter;

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
    let state = match offline_state(&args.offline, from) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let engine = state.engine();
    let counties: Vec<u32> = match args.county {
        Some(code) => vec![code],
        None => engine.regions().counties().iter().map(|c| c.code).collect(),
    };
    let mut reports = Vec::new();
    for code in counties {
        match engine.ledger_report(args.day, code) {
            Some(r) => reports.push(r),
            None => {
                eprintln!("unknown county {code}");
                return ExitCode::from(2);
            }
        }
    }
    print!("{}", if args.csv { report::ledger_csv(&reports) } else { report::ledger_markdown(&reports) });
    ExitCode::SUCCESS
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
            DirectoryFormat::Geojson => report::directory_geojson(markets),
            DirectoryFormat::Csv => report::directory_csv(markets),
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
    init_logging(args.log_format);
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
    let wal_dir = args.data_dir.join("wal");
    let outcome = match scan(&wal_dir, 0, |_, payload| decode(payload).map(|_| ()).map_err(|e| e.to_string())) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("cannot read {}: {e}", wal_dir.display());
            return ExitCode::from(2);
        }
    };
    print_scan(&outcome);
    match list_snapshots(&args.data_dir.join("snapshots")) {
        Ok(snaps) => {
            for (seq, path) in snaps {
                let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                println!("{}  snapshot at seq={seq}  bytes={len}", path.display());
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
    let wal_dir = args.data_dir.join("wal");
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
