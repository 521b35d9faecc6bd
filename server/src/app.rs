//! The server application: opens the data directory (lock, tokens, recovery),
//! optionally loads the demo population, and serves the gRPC API with health
//! checking, reflection, bounded messages and streams, Prometheus metrics and
//! graceful or fail-stop shutdown. [`start`] is also the entry point for
//! in-process servers in tests and the load tool.

use crate::api::{routes, ApiContext};
use crate::auth::Auth;
use crate::config::ServerConfig;
use crate::conn::{ConnStats, GuardedListener};
use crate::demo::{DemoConfig, DemoOutcome};
use crate::host::{Host, HostConfig};
use crate::metrics::{Metrics, RpcMetrics, ServerMetrics, Sources};
use anyhow::Context as _;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::body::Body as BoxBody;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::tokens::{data_dir_tokens, TokenReloader};
pub use crate::tokens::{DevToken, DEV_TOKEN_FILE, TOKENS_FILE};
/// Name of the lock file that keeps two servers off one data directory.
pub const LOCK_FILE: &str = "LOCK";

/// A server started by [`start`].
pub struct RunningServer {
    /// Bound gRPC address.
    pub addr: SocketAddr,
    /// Bound Prometheus address, if enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Bound HTTP address (console, gRPC-Web, directory GeoJSON), if enabled.
    pub http_addr: Option<SocketAddr>,
    /// The data directory's development operator token, if it has one.
    pub dev_token: Option<DevToken>,
    /// The engine host (for in-process inspection in tests).
    pub host: Arc<Host>,
    /// RPC metrics.
    pub rpc_metrics: Arc<RpcMetrics>,
    /// Application metrics.
    pub server_metrics: Arc<ServerMetrics>,
    /// Connection counters of the gRPC listener.
    pub grpc_connections: Arc<ConnStats>,
    /// Connection counters of the HTTP listener, if enabled.
    pub http_connections: Option<Arc<ConnStats>>,
    stop: watch::Sender<bool>,
    serve: JoinHandle<Result<(), tonic::transport::Error>>,
    http_tasks: Vec<AbortOnDrop>,
    ready: Arc<AtomicBool>,
    ticker: JoinHandle<()>,
    health: HealthReporter,
    grace: Duration,
    _lock: DataDirLock,
}

/// How a server stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stopped {
    /// SIGTERM or SIGINT: drained and snapshotted; exit 0.
    Signal(&'static str),
    /// The log failed and Raft stopped (fail-stop): exit non-zero with this message.
    LogFailed(String),
}

