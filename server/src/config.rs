//! Server configuration: the command line (every setting a flag and a
//! `LINGGONG_*` environment variable), the optional TOML file for real
//! deployments (tokens, regions, trades, minimum wages), and the resolved
//! [`ServerConfig`] the application starts from.

use crate::auth::TokenConfig;
use crate::conn::ConnLimits;
use crate::host::HostConfig;
use crate::layout::Layout;
use crate::wal::{Durability, StdStorage, Storage};
use crate::web::WebSettings;
use clap::{Args, Parser, Subcommand, ValueEnum};
use linggong_engine::{EngineConfig, LedgerDay, Regions, TradeCatalog};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default gRPC listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";
/// Default HTTP listen address (console, gRPC-Web, directory GeoJSON).
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:8080";
/// Largest gRPC message the server decodes, bytes.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Default number of waiting workers `--demo` loads.
pub const DEFAULT_DEMO_WORKERS: u64 = 50_000;

/// `linggong-server`: the linggong matching service.
#[derive(Debug, Parser)]
#[command(name = "linggong-server", version, about, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    /// Settings for serving when no subcommand is given.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Run the gRPC service (the default).
    Serve(Box<ServeArgs>),
    /// Offline tools for the write-ahead log (run while the server is stopped).
    Wal {
        /// The tool.
        #[command(subcommand)]
        command: WalCommand,
    },
    /// Offline reports from a data directory (the server need not be running).
    Report {
        /// The report.
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Offline exports from a data directory (the server need not be running).
    Export {
        /// The export.
        #[command(subcommand)]
        command: ExportCommand,
    },
    /// The history of one worker, posting, employer or complaint from the log: who did what, when, with what outcome.
    History(HistoryArgs),
    /// Accounts: the data directory's tokens (a running server picks changes up by itself).
    Token {
        /// The tool.
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Policy lab: replay logged days under other ranking policies and compare who gets work (nothing is written to the data directory).
    Replay(ReplayArgs),
    /// Cluster operations on running members: init, add-learner, promote, remove, status.
    Cluster {
        /// The operation.
        #[command(subcommand)]
        command: crate::raft::cli::ClusterCli,
    },
}

/// Output formats of `replay`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReplayFormat {
    /// Side-by-side markdown tables.
    Markdown,
    /// One CSV line per area, figure and policy.
    Csv,
    /// Everything, figures per seed included.
    Json,
}

/// Arguments of `replay`.
#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// Where to read.
    #[command(flatten)]
    pub offline: OfflineArgs,
    /// First day, `YYYY-MM-DD` (China Standard Time).
    #[arg(long, value_parser = parse_day)]
    pub from: LedgerDay,
    /// Last day, inclusive.
    #[arg(long, value_parser = parse_day)]
    pub to: LedgerDay,
    /// A policy TOML file to compare (repeat for several).
    #[arg(long = "policy", required = true)]
    pub policies: Vec<PathBuf>,
    /// The baseline: `current` (the policy in force at the first day's start) or a policy TOML file.
    #[arg(long, default_value = "current")]
    pub baseline: String,
    /// Response-model seeds per policy (the intervals are across them).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=30))]
    pub seeds: u32,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Markdown)]
    pub format: ReplayFormat,
    /// Also draw an SVG chart of one figure per area into this file.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// The figure the chart shows (a key of the JSON output's `metrics`).
    #[arg(long, default_value = "hardship_share_placed")]
    pub chart_figure: String,
}

/// Arguments of `history`: the data directory and exactly one subject.
#[derive(Debug, Clone, Args)]
// The subjects form a group of their own: a struct-level `#[group]` would
// take in every field, making `--data-dir` conflict with the subject.
#[group(skip)]
#[command(group(
    clap::ArgGroup::new("subject").required(true).multiple(false).args(["worker", "posting", "employer", "complaint"])
))]
pub struct HistoryArgs {
    /// Data directory (its history log is `raft/history/`; `wal/` in a directory not yet migrated from the single-node layout).
    #[arg(long, env = "LINGGONG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Read the member history log (`<data-dir>/raft/history/`) whatever the directory holds.
    #[arg(long)]
    pub raft: bool,
    /// A worker id.
    #[arg(long)]
    pub worker: Option<String>,
    /// A posting id.
    #[arg(long)]
    pub posting: Option<String>,
    /// An employer id.
    #[arg(long)]
    pub employer: Option<String>,
    /// A complaint id.
    #[arg(long)]
    pub complaint: Option<u64>,
}

impl HistoryArgs {
    /// The log the history is read from: the directory's (see [`Layout::of`]),
    /// or the member's history log with `--raft`.
    pub fn log_dir(&self) -> PathBuf {
        let layout = if self.raft { Layout::Member } else { Layout::of(&self.data_dir) };
        layout.history_dir(&self.data_dir)
    }

    /// The subject asked for.
    pub fn subject(&self) -> Option<crate::history::Subject> {
        use crate::history::Subject;
        match (&self.worker, &self.posting, &self.employer, self.complaint) {
            (Some(w), _, _, _) => Some(Subject::Worker(w.clone())),
            (_, Some(p), _, _) => Some(Subject::Posting(p.clone())),
            (_, _, Some(e), _) => Some(Subject::Employer(e.clone())),
            (_, _, _, Some(c)) => Some(Subject::Complaint(c)),
            _ => None,
        }
    }
}

/// Token tools.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Adds a token for a person or a system and prints it once (only its hash is stored).
    Add(TokenAddArgs),
    /// Lists the tokens: name, role, scope, person id, rate limit, hash prefix.
    List(TokenListArgs),
    /// Revokes the token with this name.
    Revoke(TokenRevokeArgs),
}

/// Role names on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoleArg {
    /// County system.
    County,
    /// Township station.
    Station,
    /// Reviewer.
    Reviewer,
    /// Operator.
    Operator,
}

impl From<RoleArg> for crate::auth::Role {
    fn from(r: RoleArg) -> Self {
        match r {
            RoleArg::County => Self::County,
            RoleArg::Station => Self::Station,
            RoleArg::Reviewer => Self::Reviewer,
            RoleArg::Operator => Self::Operator,
        }
    }
}

/// Arguments of `token add`.
#[derive(Debug, Clone, Args)]
pub struct TokenAddArgs {
    /// Data directory.
    #[arg(long, env = "LINGGONG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The server's TOML file, if it has one (names must be unique across both).
    #[arg(long, env = "LINGGONG_CONFIG")]
    pub config: Option<PathBuf>,
    /// The holder's name, unique (e.g. 王芳, yaodu-county); it is logged as the actor of every change.
    #[arg(long)]
    pub name: String,
    /// Role.
    #[arg(long, value_enum)]
    pub role: RoleArg,
    /// A county in scope (repeat for several); stations need exactly one.
    #[arg(long = "county")]
    pub counties: Vec<u32>,
    /// Township code (stations).
    #[arg(long)]
    pub township: Option<String>,
    /// The holder's person id (e.g. a staff number), for tokens that belong to a person.
    #[arg(long)]
    pub person_id: Option<String>,
    /// Most requests per minute; unlimited when not given.
    #[arg(long)]
    pub rate_per_minute: Option<u32>,
}

