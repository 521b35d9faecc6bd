//! Connection limits for the gRPC and HTTP listeners: a cap on open
//! connections in total and per source address (a connection over a cap is
//! closed as soon as it is accepted), a handshake deadline (a client must send
//! its first [`HANDSHAKE_BYTES`] bytes within it, or it is closed), and an idle
//! timeout (a connection on which nothing is read or written for that long is
//! closed). HTTP/2 keep-alive pings and the HTTP/1 header deadline are set on
//! the protocol servers from the same [`ConnLimits`].

use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use std::future::Future as _;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

/// Bytes a client must send within the handshake timeout: the length of the
/// HTTP/2 connection preface. An HTTP/1 request line with its `Host` header
/// and a TLS ClientHello are longer.
pub const HANDSHAKE_BYTES: u64 = 24;

/// Connection limits of one listener (`[connections]` in the config file; the
/// same values apply to the gRPC and the HTTP listener, each counted apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConnLimits {
    /// A connection must send its first bytes (HTTP/2 preface, HTTP/1 request
    /// line, TLS hello) within this many milliseconds; HTTP/1 request headers
    /// must be complete within it too.
    pub handshake_timeout_ms: u64,
    /// A connection on which nothing is read or written for this many
    /// milliseconds is closed.
    pub idle_timeout_ms: u64,
    /// HTTP/2 keep-alive ping interval, milliseconds.
    pub keepalive_interval_ms: u64,
    /// A connection that does not answer a keep-alive ping within this many
    /// milliseconds is closed.
    pub keepalive_timeout_ms: u64,
    /// Most open connections on the listener.
    pub max_connections: usize,
    /// Most open connections from one source address.
    pub max_connections_per_ip: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 300_000,
            keepalive_interval_ms: 30_000,
            keepalive_timeout_ms: 10_000,
            max_connections: 4_096,
            max_connections_per_ip: 512,
        }
    }
}

impl ConnLimits {
    /// The handshake deadline.
    pub fn handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.handshake_timeout_ms.max(1))
    }

    /// The idle timeout.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.max(1))
    }

    /// The HTTP/2 keep-alive ping interval.
    pub fn keepalive_interval(&self) -> Duration {
        Duration::from_millis(self.keepalive_interval_ms.max(1))
    }

    /// How long a keep-alive ping may go unanswered.
    pub fn keepalive_timeout(&self) -> Duration {
        Duration::from_millis(self.keepalive_timeout_ms.max(1))
    }
}

/// Counters of one listener, for metrics.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Connections accepted and kept.
    pub accepted: AtomicU64,
    /// Connections closed at once because a cap was reached.
    pub refused: AtomicU64,
    /// Connections closed for missing the handshake deadline.
    pub handshake_timeouts: AtomicU64,
    /// Connections closed for being idle.
    pub idle_timeouts: AtomicU64,
    open: AtomicU64,
}

impl ConnStats {
    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_ip: FxHashMap<IpAddr, usize>,
}

/// A TCP listener that enforces [`ConnLimits`] on what it accepts.
pub struct GuardedListener {
    listener: TcpListener,
    limits: ConnLimits,
    counts: Arc<Mutex<Counts>>,
    stats: Arc<ConnStats>,
}

impl GuardedListener {
    /// Wraps a bound listener.
    pub fn new(listener: TcpListener, limits: ConnLimits) -> Self {
        Self { listener, limits, counts: Arc::default(), stats: Arc::default() }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The listener's counters.
    pub fn stats(&self) -> Arc<ConnStats> {
        self.stats.clone()
    }

    /// Waits for the next connection within the caps; connections over a cap
    /// are closed here. Accept errors (such as running out of descriptors) are
    /// logged and retried after a short pause.
    pub async fn accept(&self) -> (GuardedStream, SocketAddr) {
        loop {
            let (stream, peer) = match self.listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(permit) = self.admit(peer.ip()) else {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "connection refused: connection cap reached");
                drop(stream);
                continue;
            };
            let _ = stream.set_nodelay(true);
            self.stats.accepted.fetch_add(1, Ordering::Relaxed);
            self.stats.open.fetch_add(1, Ordering::Relaxed);
            let local = stream.local_addr().ok();
            let stream = GuardedStream {
                stream,
                local,
                peer,
                received: 0,
                handshake: self.limits.handshake_timeout(),
                idle: self.limits.idle_timeout(),
                deadline: Box::pin(tokio::time::sleep(self.limits.handshake_timeout())),
                stats: self.stats.clone(),
                _permit: permit,
            };
            return (stream, peer);
        }
    }

