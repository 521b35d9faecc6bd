//! gRPC-Web (tonic-web) for browsers on the HTTP listener: the same services,
//! the same bearer-token authentication and the same guard (in-flight count,
//! message size limit, watch streams ended on shutdown) as the gRPC listener,
//! with CORS for the configured origins only.

use crate::app::GuardLayer;
use axum::http::{HeaderName, HeaderValue, Method};
use axum::Router;
use bytes::Bytes;
use std::time::Duration;
use tonic::body::Body as BoxBody;
use tonic::service::Routes;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a browser may send (the token, gRPC-Web's own, a request id).
const ALLOW_HEADERS: [&str; 7] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
    "x-request-id",
    "connect-timeout-ms",
];
/// Response headers a browser page may read (status, details, our trailers).
const EXPOSE_HEADERS: [&str; 6] = [
    "grpc-status",
    "grpc-message",
    "grpc-status-details-bin",
    "x-request-id",
    "linggong-current-version",
    "linggong-resume-after-seq",
];

/// The gRPC services to offer over gRPC-Web.
pub struct GrpcWeb {
    routes: Routes,
    services: Vec<String>,
    guard: GuardLayer,
    origins: Vec<HeaderValue>,
}

impl GrpcWeb {
    /// `routes` served under the fully qualified `services` names, through
    /// `guard`, callable cross-origin from `origins` (validated settings).
    pub(crate) fn new(routes: Routes, services: Vec<String>, guard: GuardLayer, origins: &[String]) -> Self {
        let origins = origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
        Self { routes, services, guard, origins }
    }

    fn cors(&self) -> CorsLayer {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(self.origins.clone()))
            .allow_methods([Method::POST, Method::OPTIONS])
            .allow_headers(ALLOW_HEADERS.map(HeaderName::from_static))
            .expose_headers(EXPOSE_HEADERS.map(HeaderName::from_static))
            .max_age(Duration::from_secs(24 * 3600))
    }

    /// Adds `/<service>/<method>` routes for every service to `router`.
    pub(crate) fn mount(self, mut router: Router) -> Router {
        let service = ServiceBuilder::new()
            .layer(self.cors())
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(self.guard)
            .map_response(boxed_response)
            .service(self.routes.into_axum_router());
        for name in &self.services {
            router = router.route_service(&format!("/{name}/{{*method}}"), service.clone());
        }
        router
    }
}

fn boxed_response<B>(response: axum::http::Response<B>) -> axum::http::Response<BoxBody>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    response.map(BoxBody::new)
}