/// Arguments of `token list`.
#[derive(Debug, Clone, Args)]
pub struct TokenListArgs {
    /// Data directory.
    #[arg(long, env = "LINGGONG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// Arguments of `token revoke`.
#[derive(Debug, Clone, Args)]
pub struct TokenRevokeArgs {
    /// Data directory.
    #[arg(long, env = "LINGGONG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Name of the token to revoke.
    #[arg(long)]
    pub name: String,
}

/// Offline reports.
#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Each county market against the standards (验收评估), each county's city funds and the city totals.
    Standards(StandardsArgs),
    /// One day's ledger (工作台账) per county; days are China Standard Time.
    Ledger(LedgerArgs),
}

/// Offline exports.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// The market directory (零工市场名录), for map marking (GeoJSON) or spreadsheets (CSV).
    Directory(ExportDirectoryArgs),
}

/// Where the offline tools read from.
#[derive(Debug, Clone, Args)]
pub struct OfflineArgs {
    /// Data directory (holds `wal/` and `snapshots/`).
    #[arg(long, env = "LINGGONG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// The server's TOML file, if it has one (regions, trades and wages used when the log is replayed).
    #[arg(long, env = "LINGGONG_CONFIG")]
    pub config: Option<PathBuf>,
}

impl OfflineArgs {
    /// The host settings an offline read of the data directory needs.
    pub fn host_config(&self) -> Result<HostConfig, ConfigError> {
        let mut config = ServerConfig::new(&self.data_dir);
        if let Some(path) = &self.config {
            apply_file(&mut config, path)?;
        }
        Ok(HostConfig {
            engine: config.engine,
            regions: config.regions,
            trades: config.trades,
            ..HostConfig::new(&self.data_dir)
        })
    }
}

/// Arguments of `report standards`.
#[derive(Debug, Clone, Args)]
pub struct StandardsArgs {
    /// Where to read.
    #[command(flatten)]
    pub offline: OfflineArgs,
    /// CSV instead of markdown.
    #[arg(long)]
    pub csv: bool,
}

/// Arguments of `report ledger`.
#[derive(Debug, Clone, Args)]
pub struct LedgerArgs {
    /// Where to read.
    #[command(flatten)]
    pub offline: OfflineArgs,
    /// One day, `YYYY-MM-DD` (China Standard Time): the same as `--from D --to D`.
    #[arg(long, value_parser = parse_day, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
    pub day: Option<LedgerDay>,
    /// First day, `YYYY-MM-DD` (China Standard Time).
    #[arg(long, value_parser = parse_day, requires = "to")]
    pub from: Option<LedgerDay>,
    /// Last day, inclusive.
    #[arg(long, value_parser = parse_day, requires = "from")]
    pub to: Option<LedgerDay>,
    /// Only this county (division code; repeat for several); default every county.
    #[arg(long = "county")]
    pub counties: Vec<u32>,
    /// Output format: a markdown table for the terminal, CSV (UTF-8 with a byte-order mark, for Excel and WPS), or an XLSX workbook (needs `--out`).
    #[arg(long, value_enum, default_value_t = LedgerFormat::Markdown)]
    pub format: LedgerFormat,
    /// Same as `--format csv`.
    #[arg(long, conflicts_with = "format")]
    pub csv: bool,
    /// Header language.
    #[arg(long, value_enum, default_value_t = LangArg::Zh)]
    pub lang: LangArg,
    /// A row per day or per month.
    #[arg(long, value_enum, default_value_t = PeriodArg::Day)]
    pub period: PeriodArg,
    /// Write to this file instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Rebuild the ledger from the oldest state kept and the whole log (audit) instead of the current state.
    #[arg(long)]
    pub rebuild: bool,
}

impl LedgerArgs {
    /// The first and last day asked for.
    pub fn range(&self) -> Option<(LedgerDay, LedgerDay)> {
        match (self.day, self.from, self.to) {
            (Some(d), _, _) => Some((d, d)),
            (None, Some(from), Some(to)) => Some((from, to)),
            _ => None,
        }
    }

    /// The output format (`--csv` is `--format csv`).
    pub fn output_format(&self) -> LedgerFormat {
        if self.csv {
            LedgerFormat::Csv
        } else {
            self.format
        }
    }
}

/// Ledger output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LedgerFormat {
    /// A markdown table.
    Markdown,
    /// CSV with a byte-order mark.
    Csv,
    /// An XLSX workbook: a summary sheet by month and one sheet per county.
    Xlsx,
}

/// Header languages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LangArg {
    /// Chinese.
    Zh,
    /// English.
    En,
}

impl From<LangArg> for crate::ledger_export::Lang {
    fn from(l: LangArg) -> Self {
        match l {
            LangArg::Zh => Self::Zh,
            LangArg::En => Self::En,
        }
    }
}

/// Row periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PeriodArg {
    /// A row per day.
    Day,
    /// A row per month.
    Month,
}

impl From<PeriodArg> for crate::ledger_export::Period {
    fn from(p: PeriodArg) -> Self {
        match p {
            PeriodArg::Day => Self::Day,
            PeriodArg::Month => Self::Month,
        }
    }
}

/// Export formats of the directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectoryFormat {
    /// A GeoJSON FeatureCollection of points.
    Geojson,
    /// One CSV row per entry.
    Csv,
}

/// Arguments of `export directory`.
#[derive(Debug, Clone, Args)]
pub struct ExportDirectoryArgs {
    /// Where to read.
    #[command(flatten)]
    pub offline: OfflineArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = DirectoryFormat::Geojson)]
    pub format: DirectoryFormat,
    /// Coordinate system of the positions: wgs84 (GPS, 天地图), gcj02 (高德, Tencent) or bd09 (百度).
    #[arg(long, value_enum, default_value_t = CrsArg::Wgs84)]
    pub crs: CrsArg,
}

/// Coordinate systems on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CrsArg {
    /// WGS-84 (and CGCS2000).
    Wgs84,
    /// GCJ-02.
    Gcj02,
    /// BD-09.
    Bd09,
}

