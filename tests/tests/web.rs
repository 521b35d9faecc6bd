//! End-to-end tests of the HTTP listener against an in-process server: the
//! embedded console with its single-page fallback and content policy,
//! `/console.json`, the live `/directory.geojson` in each coordinate system,
//! and gRPC-Web (unary and server streaming) through the same authentication,
//! with CORS only for configured origins. Requests are plain HTTP/1.1 over a
//! loopback socket, as a browser sends them.

use linggong_server::proto::v1 as pb;
use linggong_tests::*;
use prost::Message as _;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HTTP/1.1 response: status, lower-case headers, de-chunked body.
struct HttpResponse {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request (`Connection: close`) and reads the whole response, or
/// stops after `limit` body bytes (for streams), within five seconds.
async fn http(addr: SocketAddr, head: &str, body: &[u8], limit: usize) -> anyhow::Result<HttpResponse> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!("{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n", body.len());
    stream.write_all(request.as_bytes()).await?;
    stream.write_all(body).await?;
    let mut raw = Vec::new();
    let read = async {
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(parsed) = parse(&raw)? {
                if parsed.body.len() >= limit {
                    break;
                }
            }
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(Duration::from_secs(5), read).await??;
    parse(&raw)?.ok_or_else(|| anyhow::anyhow!("incomplete response: {}", String::from_utf8_lossy(&raw)))
}

fn parse(raw: &[u8]) -> anyhow::Result<Option<HttpResponse>> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = std::str::from_utf8(&raw[..end])?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or("0").parse()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut rest = &raw[end + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut body = Vec::new();
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..eol])?.trim(), 16)?;
            if size == 0 || rest.len() < eol + 2 + size {
                break;
            }
            body.extend_from_slice(&rest[eol + 2..eol + 2 + size]);
            rest = &rest[(eol + 4 + size).min(rest.len())..];
        }
        body
    } else {
        rest.to_vec()
    };
    Ok(Some(HttpResponse { status, headers, body }))
}

/// A gRPC-Web request body: one uncompressed message frame.
fn grpc_web_frame(message: &impl prost::Message) -> Vec<u8> {
    let bytes = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bytes);
    frame
}

/// Splits a gRPC-Web response body into its messages and its trailers.
fn grpc_web_frames(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if body.len() < 5 + len {
            break;
        }
        let payload = &body[5..5 + len];
        if body[0] & 0x80 != 0 {
            trailers.push_str(&String::from_utf8_lossy(payload).to_ascii_lowercase());
        } else {
            messages.push(payload.to_vec());
        }
        body = &body[5 + len..];
    }
    (messages, trailers)
}

async fn grpc_web(
    addr: SocketAddr,
    path: &str,
    token: Option<&str>,
    message: &impl prost::Message,
) -> anyhow::Result<HttpResponse> {
    let auth = token.map(|t| format!("\r\nAuthorization: Bearer {t}")).unwrap_or_default();
    let head = format!("POST {path} HTTP/1.1\r\nContent-Type: application/grpc-web+proto\r\nX-Grpc-Web: 1{auth}");
    http(addr, &head, &grpc_web_frame(message), usize::MAX).await
}

fn http_addr(server: &TestServer) -> SocketAddr {
    server.running().http_addr.expect("the HTTP listener is on")
}

async fn start() -> anyhow::Result<TestServer> {
    TestServer::start_with(|c| {
        c.http_listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        c.web.cors_origins = vec!["https://portal.example.cn".into()];
    })
    .await
}

