//! Helpers for linggong's end-to-end tests: an in-process server on an
//! ephemeral loopback port with one token per role, typed gRPC clients, and
//! builders for valid workers, employers and postings.

use anyhow::Context as _;
use linggong_server::app::{start, RunningServer};
use linggong_server::auth::{generate_token, hash_token, Role, TokenConfig};
use linggong_server::config::ServerConfig;
use linggong_server::proto::v1 as pb;
use linggong_server::wal::Durability;
use pb::directory_service_client::DirectoryServiceClient;
use pb::match_service_client::MatchServiceClient;
use pb::posting_service_client::PostingServiceClient;
use pb::review_service_client::ReviewServiceClient;
use pb::stats_service_client::StatsServiceClient;
use pb::worker_service_client::WorkerServiceClient;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tonic::transport::Channel;

/// Yaodu District (尧都区), Linfen's most populous county.
pub const YAODU: u32 = 141002;
/// Houma City (侯马市).
pub const HOUMA: u32 = 141081;
/// Yaodu's county seat.
pub const YAODU_SEAT: (f64, f64) = (36.08, 111.52);
/// Houma's county seat.
pub const HOUMA_SEAT: (f64, f64) = (35.62, 111.35);
/// The township of the Yaodu station token.
pub const YAODU_TOWNSHIP: &str = "141002001";

/// One raw token per role and scope.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// Operator: everything.
    pub operator: String,
    /// Reviewer.
    pub reviewer: String,
    /// County system of Yaodu.
    pub yaodu: String,
    /// County system of Houma.
    pub houma: String,
    /// Township station in Yaodu, township [`YAODU_TOWNSHIP`].
    pub yaodu_station: String,
}

impl Tokens {
    /// Fresh random tokens.
    pub fn generate() -> Self {
        Self {
            operator: generate_token(),
            reviewer: generate_token(),
            yaodu: generate_token(),
            houma: generate_token(),
            yaodu_station: generate_token(),
        }
    }

    /// The hashed token table for the server.
    pub fn configs(&self) -> Vec<TokenConfig> {
        let t = |name: &str, token: &str, role, counties: Vec<u32>, township: Option<&str>| TokenConfig {
            township: township.map(Into::into),
            ..TokenConfig::new(name, hash_token(token), role, counties)
        };
        vec![
            t("operator", &self.operator, Role::Operator, vec![], None),
            t("reviewer", &self.reviewer, Role::Reviewer, vec![], None),
            t("yaodu", &self.yaodu, Role::County, vec![YAODU], None),
            t("houma", &self.houma, Role::County, vec![HOUMA], None),
            t("yaodu-station", &self.yaodu_station, Role::Station, vec![YAODU], Some(YAODU_TOWNSHIP)),
        ]
    }
}

/// Server settings for a test: loopback, ephemeral ports, the test tokens.
pub fn test_config(data_dir: &Path, tokens: &Tokens) -> ServerConfig {
    let mut config = ServerConfig::new(data_dir);
    config.tokens = tokens.configs();
    config.durability = Durability::Always;
    config.metrics_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    config.shutdown_grace = Duration::from_secs(5);
    config
}

/// An in-process server with its data directory.
pub struct TestServer {
    /// The running server (taken by [`TestServer::restart`] and [`TestServer::stop`]).
    pub server: Option<RunningServer>,
    /// Tokens it accepts.
    pub tokens: Tokens,
    /// Data directory.
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts a server on a fresh temporary data directory.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(|_| {}).await
    }

    /// Starts a server on a fresh temporary data directory, adjusting the configuration first.
    pub async fn start_with(adjust: impl FnOnce(&mut ServerConfig)) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let tokens = Tokens::generate();
        let mut config = test_config(dir.path(), &tokens);
        adjust(&mut config);
        let server = start(config).await?;
        Ok(Self { server: Some(server), tokens, data_dir: dir.path().to_path_buf(), _dir: Some(dir) })
    }

    /// The running server.
    pub fn running(&self) -> &RunningServer {
        self.server.as_ref().expect("server is running")
    }

    /// gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.running().addr
    }

    /// Connects a fresh set of clients.
    pub async fn clients(&self) -> anyhow::Result<Clients> {
        Clients::connect(self.addr()).await
    }

    /// Shuts the server down gracefully and starts a new one on the same data directory.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.shutdown().await?;
        }
        let server = start(test_config(&self.data_dir, &self.tokens)).await?;
        self.server = Some(server);
        Ok(())
    }

    /// Shuts the server down gracefully.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.shutdown().await?;
        }
        Ok(())
    }
}