impl From<CrsArg> for linggong_engine::Crs {
    fn from(c: CrsArg) -> Self {
        match c {
            CrsArg::Wgs84 => Self::Wgs84,
            CrsArg::Gcj02 => Self::Gcj02,
            CrsArg::Bd09 => Self::Bd09,
        }
    }
}

fn parse_day(s: &str) -> Result<LedgerDay, String> {
    LedgerDay::parse(s).ok_or_else(|| format!("`{s}` is not a date YYYY-MM-DD"))
}

/// Offline write-ahead log tools.
#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Reads every segment and reports its records, sequence range and the first problem; exits non-zero on a problem.
    Verify(WalToolArgs),
    /// Truncates the log at its first bad record, keeping a copy of the damaged segment; everything after it is lost.
    Repair(WalToolArgs),
}

/// Arguments of the WAL tools.
#[derive(Debug, Clone, Args)]
pub struct WalToolArgs {
    /// Data directory (its Raft log is `raft/wal/`; `wal/` in a directory not yet migrated from the single-node layout).
    #[arg(long, env = "LINGGONG_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Check or repair the Raft log (`<data-dir>/raft/wal/`) whatever the directory holds.
    #[arg(long)]
    pub raft: bool,
}

impl WalToolArgs {
    /// The directory's layout (see [`Layout::of`]); the member layout with `--raft`.
    pub fn layout(&self) -> Layout {
        if self.raft {
            Layout::Member
        } else {
            Layout::of(&self.data_dir)
        }
    }

    /// The segment directory the tool works on.
    pub fn log_dir(&self) -> PathBuf {
        self.layout().log_dir(&self.data_dir)
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Flags of `serve`. Each also reads an environment variable; each (but
/// `--config`) can also be set in the config file's `[server]` table.
/// Precedence: flag, then environment variable, then the file, then the default.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// gRPC listen address (port 0 picks a free port). [default: 127.0.0.1:50051]
    #[arg(long, env = "LINGGONG_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// HTTP listen address: the web console, gRPC-Web and `/directory.geojson` (port 0 picks a free port). [default: 127.0.0.1:8080]
    #[arg(long, env = "LINGGONG_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Data directory: `raft/` (the log, the history log, snapshots), tokens. [default: ./data]
    #[arg(long, env = "LINGGONG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// When writes are acknowledged: `always` (after an fsync), `interval:<ms>` (may lose that window on a crash) or `none` (tests only). [default: always]
    #[arg(long, env = "LINGGONG_DURABILITY", value_parser = parse_durability)]
    pub durability: Option<Durability>,
    /// Log segment size (the Raft log and the history log), bytes. [default: 67108864]
    #[arg(long, env = "LINGGONG_SEGMENT_BYTES")]
    pub segment_bytes: Option<u64>,
    /// Build a snapshot after this many Raft log entries... [default: 1000000]
    #[arg(long, env = "LINGGONG_SNAPSHOT_EVERY_RECORDS")]
    pub snapshot_every_records: Option<u64>,
    /// ...or after this many bytes of applied commands, whichever comes first. [default: 268435456]
    #[arg(long, env = "LINGGONG_SNAPSHOT_EVERY_BYTES")]
    pub snapshot_every_bytes: Option<u64>,
    /// A second address for the HTTP listener's operator endpoints (`/metrics`, `/healthz`, `/readyz`); off when not given.
    #[arg(long, env = "LINGGONG_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// Log format; the filter comes from `RUST_LOG` (default `info`). [default: text]
    #[arg(long, env = "LINGGONG_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// TOML file: serving settings (`[server]`, `[connections]`), tokens (`[[tokens]]`), reference data, minimum wages, `[web]`.
    #[arg(long, env = "LINGGONG_CONFIG")]
    pub config: Option<PathBuf>,
    /// TLS certificate chain (PEM); with `--tls-key` the service speaks TLS only.
    #[arg(long, env = "LINGGONG_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "LINGGONG_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Most writes queued or awaiting durability at once; beyond it writes get RESOURCE_EXHAUSTED. [default: 65536]
    #[arg(long, env = "LINGGONG_MAX_INFLIGHT")]
    pub max_inflight: Option<usize>,
    /// Most concurrent requests (HTTP/2 streams) per connection. [default: 256]
    #[arg(long, env = "LINGGONG_MAX_STREAMS_PER_CONNECTION")]
    pub max_streams_per_connection: Option<u32>,
    /// Upper bound for any unary request, milliseconds (a shorter `grpc-timeout` from the client wins). [default: 30000]
    #[arg(long, env = "LINGGONG_REQUEST_TIMEOUT_MS")]
    pub request_timeout_ms: Option<u64>,
    /// How long a shutdown waits for in-flight requests, milliseconds. [default: 10000]
    #[arg(long, env = "LINGGONG_SHUTDOWN_GRACE_MS")]
    pub shutdown_grace_ms: Option<u64>,
    /// How often offers and postings past their deadline are expired, milliseconds. [default: 1000]
    #[arg(long, env = "LINGGONG_TICK_MS")]
    pub tick_ms: Option<u64>,
    /// Load a seeded Linfen-shaped demo population (skipped if the data directory already has workers).
    #[arg(long, env = "LINGGONG_DEMO")]
    pub demo: bool,
    /// Waiting workers the demo population holds. [default: 50000]
    #[arg(long, env = "LINGGONG_DEMO_WORKERS")]
    pub demo_workers: Option<u64>,
    /// Do not create a development operator token in a data directory that has none.
    #[arg(long, env = "LINGGONG_NO_DEV_TOKEN")]
    pub no_dev_token: bool,
    /// How often the data directory's `tokens.toml` is re-read for changes, milliseconds (SIGHUP re-reads at once). [default: 2000]
    #[arg(long, env = "LINGGONG_TOKEN_RELOAD_MS")]
    pub token_reload_ms: Option<u64>,
    /// A connection must send its first bytes (and HTTP/1 its request headers) within this many milliseconds [default 10000].
    #[arg(long, env = "LINGGONG_HANDSHAKE_TIMEOUT_MS")]
    pub handshake_timeout_ms: Option<u64>,
    /// A connection with no traffic either way for this many milliseconds is closed [default 300000].
    #[arg(long, env = "LINGGONG_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// HTTP/2 keep-alive ping interval, milliseconds [default 30000].
    #[arg(long, env = "LINGGONG_KEEPALIVE_INTERVAL_MS")]
    pub keepalive_interval_ms: Option<u64>,
    /// A keep-alive ping unanswered this many milliseconds closes the connection [default 10000].
    #[arg(long, env = "LINGGONG_KEEPALIVE_TIMEOUT_MS")]
    pub keepalive_timeout_ms: Option<u64>,
    /// Most open connections per listener [default 4096].
    #[arg(long, env = "LINGGONG_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Most open connections per listener from one source address [default 512].
    #[arg(long, env = "LINGGONG_MAX_CONNECTIONS_PER_IP")]
    pub max_connections_per_ip: Option<usize>,
    /// Once serving, write the bound addresses to this file (`grpc=HOST:PORT` and `metrics=HOST:PORT` lines), for supervisors and tests.
    #[arg(long, env = "LINGGONG_READY_FILE")]
    pub ready_file: Option<PathBuf>,
    /// Cluster mode (replication on Raft).
    #[command(flatten)]
    pub cluster: crate::raft::cli::ClusterArgs,
}

fn parse_durability(s: &str) -> Result<Durability, String> {
    s.parse().map_err(|e: crate::wal::WalError| e.to_string())
}

/// Contents of the `--config` TOML file.
///
/// ```toml
/// min_daily_wage = 100
/// county_min_daily_wage = [{ county = 141002, yuan = 120 }]
/// regions = "counties.csv"   # code,name,seat_lat,seat_lon,population_2020
/// trades = "trades.csv"      # id,name_zh,name_en,industry,occupation_code
///
/// [[tokens]]
/// name = "yaodu-county"
/// sha256 = "…64 hex digits…"
/// role = "county"            # county | station | reviewer | operator
/// counties = [141002]
/// ```
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Serving settings (each also a flag, which wins).
    #[serde(default)]
    pub server: ServerFile,
    /// Tokens, stored hashed.
    #[serde(default)]
    pub tokens: Vec<TokenConfig>,
    /// County CSV for a fresh data directory (relative paths are relative to the config file).
    pub regions: Option<PathBuf>,
    /// Trade catalogue CSV for a fresh data directory.
    pub trades: Option<PathBuf>,
    /// Minimum daily wage, yuan.
    pub min_daily_wage: Option<u32>,
    /// Per-county minimum daily wages.
    #[serde(default)]
    pub county_min_daily_wage: Vec<CountyWage>,
    /// The browser side: CORS origins for gRPC-Web, the console's map tiles.
    pub web: Option<WebSettings>,
    /// Connection limits of both listeners.
    pub connections: Option<ConnLimits>,
    /// Cluster mode (each also a flag, which wins).
    #[serde(default)]
    pub cluster: crate::raft::cli::ClusterFile,
}

/// The `[server]` table: the serving flags under their names with `_` for
/// `-`; durations in milliseconds. Relative paths are relative to the
/// config file's directory.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// gRPC listen address.
    pub listen: Option<SocketAddr>,
    /// HTTP listen address.
    pub http_listen: Option<SocketAddr>,
    /// A second address for the operator endpoints.
    pub metrics_listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// `always`, `interval:<ms>` or `none`.
    pub durability: Option<String>,
    /// WAL segment size, bytes.
    pub segment_bytes: Option<u64>,
    /// Snapshot after this many records.
    pub snapshot_every_records: Option<u64>,
    /// ...or bytes.
    pub snapshot_every_bytes: Option<u64>,
    /// `text` or `json`.
    pub log_format: Option<String>,
    /// TLS certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// Most writes in flight.
    pub max_inflight: Option<usize>,
    /// Most concurrent streams per connection.
    pub max_streams_per_connection: Option<u32>,
    /// Upper bound for unary requests, milliseconds.
    pub request_timeout_ms: Option<u64>,
    /// Shutdown grace period, milliseconds.
    pub shutdown_grace_ms: Option<u64>,
    /// Expiry tick interval, milliseconds.
    pub tick_ms: Option<u64>,
    /// Load the demo population.
    pub demo: Option<bool>,
    /// Its size.
    pub demo_workers: Option<u64>,
    /// Do not create a development operator token.
    pub no_dev_token: Option<bool>,
    /// Token table re-read interval, milliseconds.
    pub token_reload_ms: Option<u64>,
    /// File to write the bound addresses into.
    pub ready_file: Option<PathBuf>,
}

