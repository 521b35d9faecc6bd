//! The browser side of the HTTP listener: the embedded console (with a
//! single-page-application fallback), `/console.json` (counties, trades and the
//! map tile source the console needs), the live `/directory.geojson`
//! (`?crs=wgs84|gcj02|bd09`), and the gRPC API over gRPC-Web (tonic-web) with
//! CORS for the origins the configuration allows. [`router`] returns one
//! `axum::Router` to merge into the listener's.

mod assets;
pub mod crs;
mod grpc_web;

use crate::host::Host;
use crate::report;
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use crs::Crs;
use serde::{Deserialize, Serialize};
use std::sync::{Arc, OnceLock};

pub use grpc_web::GrpcWeb;

/// A map tile source for the console (none by default: nothing is fetched from the internet).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TileSource {
    /// Leaflet URL template, e.g. `https://tiles.example.org/{z}/{x}/{y}.png`.
    pub url: String,
    /// The system the tiles are drawn in.
    #[serde(default)]
    pub crs: Crs,
    /// Attribution shown on the map.
    #[serde(default)]
    pub attribution: String,
}

/// Settings of the browser side (`[web]` in the config file).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSettings {
    /// Origins (e.g. `https://portal.example.gov.cn`) whose pages may call the
    /// API with gRPC-Web; the console itself is same-origin and needs none.
    #[serde(default)]
    pub cors_origins: Vec<String>,
    /// Map tiles for the console.
    pub tiles: Option<TileSource>,
}

/// Why the web settings are unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebSettingsError {
    /// A CORS origin is not `scheme://host[:port]`.
    #[error("cors origin `{0}` must look like https://host[:port] (no path, no wildcard)")]
    BadOrigin(String),
    /// The tile URL is not http(s).
    #[error("tile url `{0}` must start with https:// or http://")]
    BadTileUrl(String),
}

impl WebSettings {
    /// Checks every origin and the tile URL.
    pub fn validate(&self) -> Result<(), WebSettingsError> {
        for origin in &self.cors_origins {
            let rest = origin.strip_prefix("https://").or_else(|| origin.strip_prefix("http://"));
            let ok = rest.is_some_and(|r| !r.is_empty() && !r.contains(['/', '*', ' ']))
                && HeaderValue::from_str(origin).is_ok();
            if !ok {
                return Err(WebSettingsError::BadOrigin(origin.clone()));
            }
        }
        if let Some(t) = &self.tiles {
            if !(t.url.starts_with("https://") || t.url.starts_with("http://")) {
                return Err(WebSettingsError::BadTileUrl(t.url.clone()));
            }
        }
        Ok(())
    }

    /// The Content-Security-Policy of every response: everything from this
    /// origin only, but images from the tile server when one is configured.
    fn content_security_policy(&self) -> String {
        let tiles = self.tiles.as_ref().and_then(|t| tile_origin(&t.url)).map(|o| format!(" {o}")).unwrap_or_default();
        format!(
            "default-src 'self'; img-src 'self' data: blob:{tiles}; style-src 'self' 'unsafe-inline'; \
             connect-src 'self'; object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
        )
    }
}

/// `https://host:port` of a tile URL template (placeholders such as `{s}` become `*`).
fn tile_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    Some(format!("{scheme}://{}", host.replace("{s}", "*")))
}

#[derive(Clone)]
struct WebState {
    host: Arc<Host>,
    settings: Arc<WebSettings>,
}

/// The console, its data endpoints and gRPC-Web, as one router.
pub fn router(host: Arc<Host>, settings: WebSettings, grpc: GrpcWeb) -> Router {
    let csp = HeaderValue::from_str(&settings.content_security_policy())
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"));
    let state = WebState { host, settings: Arc::new(settings) };
    let mut router = Router::new()
        .route("/console.json", get(console_json))
        .route("/directory.geojson", get(directory_geojson))
        .with_state(state)
        .fallback(assets::serve);
    router = grpc.mount(router);
    router.layer(axum::middleware::map_response(move |mut response: Response| {
        let csp = csp.clone();
        async move {
            response.headers_mut().entry(header::CONTENT_SECURITY_POLICY).or_insert(csp);
            response
        }
    }))
}

/// The browser side for a listener that starts before the host exists: a
/// fallback that answers 503 until [`LateRouter::set`] installs the
/// [`router`], then hands every request to it.
#[derive(Clone, Default)]
pub struct LateRouter(Arc<OnceLock<Router>>);

impl LateRouter {
    /// Installs the router (once; later calls are ignored).
    pub fn set(&self, router: Router) {
        let _ = self.0.set(router);
    }

    /// Adds this as the fallback of `router` (which must have none).
    pub fn attach(&self, router: Router) -> Router {
        let late = self.clone();
        router.fallback(move |request: axum::extract::Request| {
            let late = late.clone();
            async move {
                use tower::ServiceExt as _;
                match late.0.get() {
                    Some(router) => match router.clone().oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    },
                    None => {
                        (StatusCode::SERVICE_UNAVAILABLE, [(header::RETRY_AFTER, "1")], "starting\n").into_response()
                    }
                }
            }
        })
    }
}