/// One client per service over one channel.
#[derive(Clone)]
pub struct Clients {
    /// WorkerService.
    pub workers: WorkerServiceClient<Channel>,
    /// PostingService.
    pub postings: PostingServiceClient<Channel>,
    /// MatchService.
    pub matches: MatchServiceClient<Channel>,
    /// ReviewService.
    pub review: ReviewServiceClient<Channel>,
    /// StatsService.
    pub stats: StatsServiceClient<Channel>,
    /// DirectoryService.
    pub directory: DirectoryServiceClient<Channel>,
    /// The channel.
    pub channel: Channel,
}

impl Clients {
    /// Connects to a server.
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Self> {
        let channel = Channel::from_shared(format!("http://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .connect()
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(Self {
            workers: WorkerServiceClient::new(channel.clone()),
            postings: PostingServiceClient::new(channel.clone()),
            matches: MatchServiceClient::new(channel.clone()),
            review: ReviewServiceClient::new(channel.clone()),
            stats: StatsServiceClient::new(channel.clone()),
            directory: DirectoryServiceClient::new(channel.clone()),
            channel,
        })
    }
}

/// A request carrying `authorization: Bearer <token>`.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("token is ASCII"));
    request
}

/// Seconds since the Unix epoch, now.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A timestamp `secs` from now.
pub fn in_secs(secs: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: now_secs() + secs, nanos: 0 }
}

/// A position `north_m` metres north and `east_m` east of a point.
pub fn offset(point: (f64, f64), north_m: f64, east_m: f64) -> pb::LatLon {
    let lat = point.0 + north_m / 111_195.0;
    let lon = point.1 + east_m / (111_195.0 * point.0.to_radians().cos());
    pb::LatLon { lat, lon, ..Default::default() }
}

/// A valid waiting worker with one trade.
pub fn worker(id: &str, county: u32, trade: &str, position: pb::LatLon) -> pb::Worker {
    pb::Worker {
        worker_id: id.into(),
        display_name: format!("零工 {id}"),
        phone: "13812345678".into(),
        trades: vec![pb::TradeSkill { trade_id: trade.into(), level: 3 }],
        position: Some(position),
        county_code: county,
        township_code: String::new(),
        availability: None,
        min_daily_wage_yuan: 100,
        hardship: pb::Hardship::None as i32,
        ..Default::default()
    }
}

/// A valid employer.
pub fn employer(id: &str, verified: bool) -> pb::Employer {
    pb::Employer {
        employer_id: id.into(),
        display_name: format!("用工单位 {id}"),
        kind: pb::EmployerKind::Individual as i32,
        credit_code: String::new(),
        verified,
        ..Default::default()
    }
}

/// A valid posting starting in an hour, version 1.
pub fn posting(
    id: &str,
    employer: &str,
    trade: &str,
    county: u32,
    position: pb::LatLon,
    headcount: u32,
) -> pb::Posting {
    pb::Posting {
        posting_id: id.into(),
        employer_id: employer.into(),
        trade_id: trade.into(),
        headcount,
        position: Some(position),
        county_code: county,
        township_code: String::new(),
        max_distance_m: 20_000,
        daily_wage_yuan: 200,
        start_time: Some(in_secs(3600)),
        duration_minutes: 480,
        offer_ttl_seconds: 600,
        description: "搬运 8 小时".into(),
        source: pb::PostingSource::CountyDesk as i32,
        version: 1,
        ..Default::default()
    }
}

/// A valid directory entry near Yaodu's seat: a township station when
/// `township` is non-empty, else the county market.
pub fn market(id: &str, county: u32, township: &str, indoor_area_m2: u32) -> pb::Market {
    let kind = if township.is_empty() { pb::MarketKind::CountyMarket } else { pb::MarketKind::TownshipStation };
    pb::Market {
        market_id: id.into(),
        county_code: county,
        township_code: township.into(),
        display_name: format!("零工市场 {id}"),
        kind: kind as i32,
        address: "解放路 1 号".into(),
        position: Some(offset(YAODU_SEAT, 100.0, 0.0)),
        indoor_area_m2,
        adapts_recruitment_hall: false,
        opening_hours: "07:00-18:00".into(),
        hotline: "0357-1234567".into(),
        complaint_channel: "12333".into(),
        trade_ids: vec!["porter".into(), "mason".into()],
    }
}

/// Today's date in China Standard Time (UTC+8), as the ledger counts days.
pub fn today_cst() -> pb::Date {
    let day = linggong_engine::LedgerDay::of(linggong_engine::Timestamp(now_secs() * 1000));
    let (year, month, day) = day.ymd();
    pb::Date { year, month: month as i32, day: day as i32 }
}