/// Starts the server: binds (port 0 picks a free port), recovers the data
/// directory, loads the demo population if asked, and serves until
/// [`RunningServer::shutdown`].
pub async fn start(config: ServerConfig) -> anyhow::Result<RunningServer> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let lock = DataDirLock::acquire(&config.data_dir)?;
    let (data_tokens, dev_token) = data_dir_tokens(&config.data_dir, config.create_dev_token)?;
    let mut tokens = config.tokens.clone();
    tokens.extend(data_tokens);
    let auth = Arc::new(Auth::new(&tokens).context("token configuration")?);
    if auth.is_empty() {
        tracing::warn!("no tokens are configured: every request will be refused as UNAUTHENTICATED");
    }

    // The HTTP side listens from the start: `/healthz` answers at once,
    // `/readyz` and everything else once recovery has finished.
    let (stop, stop_rx) = watch::channel(false);
    let ready = Arc::new(AtomicBool::new(false));
    let late = crate::web::LateRouter::default();
    let mut http_tasks = Vec::new();
    let mut bind_http = |listener: TcpListener| -> anyhow::Result<SocketAddr> {
        let listener = GuardedListener::new(listener, config.connections);
        let bound = listener.local_addr()?;
        let app = late.attach(health_routes(ready.clone()));
        let mut stop_signal = stop_rx.clone();
        let limits = config.connections;
        let stats = listener.stats();
        http_tasks.push((
            AbortOnDrop(tokio::spawn(async move {
                let shutdown = async move {
                    let _ = stop_signal.wait_for(|stopping| *stopping).await;
                };
                crate::conn::serve_http(listener, app, limits, shutdown).await;
            })),
            stats,
        ));
        Ok(bound)
    };
    let http_addr = match config.http_listen {
        Some(listen) => {
            Some(bind_http(TcpListener::bind(listen).await.with_context(|| format!("binding HTTP address {listen}"))?)?)
        }
        None => None,
    };
    let metrics_addr = match config.metrics_listen {
        Some(listen) => Some(bind_http(
            TcpListener::bind(listen).await.with_context(|| format!("binding metrics address {listen}"))?,
        )?),
        None => None,
    };

    let host_config = HostConfig {
        durability: config.durability,
        segment_bytes: config.segment_bytes,
        snapshot_every_records: config.snapshot_every_records,
        snapshot_every_bytes: config.snapshot_every_bytes,
        engine: config.engine.clone(),
        regions: config.regions.clone(),
        trades: config.trades.clone(),
        max_inflight: config.max_inflight,
        storage: config.wal_storage.clone(),
        ..HostConfig::new(&config.data_dir)
    };
    // Bound before the member starts, so it announces its client address.
    let grpc_listener =
        TcpListener::bind(config.listen).await.with_context(|| format!("binding gRPC address {}", config.listen))?;
    let grpc_bound = grpc_listener.local_addr()?;

    // Every server serves through a Raft member: a lone one (a group of one)
    // unless cluster settings are given. A directory of the single-node
    // layout is migrated (see `migrate`).
    let clients = crate::raft::ClientAddrs { grpc: Some(grpc_bound), http: http_addr };
    let host = Host::open_member(host_config, config.cluster.as_ref(), clients)
        .await
        .with_context(|| format!("opening data directory {}", config.data_dir.display()))?;
    let raft_addr = host.raft_addr();
    let report = host.recovery();
    tracing::info!(
        data_dir = %config.data_dir.display(),
        snapshot = report.snapshot.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "none".into()),
        replayed = report.replayed,
        last_seq = report.last_seq,
        ms = report.elapsed.as_millis() as u64,
        workers = host.read_engine(|e| e.worker_count()),
        "recovered"
    );
    for (path, reason) in &report.skipped_snapshots {
        tracing::warn!(snapshot = %path.display(), %reason, "skipped an unreadable snapshot");
    }

    if let Some(demo) = &config.demo {
        let demo_config = DemoConfig::with_workers(demo.workers);
        tracing::info!(workers = demo_config.workers, employers = demo_config.employers, "loading the demo population");
        match crate::demo::load(&host, &demo_config, config.regions.clone(), config.trades.clone()).await? {
            DemoOutcome::Skipped { existing_workers } => {
                tracing::info!(existing_workers, "demo population skipped: the data directory already has workers")
            }
            DemoOutcome::Loaded { workers, employers, refused, elapsed } => tracing::info!(
                workers,
                employers,
                refused,
                ms = elapsed.as_millis() as u64,
                "demo population loaded (workers w0.., verified employers e0..)"
            ),
        }
    }

    let ticker = host.spawn_ticker(config.tick_interval);
    let rpc_metrics = Arc::new(RpcMetrics::default());
    let server_metrics = Arc::new(ServerMetrics::default());
    let ctx = Arc::new(ApiContext { host: host.clone(), auth: auth.clone(), rpc_metrics: rpc_metrics.clone() });

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    for service in api_service_names() {
        health.set_service_status(service, ServingStatus::Serving).await;
    }
    // Both reflection versions describe the API, health checking and each other.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building the reflection service")?;
    let reflection_v1alpha = reflection()
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .context("building the reflection service")?;

    TokenReloader::new(auth.clone(), &config.data_dir, config.tokens.clone())
        .spawn(config.token_reload_interval, stop_rx.clone());
    let mut builder = Server::builder()
        .concurrency_limit_per_connection(config.max_streams_per_connection as usize)
        .max_concurrent_streams(config.max_streams_per_connection)
        .timeout(config.request_timeout)
        .http2_keepalive_interval(Some(config.connections.keepalive_interval()))
        .http2_keepalive_timeout(Some(config.connections.keepalive_timeout()));
    if let Some(tls) = &config.tls {
        let cert = std::fs::read(&tls.cert).with_context(|| format!("reading {}", tls.cert.display()))?;
        let key = std::fs::read(&tls.key).with_context(|| format!("reading {}", tls.key.display()))?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .context("TLS configuration")?;
    }
    let guard = GuardLayer {
        metrics: server_metrics.clone(),
        stop: stop_rx.clone(),
        max_message_bytes: config.max_message_bytes as u32,
    };
    let web_grpc = match http_addr.or(metrics_addr) {
        Some(_) => {
            let mut services = api_service_names();
            services.push("grpc.health.v1.Health".into());
            let grpc_routes = routes(ctx.clone()).add_service(health_service.clone());
            Some(crate::web::GrpcWeb::new(grpc_routes, services, guard.clone(), &config.web.cors_origins))
        }
        None => None,
    };
    let router = builder
        .layer(guard)
        .add_routes(routes(ctx))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);

    let listener = GuardedListener::new(grpc_listener, config.connections);
    let addr = listener.local_addr()?;
    let grpc_connections = listener.stats();
    let incoming = listener.into_incoming();
    let mut stop_signal = stop_rx.clone();
    let serve = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = stop_signal.wait_for(|stopping| *stopping).await;
    }));

    let mut listeners = vec![("grpc", grpc_connections.clone())];
    if let Some((_, stats)) = http_tasks.first().filter(|_| http_addr.is_some()) {
        listeners.push(("http", stats.clone()));
    }
    let metrics = Arc::new(Metrics::new(
        &rpc_metrics,
        Sources { host: host.clone(), server: server_metrics.clone(), data_dir: config.data_dir.clone(), listeners },
    ));
    let mut app = Router::new().route("/metrics", get(metrics_page)).with_state(metrics);
    if let Some(grpc) = web_grpc {
        app = app.merge(crate::web::router(host.clone(), config.web.clone(), grpc));
    }
    late.set(app);
    let http_connections = http_tasks.first().filter(|_| http_addr.is_some()).map(|(_, stats)| stats.clone());
    let http_tasks: Vec<AbortOnDrop> = http_tasks.into_iter().map(|(task, _)| task).collect();
    tracing::info!(
        grpc = %addr,
        http = http_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        metrics = metrics_addr.map(|a| a.to_string()).unwrap_or_else(|| "off".into()),
        tls = config.tls.is_some(),
        durability = %config.durability,
        tokens = auth.len(),
        "serving"
    );
    if let Some(path) = &config.ready_file {
        write_ready_file(path, addr, http_addr, metrics_addr, raft_addr)?;
    }
    ready.store(true, Ordering::Relaxed);
    Ok(RunningServer {
        addr,
        metrics_addr,
        http_addr,
        dev_token,
        host,
        rpc_metrics,
        server_metrics,
        grpc_connections,
        http_connections,
        stop,
        serve,
        http_tasks,
        ready,
        ticker,
        health,
        grace: config.shutdown_grace,
        _lock: lock,
    })
}

