//! The HTTP edge: routes, extractors, middleware and the error mapping.
//!
//! Owns turning requests into calls on one subsystem and results into
//! API.md's responses. Holds no logic of its own beyond input validation;
//! never touches the store for writes or hashes a password.

pub mod dialects;
pub mod error;
pub mod extract;
pub mod middleware;
#[cfg(test)]
mod no_panic;
pub mod pages;
pub mod routes;
pub mod validate;
pub mod view;

use std::sync::Arc;
use std::time::Duration;

use actix_web::middleware::from_fn;
use actix_web::web;
use ipnet::IpNet;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::auth::AuthService;
use crate::clock::SharedClock;
use crate::projects::Directory;
use crate::ratelimit::RateLimits;
use crate::store::Store;
use crate::token::{AccessGate, TokenSigner};

pub use error::ApiError;

/// What handlers share; built once by `Application::build`.
pub struct AppState {
    pub auth: Arc<AuthService>,
    /// Token checks: the extractors, `/verify` and `/introspect` ask it
    /// directly, never through `auth`.
    pub gate: Arc<AccessGate>,
    pub limits: Arc<RateLimits>,
    pub signer: Arc<TokenSigner>,
    pub store: Arc<dyn Store>,
    pub metrics: PrometheusHandle,
    /// `false` when `/metrics` has a listener of its own (`metrics_listen`).
    pub metrics_on_main: bool,
    pub clock: SharedClock,
    pub trusted_proxies: Vec<IpNet>,
    /// Headers an API key may come in (`PORTCULLIS_API_KEY_HEADERS`), besides `Authorization`.
    pub api_key_headers: Vec<actix_web::http::header::HeaderName>,
    /// Every project, in memory: the routes' project and its settings.
    pub projects: Arc<Directory>,
    pub request_timeout: Duration,
    /// A request's body must have arrived this long after its head.
    pub client_body_timeout: Duration,
    pub request_ids: middleware::RequestIds,
    pub http_metrics: middleware::HttpMetrics,
    /// The console and account pages, rendered at start-up.
    pub pages: Arc<pages::Pages>,
}

/// The `/auth` routes: under `/api/v1/auth` for the `default` project, and
/// under `/api/v1/projects/{project_id}/auth` for any project.
fn auth(cfg: &mut web::ServiceConfig) {
    cfg.configure(routes::auth::configure)
        .configure(routes::sessions::configure)
        .configure(routes::twofa::configure)
        .configure(routes::otp::configure)
        .configure(routes::passkeys::configure)
        .configure(routes::oidc::configure)
        .configure(routes::api_keys::configure)
        .configure(dialects::generic::configure);
}

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(extract::json_config())
        .app_data(extract::payload_config())
        .configure(routes::gateway::configure)
        .configure(routes::health::configure)
        .configure(pages::configure)
        .service(
            web::scope("/api/v1/auth")
                .wrap(from_fn(dialects::lnchr::project_envelope))
                .wrap(from_fn(middleware::deadline))
                .configure(auth),
        )
        .service(
            web::scope(&format!("/api/v1/projects/{{{}}}/auth", extract::PROJECT_PARAM))
                .wrap(from_fn(dialects::lnchr::project_envelope))
                .wrap(from_fn(middleware::deadline))
                .configure(auth),
        )
        // Seed 000 (Cloudheed): the same routes under /v1/auth, its 2fa/verify first.
        .service(
            web::scope("/v1/auth")
                .wrap(from_fn(middleware::deadline))
                .configure(dialects::cloudheed::configure)
                .configure(auth),
        )
        .service(web::scope("/api/v1/admin").wrap(from_fn(middleware::deadline)).configure(routes::admin::configure))
        .configure(dialects::cloudflare::configure)
        // Seed 003 (lnchr): service keys.
        .service(
            web::scope("/api/v1/settings")
                .wrap(from_fn(dialects::lnchr::project_envelope))
                .wrap(from_fn(middleware::deadline))
                .configure(dialects::lnchr::configure),
        );
}