#[derive(Serialize)]
struct CountyView<'a> {
    code: u32,
    name: &'a str,
    lat: f64,
    lon: f64,
}

#[derive(Serialize)]
struct TradeView<'a> {
    id: &'a str,
    name_zh: &'a str,
    name_en: &'a str,
}

#[derive(Serialize)]
struct ConsoleView<'a> {
    counties: Vec<CountyView<'a>>,
    trades: Vec<TradeView<'a>>,
    tiles: Option<&'a TileSource>,
}

async fn console_json(State(state): State<WebState>) -> Response {
    let body = state.host.read_engine(|engine| {
        let view = ConsoleView {
            counties: engine
                .regions()
                .counties()
                .iter()
                .map(|c| CountyView { code: c.code, name: &c.name, lat: c.seat.lat, lon: c.seat.lon })
                .collect(),
            trades: engine
                .trades()
                .trades()
                .iter()
                .map(|t| TradeView { id: &t.id, name_zh: &t.name_zh, name_en: &t.name_en })
                .collect(),
            tiles: state.settings.tiles.as_ref(),
        };
        serde_json::to_vec(&view)
    });
    match body {
        Ok(body) => {
            ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
        }
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

#[derive(Deserialize)]
struct GeojsonQuery {
    crs: Option<String>,
}

/// The directory as it is now, for maps: public, like the published 名录 itself.
async fn directory_geojson(State(state): State<WebState>, Query(q): Query<GeojsonQuery>) -> Response {
    let crs = match q.crs.as_deref().map(str::parse::<Crs>).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    let body = state.host.read_engine(|e| report::directory_geojson(e.directory().iter(), crs.engine()));
    ([(header::CONTENT_TYPE, "application/geo+json"), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_late_router_answers_503_until_it_is_set() {
        use tower::ServiceExt as _;
        let late = LateRouter::default();
        let app = late.attach(Router::new().route("/healthz", get(|| async { "ok" })));
        let req = |path: &str| axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap_or_default();
        let status = |r: Response| r.status();
        assert_eq!(status(app.clone().oneshot(req("/healthz")).await.unwrap_or_default()), StatusCode::OK);
        assert_eq!(
            status(app.clone().oneshot(req("/console.json")).await.unwrap_or_default()),
            StatusCode::SERVICE_UNAVAILABLE
        );
        late.set(Router::new().route("/console.json", get(|| async { "{}" })));
        assert_eq!(status(app.clone().oneshot(req("/console.json")).await.unwrap_or_default()), StatusCode::OK);
        assert_eq!(status(app.oneshot(req("/healthz")).await.unwrap_or_default()), StatusCode::OK);
    }

    #[test]
    fn origins_and_tile_urls_are_checked() {
        let ok = WebSettings {
            cors_origins: vec!["https://portal.example.cn".into(), "http://127.0.0.1:5173".into()],
            tiles: Some(TileSource {
                url: "https://{s}.tiles.example.cn/{z}/{x}/{y}.png".into(),
                crs: Crs::Gcj02,
                attribution: String::new(),
            }),
        };
        assert_eq!(ok.validate(), Ok(()));
        for bad in ["*", "https://a.cn/path", "portal.example.cn", "https://"] {
            let s = WebSettings { cors_origins: vec![bad.into()], tiles: None };
            assert_eq!(s.validate(), Err(WebSettingsError::BadOrigin(bad.into())), "{bad}");
        }
        let s = WebSettings {
            cors_origins: vec![],
            tiles: Some(TileSource { url: "ftp://x".into(), crs: Crs::Wgs84, attribution: String::new() }),
        };
        assert!(matches!(s.validate(), Err(WebSettingsError::BadTileUrl(_))));
    }

    #[test]
    fn the_content_policy_allows_the_tile_server_only_when_configured() {
        let none = WebSettings::default().content_security_policy();
        assert!(none.contains("img-src 'self' data: blob:;"), "{none}");
        let with = WebSettings {
            cors_origins: vec![],
            tiles: Some(TileSource {
                url: "https://{s}.tiles.example.cn/{z}/{x}/{y}.png".into(),
                crs: Crs::Gcj02,
                attribution: String::new(),
            }),
        }
        .content_security_policy();
        assert!(with.contains("img-src 'self' data: blob: https://*.tiles.example.cn;"), "{with}");
        assert!(with.contains("connect-src 'self'"));
    }

    #[test]
    fn the_console_build_is_embedded() {
        let index = assets::file("index.html").expect("console/dist/index.html is embedded");
        let text = std::str::from_utf8(index).unwrap_or_default();
        assert!(text.contains("<div id=\"app\">"), "{text}");
        assert!(text.contains("/assets/index-"), "the index names the hashed bundle: {text}");
    }
}
