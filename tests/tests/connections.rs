//! Connection limits on both listeners against an in-process server with
//! short configured timeouts: connections that send nothing, half an HTTP/2
//! preface or half an HTTP/1 request head are closed while a normal client is
//! served; a connection that stops answering HTTP/2 keep-alive pings, or goes
//! quiet, is closed; connections beyond the per-address and total caps are
//! refused at once.

use linggong_server::conn::ConnLimits;
use linggong_tests::*;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// The HTTP/2 connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An empty SETTINGS frame.
const SETTINGS: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
/// Longest any single wait in these tests may take.
const BOUND: Duration = Duration::from_secs(10);

fn limits(adjust: impl FnOnce(&mut ConnLimits)) -> ConnLimits {
    let mut l = ConnLimits {
        handshake_timeout_ms: 60_000,
        idle_timeout_ms: 60_000,
        keepalive_interval_ms: 60_000,
        keepalive_timeout_ms: 60_000,
        max_connections: 1_000,
        max_connections_per_ip: 1_000,
    };
    adjust(&mut l);
    l
}

async fn server(limits: ConnLimits) -> anyhow::Result<TestServer> {
    TestServer::start_with(|c| {
        c.connections = limits;
        c.http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    })
    .await
}

/// Connects from a chosen loopback source address.
async fn connect_from(source: [u8; 4], to: SocketAddr) -> anyhow::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    Ok(socket.connect(to).await?)
}

/// Reads until the server closes the connection (end of file or reset),
/// within [`BOUND`]; returns everything read.
async fn read_until_closed(stream: &mut TcpStream) -> anyhow::Result<Vec<u8>> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(BOUND, read).await.map_err(|_| anyhow::anyhow!("the server kept the connection open"))?;
    Ok(seen)
}

/// HTTP/2 frame types in `bytes` (the server's side of a connection).
fn frame_types(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        types.push(rest[3]);
        rest = &rest[(9 + len).min(rest.len())..];
    }
    types
}

async fn health_ok(channel: tonic::transport::Channel) -> anyhow::Result<()> {
    let mut client = HealthClient::new(channel);
    let answer = tokio::time::timeout(BOUND, client.check(HealthCheckRequest { service: String::new() })).await??;
    anyhow::ensure!(answer.into_inner().status == 1, "not SERVING");
    Ok(())
}

async fn channel(addr: SocketAddr) -> anyhow::Result<tonic::transport::Channel> {
    Ok(tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?.connect().await?)
}

#[tokio::test]
async fn silent_and_half_handshake_connections_are_closed_while_a_client_is_served() -> anyhow::Result<()> {
    let server = server(limits(|l| l.handshake_timeout_ms = 300)).await?;
    let grpc = server.addr();
    let http = server.running().http_addr.expect("HTTP listener");
    let started = Instant::now();
    let mut silent = vec![TcpStream::connect(grpc).await?, TcpStream::connect(grpc).await?];
    let mut half = TcpStream::connect(grpc).await?;
    half.write_all(&PREFACE[..16]).await?;
    let mut http_silent = TcpStream::connect(http).await?;
    let mut http_half = TcpStream::connect(http).await?;
    http_half.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {http}\r\n").as_bytes()).await?;

    // A normal client is served meanwhile, and after the others are gone.
    let normal = channel(grpc).await?;
    health_ok(normal.clone()).await?;
    for stream in silent.iter_mut().chain([&mut half, &mut http_silent, &mut http_half]) {
        read_until_closed(stream).await?;
    }
    assert!(started.elapsed() >= Duration::from_millis(300), "closed before the handshake deadline");
    health_ok(normal).await?;
    let running = server.running();
    assert_eq!(running.grpc_connections.handshake_timeouts.load(Ordering::Relaxed), 3);
    let http_stats = running.http_connections.as_ref().expect("HTTP listener");
    // The silent one misses the first bytes; the half request head is ended by the HTTP/1 header deadline.
    assert!(http_stats.handshake_timeouts.load(Ordering::Relaxed) >= 1);
    server.stop().await
}

