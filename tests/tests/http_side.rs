//! The operator's side of the HTTP listener against an in-process server, as
//! Prometheus and a load balancer use it: `/healthz`, `/readyz`, `/metrics`
//! in OpenMetrics text (parsed), HEAD, several requests on one keep-alive
//! connection, and the `--metrics-listen` address serving the same.

use linggong_tests::*;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off a keep-alive connection: status, headers, body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Sends one request on `stream` and reads exactly one response (by
/// `content-length`; HEAD has no body), within five seconds.
async fn request(stream: &mut TcpStream, method: &str, path: &str, buf: &mut Vec<u8>) -> anyhow::Result<Response> {
    stream.write_all(format!("{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n").as_bytes()).await?;
    let read = async {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                let mut lines = head.split("\r\n");
                let status: u16 =
                    lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let length: usize =
                    headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
                let length = if method == "HEAD" { 0 } else { length };
                if buf.len() >= end + 4 + length {
                    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + length]).into_owned();
                    buf.drain(..end + 4 + length);
                    return anyhow::Ok(Response { status, headers, body });
                }
            }
            let n = stream.read(&mut chunk).await?;
            anyhow::ensure!(n > 0, "connection closed before a whole response");
            buf.extend_from_slice(&chunk[..n]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read).await?
}

#[tokio::test]
async fn health_readiness_and_metrics_on_one_keep_alive_connection() -> anyhow::Result<()> {
    let server = TestServer::start_with(|c| c.http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
    let mut c = server.clients().await?;
    register_workers(
        &mut c,
        &server.tokens.yaodu,
        &WorkerGroup { prefix: "w", count: 2, county: YAODU, trade: "porter", centre: YAODU_SEAT, spread_m: 500.0 },
    )
    .await?;
    let http = server.running().http_addr.expect("HTTP listener");
    let mut stream = TcpStream::connect(http).await?;
    let mut buf = Vec::new();

    let health = request(&mut stream, "GET", "/healthz", &mut buf).await?;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = request(&mut stream, "GET", "/readyz", &mut buf).await?;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    let head = request(&mut stream, "HEAD", "/readyz", &mut buf).await?;
    assert_eq!(head.status, 200);

    let metrics = request(&mut stream, "GET", "/metrics", &mut buf).await?;
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("content-type").is_some_and(|t| t.starts_with("application/openmetrics-text")));
    let samples = parse_openmetrics(&metrics.body)?;
    let find = |name: &'static str| samples.iter().filter(move |s| s.name == name);
    let registered: f64 = find("grpc_server_handled_total")
        .filter(|s| s.label("grpc_method") == Some("RegisterWorker") && s.label("grpc_code") == Some("OK"))
        .map(|s| s.value)
        .sum();
    assert_eq!(registered, 2.0);
    assert!(find("grpc_server_handling_seconds_bucket").any(|s| s.label("grpc_type") == Some("unary")));
    assert!(find("linggong_build_info").any(|s| s.label("version") == Some(env!("CARGO_PKG_VERSION"))));
    assert_eq!(find("linggong_waiting_workers").map(|s| s.value).next(), Some(2.0));
    assert!(find("linggong_wal_disk_bytes").next().is_some_and(|s| s.value > 0.0), "the log has records on disk");
    assert!(find("process_resident_memory_bytes").next().is_some_and(|s| s.value > 0.0));
    assert!(find("process_open_fds").next().is_some_and(|s| s.value > 0.0));
    assert!(find("linggong_connections_open").any(|s| s.label("listener") == Some("http") && s.value >= 1.0));
    assert!(
        samples.iter().all(|s| !(s.name.ends_with("_total") && samples_family_is_gauge(&metrics.body, &s.name))),
        "no gauge ends in _total"
    );

    let head = request(&mut stream, "HEAD", "/metrics", &mut buf).await?;
    assert_eq!(head.status, 200);
    // The same connection is still open for another request.
    let again = request(&mut stream, "GET", "/healthz", &mut buf).await?;
    assert_eq!(again.status, 200);

    // The metrics address serves the same operator endpoints.
    let metrics_addr = server.running().metrics_addr.expect("metrics listener");
    let text = scrape_metrics(metrics_addr).await?;
    assert!(parse_openmetrics(&text)?.iter().any(|s| s.name == "grpc_server_handled_total"));
    drop(stream);
    server.stop().await
}

/// Whether the family a `_total` sample name belongs to is declared a gauge.
fn samples_family_is_gauge(text: &str, name: &str) -> bool {
    text.lines().any(|l| l == format!("# TYPE {name} gauge"))
}