impl RunningServer {
    /// Graceful shutdown: reports NOT_SERVING, stops accepting, lets in-flight
    /// requests finish (ending open watch streams with UNAVAILABLE so clients
    /// resume elsewhere), waits up to the grace period, then stops the host,
    /// which drains the log and writes a final snapshot.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        self.ready.store(false, Ordering::Relaxed);
        self.health.set_service_status("", ServingStatus::NotServing).await;
        for service in api_service_names() {
            self.health.set_service_status(service, ServingStatus::NotServing).await;
        }
        let _ = self.stop.send(true);
        match tokio::time::timeout(self.grace, &mut self.serve).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "the gRPC server ended with an error"),
            Ok(Err(e)) => tracing::warn!(error = %e, "the gRPC server task failed"),
            Err(_) => {
                tracing::warn!(
                    grace_ms = self.grace.as_millis() as u64,
                    "requests still running after the grace period; stopping them"
                );
                self.serve.abort();
            }
        }
        self.ticker.abort();
        for mut task in std::mem::take(&mut self.http_tasks) {
            // Watch streams were ended by the stop signal; unary calls get the rest of the grace period.
            let left = self.grace.saturating_sub(started.elapsed());
            let _ = tokio::time::timeout(left, &mut task.0).await;
        }
        self.host.shutdown().await;
        tracing::info!(ms = started.elapsed().as_millis() as u64, "stopped: final snapshot written, Raft stopped");
        Ok(())
    }

    /// Resolves when the log has failed (Raft stopped on it), with its message.
    pub async fn log_failure(&self) -> String {
        self.host.failed().await
    }

    /// Serves until SIGTERM/SIGINT (then shuts down gracefully) or a log
    /// failure (then stops serving at once without touching the data directory).
    pub async fn run_until_stopped(self) -> anyhow::Result<Stopped> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
        let why = tokio::select! {
            _ = terminate.recv() => Stopped::Signal("SIGTERM"),
            _ = interrupt.recv() => Stopped::Signal("SIGINT"),
            message = self.log_failure() => Stopped::LogFailed(message),
        };
        match &why {
            Stopped::Signal(name) => {
                tracing::info!(signal = name, "shutting down: no new connections, finishing in-flight requests");
                self.shutdown().await?;
            }
            Stopped::LogFailed(message) => {
                tracing::error!(
                    error = %message,
                    "the log failed; stopping (fail-stop). Acknowledged writes are on disk; check the disk, \
                     then restart (run `linggong-server wal verify` first if in doubt)"
                );
                let _ = self.stop.send(true);
                self.serve.abort();
            }
        }
        Ok(why)
    }
}

