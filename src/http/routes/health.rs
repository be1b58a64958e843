//! Root routes: liveness, readiness, JWKS, metrics and the API's own document.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, web};

use crate::http::{ApiError, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/.well-known/jwks.json", web::get().to(jwks))
        .route("/metrics", web::get().to(metrics))
        .route("/openapi.yaml", web::get().to(openapi));
}

/// The OpenAPI document this binary was built with (the repository's `openapi.yaml`).
const OPENAPI: &str = include_str!("../../../openapi.yaml");

async fn openapi() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/yaml")))
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300")))
        .body(OPENAPI)
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the store answers.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    state.store.ping().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready", "store": state.store.backend() })))
}

async fn jwks(state: web::Data<AppState>) -> HttpResponse {
    let keys = state.signer.keys().snapshot();
    let body = keys.jwks(state.clock.now(), state.signer.max_ttl());
    HttpResponse::Ok()
        // Short enough that a rotation reaches verifiers before its tokens do.
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=60")))
        .json(body)
}

/// On the main listener unless `/metrics` has its own.
async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    if !state.metrics_on_main {
        return Err(ApiError::NotFound);
    }
    Ok(metrics_text(&state.metrics))
}

/// The Prometheus text exposition.
pub fn metrics_text(handle: &metrics_exporter_prometheus::PrometheusHandle) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(crate::telemetry::render(handle))
}