#[tokio::test]
async fn the_console_is_served_with_a_single_page_fallback() -> anyhow::Result<()> {
    let server = start().await?;
    let addr = http_addr(&server);
    let index = http(addr, "GET / HTTP/1.1", b"", usize::MAX).await?;
    assert_eq!(index.status, 200);
    assert!(index.header("content-type").is_some_and(|v| v.starts_with("text/html")));
    assert!(index.text().contains("<div id=\"app\">"));
    let csp = index.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'self'") && csp.contains("connect-src 'self'"), "{csp}");

    // A console route is the same page; its script is an embedded, cacheable asset.
    let route = http(addr, "GET /dashboard HTTP/1.1", b"", usize::MAX).await?;
    assert_eq!((route.status, route.text()), (200, index.text()));
    let text = index.text();
    let script = text.split("src=\"").nth(1).and_then(|s| s.split('"').next()).unwrap_or_default().to_string();
    assert!(script.starts_with("/assets/index-") && script.ends_with(".js"), "{script}");
    let js = http(addr, &format!("GET {script} HTTP/1.1"), b"", usize::MAX).await?;
    assert_eq!(js.status, 200);
    assert!(js.header("content-type").is_some_and(|v| v.contains("javascript")));
    assert!(js.header("cache-control").is_some_and(|v| v.contains("immutable")));
    assert_eq!(http(addr, "GET /assets/missing-0000.js HTTP/1.1", b"", usize::MAX).await?.status, 404);

    let site = http(addr, "GET /console.json HTTP/1.1", b"", usize::MAX).await?;
    let site: serde_json::Value = serde_json::from_slice(&site.body)?;
    assert_eq!(site["counties"].as_array().map(Vec::len), Some(17));
    assert_eq!(site["counties"][0]["code"], YAODU);
    assert!(site["trades"].as_array().is_some_and(|t| t.iter().any(|t| t["id"] == "porter")));
    assert!(site["tiles"].is_null(), "no tile source unless configured");
    server.stop().await
}

#[tokio::test]
async fn the_directory_geojson_is_live_and_converted_on_request() -> anyhow::Result<()> {
    let server = start().await?;
    let addr = http_addr(&server);
    let mut c = server.clients().await?;
    let m = market("yaodu-market", YAODU, "", 320);
    let at = m.position.unwrap_or_default();
    let req = pb::UpsertMarketRequest { request_id: String::new(), market: Some(m) };
    c.directory.upsert_market(authed(&server.tokens.operator, req)).await?;

    let point = |body: &[u8]| -> anyhow::Result<(f64, f64)> {
        let v: serde_json::Value = serde_json::from_slice(body)?;
        let c = &v["features"][0]["geometry"]["coordinates"];
        Ok((c[1].as_f64().unwrap_or(f64::NAN), c[0].as_f64().unwrap_or(f64::NAN)))
    };
    let wgs = http(addr, "GET /directory.geojson HTTP/1.1", b"", usize::MAX).await?;
    assert_eq!(wgs.status, 200);
    assert_eq!(wgs.header("content-type"), Some("application/geo+json"));
    assert_eq!(point(&wgs.body)?, (at.lat, at.lon));
    let explicit = http(addr, "GET /directory.geojson?crs=wgs84 HTTP/1.1", b"", usize::MAX).await?;
    assert_eq!(point(&explicit.body)?, (at.lat, at.lon));
    // GCJ-02 moves a Linfen point north-east by a few hundred metres; BD-09 further still.
    let gcj = point(&http(addr, "GET /directory.geojson?crs=gcj02 HTTP/1.1", b"", usize::MAX).await?.body)?;
    let bd = point(&http(addr, "GET /directory.geojson?crs=bd09 HTTP/1.1", b"", usize::MAX).await?.body)?;
    let origin = linggong_engine::LatLon { lat: at.lat, lon: at.lon };
    let metres = |p: (f64, f64)| origin.distance_m(linggong_engine::LatLon { lat: p.0, lon: p.1 });
    assert!((100.0..1000.0).contains(&metres(gcj)), "{gcj:?} is {} m away", metres(gcj));
    assert!(metres(bd) > metres(gcj) + 300.0, "{bd:?}");
    let bad = http(addr, "GET /directory.geojson?crs=mercator HTTP/1.1", b"", usize::MAX).await?;
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("mercator"));
    server.stop().await
}