/// Fully qualified names of the public API services, from the descriptor set.
pub fn api_service_names() -> Vec<String> {
    use prost::Message as _;
    let Ok(set) = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET) else { return Vec::new() };
    let mut names: Vec<String> = set
        .file
        .iter()
        .filter(|f| f.package().starts_with("linggong.") && !f.package().starts_with("linggong.wal"))
        .flat_map(|f| f.service.iter().map(move |s| format!("{}.{}", f.package(), s.name())))
        .collect();
    names.sort();
    names.dedup();
    names
}

// ---------------------------------------------------------------- data dir

/// An exclusive lock on a data directory, held while the server runs
/// (released by the kernel if the process dies).
pub struct DataDirLock {
    _file: std::fs::File,
}

impl DataDirLock {
    /// Takes the lock or says which process holds it.
    pub fn acquire(data_dir: &Path) -> anyhow::Result<Self> {
        use std::io::{Read, Seek, Write};
        use std::os::fd::AsRawFd;
        let path = data_dir.join(LOCK_FILE);
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        // SAFETY: flock on a descriptor this function owns; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            anyhow::bail!(
                "data directory {} is in use by another linggong-server ({}); stop it first",
                data_dir.display(),
                holder.trim()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "pid {}", std::process::id())?;
        Ok(Self { _file: file })
    }
}

fn write_ready_file(
    path: &Path,
    grpc: SocketAddr,
    http: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    raft: Option<SocketAddr>,
) -> anyhow::Result<()> {
    let mut text = format!("grpc={grpc}\n");
    if let Some(r) = raft {
        text.push_str(&format!("raft={r}\n"));
    }
    if let Some(h) = http {
        text.push_str(&format!("http={h}\n"));
    }
    if let Some(m) = metrics {
        text.push_str(&format!("metrics={m}\n"));
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(())
}

// ------------------------------------------------------------- HTTP side

/// Aborts a task when dropped (a start that fails half-way leaves nothing running).
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `/healthz` (the process serves HTTP) and `/readyz` (recovery has finished
/// and the server is not shutting down), for supervisors and load balancers.
fn health_routes(ready: Arc<AtomicBool>) -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" })).route(
        "/readyz",
        get(move || {
            let ready = ready.load(Ordering::Relaxed);
            async move {
                if ready {
                    (StatusCode::OK, "ready\n")
                } else {
                    (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                }
            }
        }),
    )
}

async fn metrics_page(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE), (header::CACHE_CONTROL, "no-cache")], metrics.render())
}

/// Wraps every gRPC call: counts it in flight, refuses request messages over
/// the size limit (RESOURCE_EXHAUSTED, before they are buffered), and ends
/// server streams that are idle when the server shuts down (UNAVAILABLE), so
/// graceful shutdown never waits on a watcher.
#[derive(Clone)]
pub(crate) struct GuardLayer {
    metrics: Arc<ServerMetrics>,
    stop: watch::Receiver<bool>,
    max_message_bytes: u32,
}

impl<S> tower_layer::Layer<S> for GuardLayer {
    type Service = GuardService<S>;
    fn layer(&self, inner: S) -> GuardService<S> {
        GuardService { inner, layer: self.clone() }
    }
}

#[derive(Clone)]
pub(crate) struct GuardService<S> {
    inner: S,
    layer: GuardLayer,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> tower_service::Service<http::Request<BoxBody>> for GuardService<S>
where
    S: tower_service::Service<http::Request<BoxBody>, Response = http::Response<BoxBody>> + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<GuardedBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<BoxBody>) -> Self::Future {
        let inflight = self.layer.metrics.request_started();
        let limit = self.layer.max_message_bytes;
        let metrics = self.layer.metrics.clone();
        let request = request.map(|body| {
            BoxBody::new(LimitedBody { inner: body, limit, header: [0; 5], header_len: 0, remaining: 0, metrics })
        });
        let future = self.inner.call(request);
        let stop = self.layer.stop.clone();
        let metrics = self.layer.metrics.clone();
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|inner| GuardedBody {
                inner,
                stop: Some(stop),
                stop_wait: None,
                ended: false,
                metrics,
                _inflight: inflight,
            }))
        })
    }
}

