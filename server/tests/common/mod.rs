//! Shared helpers for tests that run the real `linggong-server` binary as a
//! child process on loopback ephemeral ports.

#![allow(dead_code)]

use anyhow::Context as _;
use linggong_server::proto::v1 as pb;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_linggong-server");

/// A server child process.
pub struct ServerProcess {
    /// The child.
    pub child: Child,
    /// Bound gRPC address.
    pub grpc: SocketAddr,
    /// Bound metrics address, if any.
    pub metrics: Option<SocketAddr>,
    /// Bound Raft listener address, in cluster mode.
    pub raft: Option<SocketAddr>,
    /// File receiving the child's stdout.
    pub stdout: PathBuf,
    /// File receiving the child's stderr (logs).
    pub stderr: PathBuf,
}

impl ServerProcess {
    /// Starts `linggong-server serve` on `data_dir` with loopback ephemeral
    /// ports plus `extra` flags, and waits (bounded) until it serves.
    pub fn spawn(data_dir: &Path, logs: &Path, extra: &[&str]) -> anyhow::Result<Self> {
        std::fs::create_dir_all(logs)?;
        let ready = logs.join("ready");
        let _ = std::fs::remove_file(&ready);
        let n = std::fs::read_dir(logs)?.count();
        let stdout = logs.join(format!("stdout-{n}.txt"));
        let stderr = logs.join(format!("stderr-{n}.txt"));
        let mut child = Command::new(BINARY)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--ready-file")
            .arg(&ready)
            .args(extra)
            .env("RUST_LOG", "warn,linggong_server=info")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("spawning linggong-server")?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                let field = |key: &str| {
                    text.lines().find_map(|l| l.strip_prefix(key)).and_then(|v| v.trim().parse::<SocketAddr>().ok())
                };
                if let Some(grpc) = field("grpc=") {
                    return Ok(Self { child, grpc, metrics: field("metrics="), raft: field("raft="), stdout, stderr });
                }
            }
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "linggong-server exited with {status} before serving:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            anyhow::ensure!(Instant::now() < deadline, "linggong-server did not become ready within 60 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal to the child.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// Waits (bounded) for the child to exit.
    pub fn wait(&mut self, within: Duration) -> anyhow::Result<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                anyhow::bail!("linggong-server did not exit within {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The child's logs so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `linggong-server` with arguments to completion; returns (status, stdout, stderr).
pub fn run_tool(args: &[&str]) -> anyhow::Result<(ExitStatus, String, String)> {
    let out = Command::new(BINARY).args(args).env("RUST_LOG", "warn").stdin(Stdio::null()).output()?;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A channel to a server.
pub async fn connect(addr: SocketAddr) -> anyhow::Result<Channel> {
    Ok(Channel::from_shared(format!("http://{addr}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await?)
}

/// A request with a bearer token.
pub fn authed<T>(token: &str, message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ASCII token"));
    request
}

/// Yaodu District.
pub const YAODU: u32 = 141002;

/// A position near Yaodu's seat, `n` steps along a spiral of about 30 m steps.
pub fn near_yaodu(n: u64) -> pb::LatLon {
    let angle = n as f64 * 2.399_963;
    let r = 30.0 * (n as f64).sqrt();
    pb::LatLon {
        lat: 36.08 + r * angle.cos() / 111_195.0,
        lon: 111.52 + r * angle.sin() / 89_950.0,
        ..Default::default()
    }
}

/// A valid waiting porter in Yaodu.
pub fn worker(id: &str, n: u64) -> pb::Worker {
    pb::Worker {
        worker_id: id.into(),
        display_name: format!("零工 {id}"),
        phone: "13812345678".into(),
        trades: vec![pb::TradeSkill { trade_id: "porter".into(), level: 3 }],
        position: Some(near_yaodu(n)),
        county_code: YAODU,
        min_daily_wage_yuan: 100,
        hardship: pb::Hardship::None as i32,
        ..Default::default()
    }
}

/// A valid posting for porters in Yaodu, starting in an hour.
pub fn posting(id: &str, employer: &str, headcount: u32) -> pb::Posting {
    let start = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    pb::Posting {
        posting_id: id.into(),
        employer_id: employer.into(),
        trade_id: "porter".into(),
        headcount,
        position: Some(near_yaodu(0)),
        county_code: YAODU,
        max_distance_m: 30_000,
        daily_wage_yuan: 200,
        start_time: Some(prost_types::Timestamp { seconds: start as i64 + 3600, nanos: 0 }),
        duration_minutes: 480,
        offer_ttl_seconds: 3600,
        source: pb::PostingSource::CountyDesk as i32,
        version: 1,
        ..Default::default()
    }
}

/// A verified employer.
pub fn employer(id: &str) -> pb::Employer {
    pb::Employer {
        employer_id: id.into(),
        display_name: format!("用工单位 {id}"),
        kind: pb::EmployerKind::Individual as i32,
        verified: true,
        ..Default::default()
    }
}

/// One member's history log for [`histories_agree`]: its id, its
/// `raft/history` directory and the service sequence its state is at.
pub struct MemberHistory {
    /// The member's id.
    pub id: u64,
    /// Its history log's directory.
    pub dir: PathBuf,
    /// The service sequence of its state.
    pub service_seq: u64,
}

/// Every member's history log is gap-free up to its service sequence, and
/// any two hold the same record under the same number (a member that
/// installed a snapshot has only the records after it).
pub fn histories_agree(members: &[MemberHistory]) -> Result<(), String> {
    let mut by_seq: std::collections::BTreeMap<u64, (u64, Vec<u8>)> = std::collections::BTreeMap::new();
    for m in members {
        let mut last = None;
        let outcome = linggong_server::wal::scan(&m.dir, 0, |seq, payload| {
            last = Some(seq);
            match by_seq.get(&seq) {
                Some((other, p)) if p.as_slice() != payload => {
                    Err(format!("member {} has another record {seq} than member {other}", m.id))
                }
                Some(_) => Ok(()),
                None => {
                    by_seq.insert(seq, (m.id, payload.to_vec()));
                    Ok(())
                }
            }
        })
        .map_err(|e| format!("member {} history: {e}", m.id))?;
        if let Some(problem) = outcome.problem {
            return Err(format!("member {} history: {problem:?}", m.id));
        }
        let first = outcome.segments.first().map_or(1, |s| s.first_seq);
        if last.unwrap_or(first - 1) != m.service_seq {
            return Err(format!("member {} history ends at {last:?}, its state at {}", m.id, m.service_seq));
        }
    }
    Ok(())
}
