//! One file per resource. A handler extracts, applies its rate limit,
//! validates (`http::validate`), calls one subsystem and maps the result.

use super::extract::Client;
use super::{ApiError, AppState};
use crate::ratelimit::LimitedRoute;

pub mod admin;
pub mod api_keys;
pub mod auth;
pub mod gateway;
pub mod health;
pub mod otp;
pub mod sessions;
pub mod twofa;

/// Spends one request of the client's per-IP budget for `route`.
fn rate_limit(state: &AppState, route: LimitedRoute, client: &Client) -> Result<(), ApiError> {
    state.limits.check(route, client.ip()).map_err(ApiError::RateLimited)
}