/// Request body that checks every gRPC frame's declared length against the limit.
struct LimitedBody {
    inner: BoxBody,
    limit: u32,
    header: [u8; 5],
    header_len: usize,
    remaining: u64,
    metrics: Arc<ServerMetrics>,
}

impl LimitedBody {
    /// Follows the frames in `data`; on a frame over the limit returns its declared length.
    fn check(&mut self, mut data: &[u8]) -> Result<(), u32> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = (self.remaining as usize).min(data.len());
                self.remaining -= take as u64;
                data = &data[take..];
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 5 {
                self.header_len = 0;
                let len = u32::from_be_bytes([self.header[1], self.header[2], self.header[3], self.header[4]]);
                if len > self.limit {
                    return Err(len);
                }
                self.remaining = u64::from(len);
            }
        }
        Ok(())
    }
}

impl Body for LimitedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            if let Err(len) = self.check(data) {
                self.metrics.oversize_message();
                return Poll::Ready(Some(Err(tonic::Status::resource_exhausted(format!(
                    "request message of {len} bytes exceeds the limit of {} bytes",
                    self.limit
                )))));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Response body that ends an idle stream with UNAVAILABLE once the server stops.
pub(crate) struct GuardedBody {
    inner: BoxBody,
    stop: Option<watch::Receiver<bool>>,
    stop_wait: Option<BoxFuture<()>>,
    ended: bool,
    metrics: Arc<ServerMetrics>,
    _inflight: crate::metrics::InflightRequest,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        // The inner body has nothing ready: a stream waiting for events. Only
        // now (never for unary responses) wait on the stop signal too.
        if this.stop_wait.is_none() {
            if let Some(mut stop) = this.stop.take() {
                this.stop_wait = Some(Box::pin(async move {
                    let _ = stop.wait_for(|s| *s).await;
                }));
            }
        }
        if let Some(wait) = this.stop_wait.as_mut() {
            if wait.as_mut().poll(cx).is_ready() {
                this.ended = true;
                this.metrics.stream_ended_by_shutdown();
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("14"));
                trailers.insert(
                    "grpc-message",
                    http::HeaderValue::from_static("server%20shutting%20down%3B%20resume%20later"),
                );
                return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
            }
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        if self.ended {
            SizeHint::with_exact(0)
        } else {
            self.inner.size_hint()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limited_body_checks_each_frame_across_chunks() {
        let metrics = Arc::new(ServerMetrics::default());
        let mut body =
            LimitedBody { inner: BoxBody::empty(), limit: 10, header: [0; 5], header_len: 0, remaining: 0, metrics };
        // Two frames of 10 bytes, split at awkward places.
        let mut stream = vec![0u8, 0, 0, 0, 10];
        stream.extend([7u8; 10]);
        stream.extend([0u8, 0, 0, 0, 10]);
        stream.extend([7u8; 10]);
        for chunk in stream.chunks(3) {
            body.check(chunk).unwrap();
        }
        // A frame of 11 bytes is refused as soon as its header is complete.
        assert!(body.check(&[0, 0, 0]).is_ok());
        assert_eq!(body.check(&[0, 11]), Err(11));
    }

    #[tokio::test]
    async fn readiness_follows_the_flag_and_health_does_not() {
        use tower::ServiceExt as _;
        let ready = Arc::new(AtomicBool::new(false));
        let app = health_routes(ready.clone());
        let status = |path: &'static str| {
            let app = app.clone();
            async move {
                let request = http::Request::get(path).body(axum::body::Body::empty()).unwrap_or_default();
                app.oneshot(request).await.map(|r| r.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        };
        assert_eq!(status("/readyz").await, StatusCode::SERVICE_UNAVAILABLE, "not ready during recovery");
        assert_eq!(status("/healthz").await, StatusCode::OK);
        ready.store(true, Ordering::Relaxed);
        assert_eq!(status("/readyz").await, StatusCode::OK);
        ready.store(false, Ordering::Relaxed);
        assert_eq!(status("/readyz").await, StatusCode::SERVICE_UNAVAILABLE, "not ready once shutting down");
    }

    #[test]
    fn a_data_directory_is_locked_while_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let lock = DataDirLock::acquire(dir.path()).unwrap();
        let err = DataDirLock::acquire(dir.path()).err().unwrap();
        assert!(err.to_string().contains("in use"), "{err}");
        drop(lock);
        DataDirLock::acquire(dir.path()).unwrap();
    }

    #[test]
    fn service_names_come_from_the_descriptor_set() {
        let names = api_service_names();
        assert!(names.iter().any(|n| n == "linggong.v1.WorkerService"), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("linggong.wal")), "{names:?}");
    }
}