/// A county's minimum daily wage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountyWage {
    /// County division code.
    pub county: u32,
    /// Yuan per day.
    pub yuan: u32,
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Cluster mode is misconfigured.
    #[error("{0}")]
    Cluster(String),
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// File concerned.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// The TOML file is malformed.
    #[error("{path}: {source}")]
    Toml {
        /// File concerned.
        path: PathBuf,
        /// The parse error.
        source: toml::de::Error,
    },
    /// A regions or trades CSV is malformed.
    #[error("{path}: {source}")]
    Catalog {
        /// File concerned.
        path: PathBuf,
        /// The parse error.
        source: linggong_engine::catalog::CatalogError,
    },
    /// A `[server]` setting is unusable.
    #[error("{path}: [server] {field}: {message}")]
    Setting {
        /// File concerned.
        path: PathBuf,
        /// The setting.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// The `[web]` settings are unusable.
    #[error("{path}: [web]: {source}")]
    Web {
        /// File concerned.
        path: PathBuf,
        /// What is wrong.
        source: crate::web::WebSettingsError,
    },
}

/// TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
}

/// The demo population to load at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoSettings {
    /// Waiting workers.
    pub workers: u64,
}

/// Everything the application needs to start. Build it from flags with
/// [`ServeArgs::resolve`], or directly (tests) from [`ServerConfig::new`].
#[derive(Clone)]
pub struct ServerConfig {
    /// gRPC listen address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Prometheus listen address, if any.
    pub metrics_listen: Option<SocketAddr>,
    /// HTTP listen address (console, gRPC-Web, directory GeoJSON), if any.
    pub http_listen: Option<SocketAddr>,
    /// Settings of the browser side.
    pub web: WebSettings,
    /// Data directory.
    pub data_dir: PathBuf,
    /// When writes are acknowledged.
    pub durability: Durability,
    /// WAL segment size, bytes.
    pub segment_bytes: u64,
    /// Snapshot every this many records...
    pub snapshot_every_records: u64,
    /// ...or bytes.
    pub snapshot_every_bytes: u64,
    /// Engine settings (limits, ranking, minimum wages).
    pub engine: EngineConfig,
    /// Counties for a fresh data directory.
    pub regions: Regions,
    /// Trades for a fresh data directory.
    pub trades: TradeCatalog,
    /// Tokens from configuration (the data directory's `tokens.toml` is added at start).
    pub tokens: Vec<TokenConfig>,
    /// Create a development operator token when the data directory has no `tokens.toml`.
    pub create_dev_token: bool,
    /// TLS, if enabled.
    pub tls: Option<TlsFiles>,
    /// Most writes in flight in front of the engine.
    pub max_inflight: usize,
    /// Most concurrent streams per connection.
    pub max_streams_per_connection: u32,
    /// Largest message decoded, bytes.
    pub max_message_bytes: usize,
    /// Upper bound for unary requests.
    pub request_timeout: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Expiry tick interval.
    pub tick_interval: Duration,
    /// Demo population, if requested.
    pub demo: Option<DemoSettings>,
    /// File to write the bound addresses into once serving.
    pub ready_file: Option<PathBuf>,
    /// How often the data directory's token table is re-read.
    pub token_reload_interval: Duration,
    /// File layer the write-ahead log writes through (a fault-injecting one in tests).
    pub wal_storage: Arc<dyn Storage>,
    /// Cluster mode, when on.
    pub cluster: Option<crate::raft::cli::ClusterSettings>,
    /// Connection limits of each listener.
    pub connections: ConnLimits,
}