/// A group of workers `{prefix}{i}` for `i` in `0..count`, scattered evenly
/// within `spread_m` metres of `centre`.
#[derive(Clone, Debug)]
pub struct WorkerGroup<'a> {
    /// Id prefix.
    pub prefix: &'a str,
    /// How many.
    pub count: usize,
    /// County code.
    pub county: u32,
    /// Trade id.
    pub trade: &'a str,
    /// Centre (lat, lon).
    pub centre: (f64, f64),
    /// Radius, metres.
    pub spread_m: f64,
}

/// Registers a group of workers; returns their ids.
pub async fn register_workers(
    clients: &mut Clients,
    token: &str,
    group: &WorkerGroup<'_>,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::with_capacity(group.count);
    for i in 0..group.count {
        let id = format!("{}{i}", group.prefix);
        let angle = i as f64 * 2.399_963; // golden angle: an even spread
        let r = group.spread_m * ((i as f64 + 0.5) / group.count.max(1) as f64).sqrt();
        let w = worker(&id, group.county, group.trade, offset(group.centre, r * angle.cos(), r * angle.sin()));
        clients
            .workers
            .register_worker(authed(token, pb::RegisterWorkerRequest { request_id: String::new(), worker: Some(w) }))
            .await
            .with_context(|| format!("registering {id}"))?;
        ids.push(id);
    }
    Ok(ids)
}

/// Creates an employer as the operator.
pub async fn upsert_employer(clients: &mut Clients, token: &str, id: &str, verified: bool) -> anyhow::Result<()> {
    clients
        .review
        .upsert_employer(authed(
            token,
            pb::UpsertEmployerRequest { request_id: String::new(), employer: Some(employer(id, verified)) },
        ))
        .await
        .with_context(|| format!("upserting employer {id}"))?;
    Ok(())
}

/// Submits a posting and returns it as stored.
pub async fn submit_posting(clients: &mut Clients, token: &str, posting: pb::Posting) -> anyhow::Result<pb::Posting> {
    let id = posting.posting_id.clone();
    let response = clients
        .postings
        .submit_posting(authed(token, pb::SubmitPostingRequest { request_id: String::new(), posting: Some(posting) }))
        .await
        .with_context(|| format!("submitting posting {id}"))?;
    response.into_inner().posting.context("response without posting")
}

/// Field names of the `google.rpc.BadRequest` violations in a status.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// One sample of an OpenMetrics exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Series name (with its `_total`, `_bucket`, ... suffix).
    pub name: String,
    /// Labels in order.
    pub labels: Vec<(String, String)>,
    /// Value.
    pub value: f64,
}

impl Sample {
    /// A label's value.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

/// Parses OpenMetrics text strictly enough for tests: it must end with
/// `# EOF`, every sample must belong to a family declared by `# TYPE` before
/// it, names must be valid, label values quoted with escapes, values numbers.
pub fn parse_openmetrics(text: &str) -> anyhow::Result<Vec<Sample>> {
    anyhow::ensure!(text.ends_with("# EOF\n"), "no # EOF at the end");
    let valid_name = |n: &str| {
        !n.is_empty()
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
            && !n.starts_with(|c: char| c.is_ascii_digit())
    };
    let mut families: Vec<(String, String)> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| anyhow::anyhow!("bad TYPE line {line}"))?;
            anyhow::ensure!(valid_name(name), "bad family name {name}");
            families.push((name.to_string(), kind.to_string()));
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').ok_or_else(|| anyhow::anyhow!("bad sample {line}"))?;
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| anyhow::anyhow!("bad value in {line}"))?,
        };
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let body = rest.strip_suffix('}').ok_or_else(|| anyhow::anyhow!("unclosed labels in {line}"))?;
                (name, parse_labels(body).ok_or_else(|| anyhow::anyhow!("bad labels in {line}"))?)
            }
            None => (series, Vec::new()),
        };
        anyhow::ensure!(valid_name(name), "bad sample name {name}");
        let declared = families.iter().any(|(family, kind)| {
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" => &["_bucket", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            suffixes.iter().any(|s| name.strip_suffix(s) == Some(family.as_str()))
        });
        anyhow::ensure!(declared, "sample {name} has no # TYPE before it");
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    Ok(samples)
}

fn parse_labels(mut body: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    while !body.is_empty() {
        let (key, rest) = body.split_once("=\"")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break i,
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        body = &rest[end + 1..];
        body = body.strip_prefix(',').unwrap_or(body);
    }
    Some(labels)
}

/// Reads the Prometheus text from a metrics address (plain HTTP/1.1 over loopback).
pub async fn scrape_metrics(addr: SocketAddr) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(b"GET /metrics HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n").await?;
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut response)).await??;
    anyhow::ensure!(
        response.starts_with("HTTP/1.1 200"),
        "unexpected response: {}",
        response.lines().next().unwrap_or("")
    );
    Ok(response.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default())
}
