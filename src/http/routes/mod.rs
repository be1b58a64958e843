//! One file per resource. A handler extracts, applies its rate limit,
//! validates (`http::validate`), calls one subsystem and maps the result.

use super::extract::{Client, RouteProject};
use super::{ApiError, AppState};
use crate::ratelimit::LimitedRoute;
use crate::settings::RateQuota;

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod gateway;
pub mod health;
pub mod oidc;
pub mod otp;
pub mod passkeys;
pub mod sessions;
pub mod twofa;

/// Spends one request of the client's per-IP budget for `route` in `project`.
fn rate_limit(state: &AppState, project: &RouteProject, route: LimitedRoute, client: &Client) -> Result<(), ApiError> {
    let settings = project.settings();
    let quota = RateQuota { per_minute: settings.rate_limit_per_minute, burst: settings.rate_limit_burst };
    state.limits.check(project.id(), quota, route, client.ip()).map_err(ApiError::RateLimited)
}