impl ServerConfig {
    /// Defaults around a data directory: loopback on an ephemeral port, no
    /// metrics listener, Linfen, durability `always`, no development token.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            metrics_listen: None,
            http_listen: None,
            web: WebSettings::default(),
            data_dir: data_dir.into(),
            durability: Durability::Always,
            segment_bytes: 64 << 20,
            snapshot_every_records: 1_000_000,
            snapshot_every_bytes: 256 << 20,
            engine: EngineConfig::default(),
            regions: Regions::linfen(),
            trades: TradeCatalog::default_catalog(),
            tokens: Vec::new(),
            create_dev_token: false,
            tls: None,
            max_inflight: 65_536,
            max_streams_per_connection: 256,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            tick_interval: Duration::from_secs(1),
            demo: None,
            ready_file: None,
            token_reload_interval: Duration::from_secs(2),
            wal_storage: Arc::new(StdStorage),
            cluster: None,
            connections: ConnLimits::default(),
        }
    }
}

impl ServeArgs {
    /// Resolves flags and the optional TOML file into a [`ServerConfig`]:
    /// a flag (or its environment variable) wins over the file's `[server]`
    /// table, which wins over the default.
    pub fn resolve(&self) -> Result<ServerConfig, ConfigError> {
        let (file, base) = match &self.config {
            Some(path) => (read_file_config(path)?, path.parent().unwrap_or(Path::new(".")).to_path_buf()),
            None => (FileConfig::default(), PathBuf::from(".")),
        };
        let f = &file.server;
        let path_of = |flag: &Option<PathBuf>, file: &Option<PathBuf>| -> Option<PathBuf> {
            flag.clone().or_else(|| file.as_ref().map(|p| base.join(p)))
        };
        let bad = |field: &str, message: String| ConfigError::Setting {
            path: self.config.clone().unwrap_or_default(),
            field: field.to_string(),
            message,
        };
        let data_dir = path_of(&self.data_dir, &f.data_dir).unwrap_or_else(|| PathBuf::from("./data"));
        let mut config = ServerConfig::new(&data_dir);
        config.listen = self.listen.or(f.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 50051)));
        config.metrics_listen = self.metrics_listen.or(f.metrics_listen);
        config.http_listen =
            Some(self.http_listen.or(f.http_listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))));
        config.durability = match (self.durability, &f.durability) {
            (Some(d), _) => d,
            (None, Some(text)) => text.parse().map_err(|e: crate::wal::WalError| bad("durability", e.to_string()))?,
            (None, None) => Durability::Always,
        };
        config.segment_bytes = self.segment_bytes.or(f.segment_bytes).unwrap_or(64 << 20);
        config.snapshot_every_records =
            self.snapshot_every_records.or(f.snapshot_every_records).unwrap_or(1_000_000).max(1);
        config.snapshot_every_bytes = self.snapshot_every_bytes.or(f.snapshot_every_bytes).unwrap_or(256 << 20).max(1);
        config.create_dev_token = !(self.no_dev_token || f.no_dev_token.unwrap_or(false));
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (Some(c), Some(k)) => (Some(c.clone()), Some(k.clone())),
            _ => (path_of(&None, &f.tls_cert), path_of(&None, &f.tls_key)),
        };
        config.tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(bad("tls_cert", "tls_cert and tls_key go together".into())),
        };
        config.max_inflight = self.max_inflight.or(f.max_inflight).unwrap_or(65_536).max(1);
        config.max_streams_per_connection =
            self.max_streams_per_connection.or(f.max_streams_per_connection).unwrap_or(256).max(1);
        config.request_timeout =
            Duration::from_millis(self.request_timeout_ms.or(f.request_timeout_ms).unwrap_or(30_000).max(1));
        config.shutdown_grace = Duration::from_millis(self.shutdown_grace_ms.or(f.shutdown_grace_ms).unwrap_or(10_000));
        config.tick_interval = Duration::from_millis(self.tick_ms.or(f.tick_ms).unwrap_or(1_000).max(10));
        let demo = self.demo || f.demo.unwrap_or(false);
        let demo_workers = self.demo_workers.or(f.demo_workers).unwrap_or(DEFAULT_DEMO_WORKERS);
        config.demo = demo.then_some(DemoSettings { workers: demo_workers });
        config.ready_file = path_of(&self.ready_file, &f.ready_file);
        config.token_reload_interval =
            Duration::from_millis(self.token_reload_ms.or(f.token_reload_ms).unwrap_or(2_000).max(10));
        config.cluster = self.cluster.resolve(&file.cluster, &base).map_err(ConfigError::Cluster)?;
        if let Some(path) = &self.config {
            apply_file_config(&mut config, file, path)?;
        }
        self.apply_connection_flags(&mut config.connections);
        Ok(config)
    }

    /// Connection limits given as flags or environment variables override the file's.
    fn apply_connection_flags(&self, limits: &mut ConnLimits) {
        let set = |target: &mut u64, value: Option<u64>| {
            if let Some(v) = value {
                *target = v.max(1);
            }
        };
        set(&mut limits.handshake_timeout_ms, self.handshake_timeout_ms);
        set(&mut limits.idle_timeout_ms, self.idle_timeout_ms);
        set(&mut limits.keepalive_interval_ms, self.keepalive_interval_ms);
        set(&mut limits.keepalive_timeout_ms, self.keepalive_timeout_ms);
        if let Some(v) = self.max_connections {
            limits.max_connections = v.max(1);
        }
        if let Some(v) = self.max_connections_per_ip {
            limits.max_connections_per_ip = v.max(1);
        }
    }
}

/// Reads a TOML config file.
pub fn read_file_config(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
    toml::from_str(&text).map_err(|source| ConfigError::Toml { path: path.into(), source })
}

/// Applies a TOML config file to a configuration (all but its `[server]` table).
pub fn apply_file(config: &mut ServerConfig, path: &Path) -> Result<(), ConfigError> {
    let file = read_file_config(path)?;
    apply_file_config(config, file, path)
}