#[tokio::test]
async fn grpc_web_calls_go_through_the_same_authentication() -> anyhow::Result<()> {
    let server = start().await?;
    let addr = http_addr(&server);
    let mut c = server.clients().await?;
    let req =
        pb::UpsertMarketRequest { request_id: String::new(), market: Some(market("yaodu-market", YAODU, "", 320)) };
    c.directory.upsert_market(authed(&server.tokens.operator, req)).await?;

    let list = pb::ListMarketsRequest { county_code: YAODU, ..Default::default() };
    let path = "/linggong.v1.DirectoryService/ListMarkets";
    let refused = grpc_web(addr, path, None, &list).await?;
    assert_eq!(refused.status, 200);
    assert!(refused.header("content-type").is_some_and(|v| v.starts_with("application/grpc-web")));
    let (_, trailers) = grpc_web_frames(&refused.body);
    let status = refused.header("grpc-status").map(str::to_string).unwrap_or(trailers);
    assert!(status.contains("16"), "UNAUTHENTICATED expected: {status}");

    let ok = grpc_web(addr, path, Some(&server.tokens.yaodu_station), &list).await?;
    let (messages, trailers) = grpc_web_frames(&ok.body);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let listed = pb::ListMarketsResponse::decode(messages.first().map(Vec::as_slice).unwrap_or_default())?;
    assert_eq!(listed.markets.iter().map(|m| m.market_id.as_str()).collect::<Vec<_>>(), ["yaodu-market"]);

    // A role the RPC does not allow is refused exactly as over gRPC.
    let report = grpc_web(
        addr,
        "/linggong.v1.StatsService/StandardsReport",
        Some(&server.tokens.reviewer),
        &pb::StandardsReportRequest {},
    )
    .await?;
    let (_, trailers) = grpc_web_frames(&report.body);
    let status = report.header("grpc-status").map(str::to_string).unwrap_or(trailers);
    assert!(status.contains('7'), "PERMISSION_DENIED expected: {status}");
    server.stop().await
}

#[tokio::test]
async fn watch_streams_reach_browsers_over_grpc_web() -> anyhow::Result<()> {
    let server = start().await?;
    let addr = http_addr(&server);
    let watch = pb::WatchPostingsRequest { county_code: YAODU, after_seq: None };
    let head = format!(
        "POST /linggong.v1.PostingService/WatchPostings HTTP/1.1\r\nContent-Type: application/grpc-web+proto\r\n\
         Authorization: Bearer {}",
        server.tokens.reviewer
    );
    // The first message of every stream is a position marker; read just that much.
    let response = http(addr, &head, &grpc_web_frame(&watch), 5).await?;
    assert_eq!(response.status, 200);
    let len = u32::from_be_bytes([response.body[1], response.body[2], response.body[3], response.body[4]]) as usize;
    let mut body = response.body.clone();
    if body.len() < 5 + len {
        let more = http(addr, &head, &grpc_web_frame(&watch), 5 + len).await?;
        body = more.body;
    }
    let (messages, _) = grpc_web_frames(&body);
    let first = pb::WatchPostingsResponse::decode(messages.first().map(Vec::as_slice).unwrap_or_default())?;
    assert!(first.event.is_none(), "the first message is a position marker: {first:?}");
    server.stop().await
}

#[tokio::test]
async fn cors_answers_configured_origins_only() -> anyhow::Result<()> {
    let server = start().await?;
    let addr = http_addr(&server);
    let preflight = |origin: &str| {
        format!(
            "OPTIONS /linggong.v1.DirectoryService/ListMarkets HTTP/1.1\r\nOrigin: {origin}\r\n\
             Access-Control-Request-Method: POST\r\nAccess-Control-Request-Headers: authorization,content-type,x-grpc-web"
        )
    };
    let allowed = http(addr, &preflight("https://portal.example.cn"), b"", usize::MAX).await?;
    assert_eq!(allowed.header("access-control-allow-origin"), Some("https://portal.example.cn"));
    let headers = allowed.header("access-control-allow-headers").unwrap_or_default().to_ascii_lowercase();
    assert!(headers.contains("authorization") && headers.contains("x-grpc-web"), "{headers}");
    let other = http(addr, &preflight("https://elsewhere.example.com"), b"", usize::MAX).await?;
    assert_eq!(other.header("access-control-allow-origin"), None);
    server.stop().await
}

#[tokio::test]
async fn the_http_listener_is_off_unless_asked_for() -> anyhow::Result<()> {
    let server = TestServer::start().await?;
    assert!(server.running().http_addr.is_none());
    server.stop().await
}
