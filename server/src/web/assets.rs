//! The console's built assets (`console/dist`, committed and rebuilt by CI),
//! embedded in the binary and served with a single-page-application fallback:
//! any path that is not a file and not under `/assets/` gets `index.html`.
//! Hashed assets are cached for a year; `index.html` is revalidated on every
//! load, so a new build is picked up at once.

use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};

static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../console/dist");

const INDEX: &str = "index.html";

/// One embedded file, if the build has it.
pub fn file(path: &str) -> Option<&'static [u8]> {
    DIST.get_file(path.trim_start_matches('/')).map(|f| f.contents())
}

/// Serves `uri` from the embedded build.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { INDEX } else { path };
    if let Some(body) = file(path) {
        return respond(path, body);
    }
    if path.starts_with("assets/") || path.contains('.') {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    }
    match file(INDEX) {
        Some(body) => respond(INDEX, body),
        None => (StatusCode::NOT_FOUND, "the console was not built into this binary\n").into_response(),
    }
}

fn respond(path: &str, body: &'static [u8]) -> Response {
    let mime = mime_guess::from_path(path).first_or_octet_stream();
    let cache = if path.starts_with("assets/") { "public, max-age=31536000, immutable" } else { "no-cache" };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(mime.as_ref()) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}