impl ServeArgs {
    /// The log format to start logging with (before the rest is resolved).
    pub fn log_format(&self) -> LogFormat {
        let from_file = || {
            let file = read_file_config(self.config.as_ref()?).ok()?;
            LogFormat::from_str(file.server.log_format.as_deref()?, true).ok()
        };
        self.log_format.or_else(from_file).unwrap_or_default()
    }
}

fn apply_file_config(config: &mut ServerConfig, file: FileConfig, path: &Path) -> Result<(), ConfigError> {
    if let Some(text) = &file.server.log_format {
        LogFormat::from_str(text, true).map_err(|message| ConfigError::Setting {
            path: path.into(),
            field: "log_format".into(),
            message,
        })?;
    }
    let base = path.parent().unwrap_or(Path::new("."));
    let read_csv = |p: &Path| {
        let full = base.join(p);
        std::fs::read_to_string(&full)
            .map(|t| (full.clone(), t))
            .map_err(|source| ConfigError::Read { path: full, source })
    };
    if let Some(p) = &file.regions {
        let (full, text) = read_csv(p)?;
        config.regions = Regions::from_csv(&text).map_err(|source| ConfigError::Catalog { path: full, source })?;
    }
    if let Some(p) = &file.trades {
        let (full, text) = read_csv(p)?;
        config.trades = TradeCatalog::from_csv(&text).map_err(|source| ConfigError::Catalog { path: full, source })?;
    }
    if let Some(w) = file.min_daily_wage {
        config.engine.min_daily_wage = w;
    }
    config.engine.county_min_daily_wage.extend(file.county_min_daily_wage.iter().map(|c| (c.county, c.yuan)));
    config.tokens.extend(file.tokens);
    if let Some(web) = file.web {
        web.validate().map_err(|source| ConfigError::Web { path: path.into(), source })?;
        config.web = web;
    }
    if let Some(limits) = file.connections {
        config.connections = limits;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Role;

    /// Region and trade files as Excel or WPS save them ("CSV UTF-8": a
    /// byte-order mark, CRLF, quoted fields) load; a bad one is refused with
    /// its file, line and column.
    #[test]
    fn region_and_trade_files_load_as_spreadsheets_save_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("counties.csv"),
            "\u{feff}code,name,seat_lat,seat_lon,population_2020\r\n141002,\"尧都区\",36.08,111.52,\"950,000\"\r\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("trades.csv"),
            "\u{feff}id,name_zh,name_en,industry,occupation_code\r\nporter,装卸工,\"Porter, loader\",搬运,6-29\r\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("linggong.toml"), "regions = \"counties.csv\"\ntrades = \"trades.csv\"\n")
            .unwrap();
        let mut config = ServerConfig::new(dir.path());
        let err = apply_file(&mut config, &dir.path().join("linggong.toml")).unwrap_err().to_string();
        assert!(err.ends_with("counties.csv: line 2, column 5 (`population_2020`): not a number: `950,000`"), "{err}");
        std::fs::write(
            dir.path().join("counties.csv"),
            "\u{feff}code,name,seat_lat,seat_lon,population_2020\r\n141002,\"尧都区\",36.08,111.52,950000\r\n",
        )
        .unwrap();
        apply_file(&mut config, &dir.path().join("linggong.toml")).unwrap();
        assert_eq!((config.regions.len(), config.regions.get(0).name.as_str()), (1, "尧都区"));
        assert_eq!(config.trades.get(0).name_en, "Porter, loader");
    }

    #[test]
    fn defaults_match_the_one_command_run() {
        let cli = Cli::try_parse_from(["linggong-server"]).unwrap();
        assert!(cli.command.is_none());
        let config = cli.serve.resolve().unwrap();
        assert_eq!(config.listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(config.http_listen, Some(DEFAULT_HTTP_LISTEN.parse().unwrap()));
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.durability, Durability::Always);
        assert!(config.create_dev_token);
        assert!(config.demo.is_none());
        assert_eq!(config.regions.len(), 17);
    }

    #[test]
    fn flags_parse_and_subcommands_route() {
        let cli = Cli::try_parse_from([
            "linggong-server",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--durability",
            "interval:5",
            "--demo",
            "--demo-workers",
            "10",
            "--log-format",
            "json",
        ])
        .unwrap();
        let Some(CliCommand::Serve(args)) = cli.command else { panic!("expected serve") };
        assert_eq!(args.log_format(), LogFormat::Json);
        let config = args.resolve().unwrap();
        assert_eq!(config.durability, Durability::Interval(Duration::from_millis(5)));
        assert_eq!(config.demo, Some(DemoSettings { workers: 10 }));

        let cli = Cli::try_parse_from(["linggong-server", "wal", "verify", "--data-dir", "d"]).unwrap();
        assert!(
            matches!(cli.command, Some(CliCommand::Wal { command: WalCommand::Verify(a) }) if a.data_dir == Path::new("d"))
        );
        assert!(Cli::try_parse_from(["linggong-server", "--durability", "sometimes"]).is_err());
        assert!(Cli::try_parse_from(["linggong-server", "--tls-cert", "c.pem"]).is_err(), "cert needs a key");
    }

    #[test]
    fn history_reads_the_wal_or_a_members_history_log() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let log_dir = |args: &[&str]| match Cli::try_parse_from(
            ["linggong-server", "history", "--data-dir", d, "--worker", "w1"].iter().chain(args),
        ) {
            Ok(Cli { command: Some(CliCommand::History(h)), .. }) => h.log_dir(),
            other => panic!("{other:?}"),
        };
        // A fresh directory has the member layout; one with single-node data
        // and no `raft/` the single-node one, unless `--raft` says otherwise.
        assert_eq!(log_dir(&[]), dir.path().join("raft").join("history"));
        std::fs::create_dir_all(dir.path().join("wal")).unwrap();
        std::fs::write(dir.path().join("wal").join("00000000000000000001.wal"), b"").unwrap();
        assert_eq!(log_dir(&[]), dir.path().join("wal"));
        assert_eq!(log_dir(&["--raft"]), dir.path().join("raft").join("history"));
        let parse = |args: &[&str]| Cli::try_parse_from(["linggong-server", "history"].iter().chain(args));
        assert!(parse(&["--data-dir", "d"]).is_err(), "a subject is required");
        assert!(parse(&["--worker", "w1", "--posting", "p1"]).is_err(), "one subject only");
    }

    #[test]
    fn report_and_export_subcommands_parse() {
        let parse = |args: &[&str]| Cli::try_parse_from(std::iter::once("linggong-server").chain(args.iter().copied()));
        let cli = parse(&["report", "ledger", "--day", "2024-03-02", "--county", "141002", "--csv"]).unwrap();
        let Some(CliCommand::Report { command: ReportCommand::Ledger(a) }) = cli.command else { panic!("ledger") };
        let day = LedgerDay::from_ymd(2024, 3, 2).unwrap();
        assert_eq!(
            (a.range(), a.counties.clone(), a.output_format(), a.rebuild),
            (Some((day, day)), vec![141002], LedgerFormat::Csv, false)
        );
        assert!(parse(&["report", "ledger", "--day", "2024-02-30"]).is_err(), "not a date");
        assert!(parse(&["report", "ledger"]).is_err(), "a day or a range is required");
        let cli = parse(&[
            "report",
            "ledger",
            "--from",
            "2024-03-01",
            "--to",
            "2024-04-30",
            "--county",
            "141002",
            "--county",
            "141081",
            "--format",
            "xlsx",
            "--out",
            "t.xlsx",
            "--lang",
            "en",
            "--period",
            "month",
        ])
        .unwrap();
        let Some(CliCommand::Report { command: ReportCommand::Ledger(a) }) = cli.command else { panic!("ledger") };
        assert_eq!(
            a.range(),
            Some((LedgerDay::from_ymd(2024, 3, 1).unwrap(), LedgerDay::from_ymd(2024, 4, 30).unwrap()))
        );
        assert_eq!(
            (a.counties.len(), a.output_format(), a.lang, a.period),
            (2, LedgerFormat::Xlsx, LangArg::En, PeriodArg::Month)
        );
        assert!(parse(&["report", "ledger", "--from", "2024-03-01"]).is_err(), "--from needs --to");
        assert!(
            parse(&["report", "ledger", "--day", "2024-03-01", "--from", "2024-03-01", "--to", "2024-03-02"]).is_err()
        );
        let cli = parse(&["report", "standards", "--data-dir", "d"]).unwrap();
        let Some(CliCommand::Report { command: ReportCommand::Standards(a) }) = cli.command else {
            panic!("standards")
        };
        assert_eq!((a.offline.data_dir.as_path(), a.csv), (Path::new("d"), false));
        let cli = parse(&["export", "directory", "--format", "csv"]).unwrap();
        let Some(CliCommand::Export { command: ExportCommand::Directory(a) }) = cli.command else { panic!("export") };
        assert_eq!((a.format, a.crs), (DirectoryFormat::Csv, CrsArg::Wgs84));
        let cli = parse(&["export", "directory", "--crs", "gcj02"]).unwrap();
        let Some(CliCommand::Export { command: ExportCommand::Directory(a) }) = cli.command else { panic!("export") };
        assert_eq!(a.crs, CrsArg::Gcj02);
        assert!(parse(&["export", "directory", "--crs", "mars"]).is_err());
        let cli = parse(&["token", "add", "--name", "王芳", "--role", "reviewer", "--county", "141002"]).unwrap();
        let Some(CliCommand::Token { command: TokenCommand::Add(a) }) = cli.command else { panic!("token add") };
        assert_eq!((a.name.as_str(), a.role, a.counties), ("王芳", RoleArg::Reviewer, vec![141002]));
        assert!(parse(&["token", "revoke"]).is_err(), "revoke needs a name");
        assert!(parse(&["export", "directory", "--format", "kml"]).is_err());
    }

    #[test]
    fn toml_file_adds_tokens_wages_and_reference_data() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("trades.csv"),
            "id,name_zh,name_en,industry,occupation_code\nx,甲,x,建筑建材,1\n",
        )
        .unwrap();
        let path = dir.path().join("linggong.toml");
        std::fs::write(
            &path,
            format!(
                "min_daily_wage = 100\ncounty_min_daily_wage = [{{ county = 141002, yuan = 120 }}]\ntrades = \"trades.csv\"\n\
                 [[tokens]]\nname = \"yaodu\"\nsha256 = \"{}\"\nrole = \"station\"\ncounties = [141002]\ntownship = \"141002001\"\n",
                crate::auth::hash_token("t")
            ),
        )
        .unwrap();
        let mut config = ServerConfig::new(dir.path());
        apply_file(&mut config, &path).unwrap();
        assert_eq!(config.engine.min_daily_wage, 100);
        assert_eq!(config.engine.min_daily_wage_for(141002), 120);
        assert_eq!(config.trades.len(), 1);
        assert_eq!(config.tokens.len(), 1);
        assert_eq!(config.tokens[0].role, Role::Station);

        std::fs::write(&path, "tokenz = []\n").unwrap();
        assert!(matches!(apply_file(&mut config, &path), Err(ConfigError::Toml { .. })));
    }

    #[test]
    fn connection_limits_come_from_the_file_and_flags_override_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("linggong.toml");
        std::fs::write(&path, "[connections]\nhandshake_timeout_ms = 2000\nmax_connections_per_ip = 8\n").unwrap();
        let config_arg = path.to_string_lossy().into_owned();
        let cli = Cli::try_parse_from(["linggong-server", "--config", &config_arg]).unwrap();
        let limits = cli.serve.resolve().unwrap().connections;
        assert_eq!((limits.handshake_timeout_ms, limits.max_connections_per_ip), (2000, 8));
        assert_eq!(limits.max_connections, ConnLimits::default().max_connections);
        let cli =
            Cli::try_parse_from(["linggong-server", "--config", &config_arg, "--max-connections-per-ip", "3"]).unwrap();
        let limits = cli.serve.resolve().unwrap().connections;
        assert_eq!((limits.handshake_timeout_ms, limits.max_connections_per_ip), (2000, 3));
        std::fs::write(&path, "[connections]\nhandshake_timeout = 2\n").unwrap();
        assert!(matches!(apply_file(&mut ServerConfig::new(dir.path()), &path), Err(ConfigError::Toml { .. })));
    }

    #[test]
    fn the_example_config_parses_and_flags_override_it() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/linggong.toml");
        let cli = Cli::try_parse_from(["linggong-server", "--config", example]).unwrap();
        assert_eq!(cli.serve.log_format(), LogFormat::Json);
        let config = cli.serve.resolve().unwrap();
        assert_eq!(config.listen, "127.0.0.1:50051".parse().unwrap());
        assert_eq!(config.http_listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(config.data_dir, PathBuf::from("/var/lib/linggong"));
        assert_eq!(config.durability, Durability::Always);
        assert!(!config.create_dev_token, "the example is for production");
        assert!(config.demo.is_none() && config.tls.is_none() && config.metrics_listen.is_none());
        assert_eq!(config.request_timeout, Duration::from_secs(30));
        assert_eq!(config.connections, ConnLimits::default());
        assert_eq!(config.engine.min_daily_wage_for(141002), 120);

        let cli = Cli::try_parse_from([
            "linggong-server",
            "--config",
            example,
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            "d",
            "--durability",
            "interval:5",
            "--log-format",
            "text",
        ])
        .unwrap();
        assert_eq!(cli.serve.log_format(), LogFormat::Text);
        let config = cli.serve.resolve().unwrap();
        assert_eq!(config.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("d"));
        assert_eq!(config.durability, Durability::Interval(Duration::from_millis(5)));
        assert_eq!(config.http_listen, Some("127.0.0.1:8080".parse().unwrap()), "not given: the file's");
    }

    #[test]
    fn cluster_settings_come_from_the_file_and_flags_and_env_win() {
        use crate::raft::cli::ClusterSettings;
        let dir = tempfile::tempdir().unwrap();
        // The example's commented [cluster] block, uncommented, is what this test reads.
        let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/linggong.toml")).unwrap();
        let block: String = example
            .lines()
            .skip_while(|l| *l != "# [cluster]")
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        assert!(block.starts_with("[cluster]\n") && block.contains("secret_file"), "{block}");
        std::fs::write(dir.path().join("cluster-secret"), "s3cret\n").unwrap();
        let path = dir.path().join("linggong.toml");
        std::fs::write(&path, &block).unwrap();
        let arg = path.to_string_lossy().into_owned();
        let parse = |extra: &[&str]| {
            let mut args = vec!["linggong-server", "--config", &arg];
            args.extend_from_slice(extra);
            Cli::try_parse_from(args).unwrap().serve.resolve()
        };
        let from_file = parse(&[]).unwrap().cluster.expect("cluster mode from the file");
        assert_eq!(
            from_file,
            ClusterSettings {
                raft_listen: "10.0.0.1:7001".parse().unwrap(),
                advertise: Some("10.0.0.1:7001".into()),
                grpc_advertise: Some("10.0.0.1:50051".into()),
                http_advertise: Some("10.0.0.1:8080".into()),
                node_id: 1,
                secret: "s3cret".into(),
                heartbeat_ms: 50,
                election_ms: 300,
                snapshot_every: 100_000,
                snapshot_every_bytes: crate::raft::DEFAULT_SNAPSHOT_EVERY_BYTES,
                bootstrap: false,
            }
        );
        // Flags win over the file.
        let flagged = parse(&["--node-id", "7", "--raft-listen", "127.0.0.1:0", "--cluster-secret", "other"])
            .unwrap()
            .cluster
            .unwrap();
        assert_eq!((flagged.node_id, flagged.raft_listen.port(), flagged.secret.as_str()), (7, 0, "other"));
        assert_eq!(flagged.heartbeat_ms, 50, "not given as a flag: the file's");
        // An environment variable fills the same field as its flag (clap `env`), so it wins over the file too.
        let args = crate::raft::cli::ClusterArgs {
            node_id: Some(9),
            ..Cli::try_parse_from(["linggong-server"]).unwrap().serve.cluster
        };
        let file = read_file_config(&path).unwrap().cluster;
        assert_eq!(args.resolve(&file, dir.path()).unwrap().unwrap().node_id, 9);
        // Without the file's table, cluster mode is off; a secret is required; one of secret and secret_file.
        assert!(Cli::try_parse_from(["linggong-server"]).unwrap().serve.resolve().unwrap().cluster.is_none());
        std::fs::write(&path, "[cluster]\nraft_listen = \"127.0.0.1:0\"\n").unwrap();
        assert!(matches!(parse(&[]), Err(ConfigError::Cluster(_))), "no secret");
        std::fs::write(
            &path,
            "[cluster]\nraft_listen = \"127.0.0.1:0\"\nsecret = \"a\"\nsecret_file = \"cluster-secret\"\n",
        )
        .unwrap();
        assert!(matches!(parse(&[]), Err(ConfigError::Cluster(_))), "secret and secret_file");
        std::fs::write(
            &path,
            "[cluster]\nraft_listen = \"127.0.0.1:0\"\nsecret = \"a\"\nelection_ms = 10\nbootstrap = true\n",
        )
        .unwrap();
        let c = parse(&[]).unwrap().cluster.unwrap();
        assert_eq!((c.election_ms, c.bootstrap, c.node_id), (150, true, 1), "election at least 3 heartbeats");
        std::fs::write(&path, "[cluster]\nraft_port = 1\n").unwrap();
        assert!(matches!(parse(&[]), Err(ConfigError::Toml { .. })), "unknown settings are refused");
    }

    #[test]
    fn server_settings_in_the_file_are_checked_and_relative_to_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("linggong.toml");
        std::fs::write(&path, "[server]\ndata_dir = \"state\"\ntick_ms = 50\ndemo = true\ndemo_workers = 7\n").unwrap();
        let arg = path.to_string_lossy().into_owned();
        let config = Cli::try_parse_from(["linggong-server", "--config", &arg]).unwrap().serve.resolve().unwrap();
        assert_eq!(config.data_dir, dir.path().join("state"));
        assert_eq!(config.tick_interval, Duration::from_millis(50));
        assert_eq!(config.demo, Some(DemoSettings { workers: 7 }));
        for bad in ["durability = \"sometimes\"", "log_format = \"xml\"", "tls_cert = \"c.pem\""] {
            std::fs::write(&path, format!("[server]\n{bad}\n")).unwrap();
            let result = Cli::try_parse_from(["linggong-server", "--config", &arg]).unwrap().serve.resolve();
            assert!(matches!(result, Err(ConfigError::Setting { .. })), "{bad}");
        }
        std::fs::write(&path, "[server]\nlisten_on = \"x\"\n").unwrap();
        let result = Cli::try_parse_from(["linggong-server", "--config", &arg]).unwrap().serve.resolve();
        assert!(matches!(result, Err(ConfigError::Toml { .. })), "unknown settings are refused");
    }

    #[test]
    fn web_settings_come_from_the_config_file_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("linggong.toml");
        std::fs::write(
            &path,
            "[web]\ncors_origins = [\"https://portal.example.cn\"]\n\
             tiles = { url = \"https://tiles.example.cn/{z}/{x}/{y}.png\", crs = \"gcj02\", attribution = \"x\" }\n",
        )
        .unwrap();
        let mut config = ServerConfig::new(dir.path());
        assert_eq!(config.web, WebSettings::default());
        apply_file(&mut config, &path).unwrap();
        assert_eq!(config.web.cors_origins, ["https://portal.example.cn"]);
        assert_eq!(config.web.tiles.as_ref().map(|t| t.crs), Some(crate::web::crs::Crs::Gcj02));

        std::fs::write(&path, "[web]\ncors_origins = [\"*\"]\n").unwrap();
        assert!(matches!(apply_file(&mut config, &path), Err(ConfigError::Web { .. })));
    }
}