    /// The connections as a stream, for tonic's `serve_with_incoming`.
    pub fn into_incoming(self) -> impl futures::Stream<Item = io::Result<GuardedStream>> + Send + 'static {
        futures::stream::unfold(self, |listener| async move {
            let (stream, _) = listener.accept().await;
            Some((Ok(stream), listener))
        })
    }

    fn admit(&self, ip: IpAddr) -> Option<Permit> {
        let mut counts = self.counts.lock();
        let from_ip = counts.by_ip.get(&ip).copied().unwrap_or(0);
        if counts.total >= self.limits.max_connections || from_ip >= self.limits.max_connections_per_ip {
            return None;
        }
        counts.total += 1;
        counts.by_ip.insert(ip, from_ip + 1);
        Some(Permit { counts: self.counts.clone(), ip })
    }
}

/// Gives a connection's place under the caps back when dropped.
struct Permit {
    counts: Arc<Mutex<Counts>>,
    ip: IpAddr,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.by_ip.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.by_ip.remove(&self.ip);
            }
        }
    }
}

/// An accepted connection under the handshake deadline and the idle timeout:
/// once a deadline passes, reads and writes fail with `TimedOut`, and the
/// protocol server closes the connection.
pub struct GuardedStream {
    stream: TcpStream,
    local: Option<SocketAddr>,
    peer: SocketAddr,
    received: u64,
    handshake: Duration,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
    stats: Arc<ConnStats>,
    _permit: Permit,
}

impl Drop for GuardedStream {
    fn drop(&mut self) {
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl GuardedStream {
    /// The peer's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    fn in_handshake(&self) -> bool {
        self.received < HANDSHAKE_BYTES
    }

    /// Moves the deadline on after traffic (the handshake deadline stays until
    /// the handshake bytes have arrived).
    fn activity(&mut self) {
        if !self.in_handshake() {
            self.deadline.as_mut().reset(Instant::now() + self.idle);
        }
    }

    fn check_deadline(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.deadline.as_mut().poll(cx).is_pending() {
            return Ok(());
        }
        let (what, counter) = if self.in_handshake() {
            ("handshake", &self.stats.handshake_timeouts)
        } else {
            ("idle", &self.stats.idle_timeouts)
        };
        counter.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(peer = %self.peer, what, "closing a connection: timed out");
        // Keep failing on later polls; the deadline is not reset.
        self.deadline.as_mut().reset(Instant::now() + Duration::from_secs(3600));
        self.handshake = Duration::ZERO;
        Err(io::Error::new(io::ErrorKind::TimedOut, format!("connection {what} timeout")))
    }

    fn timed_out(&self) -> bool {
        self.handshake.is_zero()
    }

    /// What a write hands back: bytes written count as activity; a write
    /// that must wait arms the deadline.
    fn finish_write(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.activity();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check_deadline(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

fn timed_out_error() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "connection timed out")
}

impl AsyncRead for GuardedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.timed_out() {
            return Poll::Ready(Err(timed_out_error()));
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = (buf.filled().len() - before) as u64;
                if n > 0 {
                    self.received = self.received.saturating_add(n);
                    self.activity();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.check_deadline(cx) {
                Ok(()) => Poll::Pending,
                Err(e) => Poll::Ready(Err(e)),
            },
        }
    }
}

impl AsyncWrite for GuardedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        if self.timed_out() {
            return Poll::Ready(Err(timed_out_error()));
        }
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        self.finish_write(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.timed_out() {
            return Poll::Ready(Err(timed_out_error()));
        }
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.finish_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

impl tonic::transport::server::Connected for GuardedStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        tonic::transport::server::TcpConnectInfo { local_addr: self.local, remote_addr: Some(self.peer) }
    }
}

/// Serves an axum router on a guarded listener with HTTP/1 (header deadline,
/// keep-alive) and HTTP/2 (keep-alive pings) until `shutdown` resolves, then
/// lets open connections finish their requests.
pub async fn serve_http(
    listener: GuardedListener,
    app: axum::Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send,
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::service::TowerToHyperService;
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).keep_alive(true).header_read_timeout(limits.handshake_timeout());
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.keepalive_interval())
        .keep_alive_timeout(limits.keepalive_timeout());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let service = TowerToHyperService::new(app.clone());
        let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "an HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