#[tokio::test]
async fn a_peer_that_does_not_answer_keepalive_pings_is_closed() -> anyhow::Result<()> {
    let server = server(limits(|l| {
        l.keepalive_interval_ms = 100;
        l.keepalive_timeout_ms = 100;
    }))
    .await?;
    let mut stream = TcpStream::connect(server.addr()).await?;
    stream.write_all(PREFACE).await?;
    stream.write_all(SETTINGS).await?;
    let seen = read_until_closed(&mut stream).await?;
    let types = frame_types(&seen);
    assert!(types.contains(&4), "the server sent its SETTINGS: {types:?}");
    assert!(types.contains(&6), "the server sent a PING before closing: {types:?}");
    let stats = &server.running().grpc_connections;
    assert_eq!(stats.handshake_timeouts.load(Ordering::Relaxed), 0);
    assert_eq!(stats.idle_timeouts.load(Ordering::Relaxed), 0, "closed by the ping timeout, not the idle one");
    server.stop().await
}

#[tokio::test]
async fn quiet_connections_are_closed_after_the_idle_timeout() -> anyhow::Result<()> {
    let server = server(limits(|l| l.idle_timeout_ms = 300)).await?;
    let http = server.running().http_addr.expect("HTTP listener");
    // An HTTP/2 peer that completed its preface and then says nothing.
    let mut h2 = TcpStream::connect(server.addr()).await?;
    h2.write_all(PREFACE).await?;
    h2.write_all(SETTINGS).await?;
    // An HTTP/1.1 keep-alive connection after one answered request.
    let mut h1 = TcpStream::connect(http).await?;
    h1.write_all(format!("GET /healthz HTTP/1.1\r\nHost: {http}\r\n\r\n").as_bytes()).await?;
    let started = Instant::now();
    let seen = read_until_closed(&mut h1).await?;
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&seen));
    read_until_closed(&mut h2).await?;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let running = server.running();
    assert_eq!(running.grpc_connections.idle_timeouts.load(Ordering::Relaxed), 1);
    assert_eq!(running.http_connections.as_ref().map(|s| s.idle_timeouts.load(Ordering::Relaxed)), Some(1));
    server.stop().await
}

#[tokio::test]
async fn connections_beyond_the_caps_are_refused() -> anyhow::Result<()> {
    let server = server(limits(|l| {
        l.max_connections_per_ip = 2;
        l.max_connections = 3;
    }))
    .await?;
    let grpc = server.addr();
    // Two clients from 127.0.0.1 fill that address's share.
    let first = channel(grpc).await?;
    let second = channel(grpc).await?;
    health_ok(first.clone()).await?;
    health_ok(second.clone()).await?;
    let mut third = connect_from([127, 0, 0, 1], grpc).await?;
    assert!(read_until_closed(&mut third).await?.is_empty(), "refused without an answer");

    // Another address still gets in, until the total is reached.
    let mut other = connect_from([127, 0, 0, 2], grpc).await?;
    other.write_all(PREFACE).await?;
    other.write_all(SETTINGS).await?;
    let mut head = [0u8; 9];
    tokio::time::timeout(BOUND, other.read_exact(&mut head)).await??;
    assert_eq!(head[3], 4, "served: the server's SETTINGS frame");
    let mut over_total = connect_from([127, 0, 0, 2], grpc).await?;
    assert!(read_until_closed(&mut over_total).await?.is_empty());

    health_ok(first.clone()).await?;
    health_ok(second.clone()).await?;
    let stats = &server.running().grpc_connections;
    assert_eq!(stats.refused.load(Ordering::Relaxed), 2);
    assert_eq!(stats.open(), 3, "two clients and the other address's connection");
    drop((first, second));

    // The HTTP listener counts its own connections under the same caps.
    let http = server.running().http_addr.expect("HTTP listener");
    let _a = TcpStream::connect(http).await?;
    let _b = TcpStream::connect(http).await?;
    let mut c = TcpStream::connect(http).await?;
    assert!(read_until_closed(&mut c).await?.is_empty());
    assert_eq!(server.running().http_connections.as_ref().map(|s| s.refused.load(Ordering::Relaxed)), Some(1));
    drop((other, _a, _b));
    server.stop().await
}
