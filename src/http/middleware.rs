//! The request middleware: request id, deadline, metrics, one log line, and
//! a JSON body for every error response.
//!
//! Route labels come from the matched route pattern, never the raw path, so
//! label sets stay bounded.

use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};
use tracing::Instrument;

use super::{ApiError, AppState};
use crate::telemetry::names;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID: usize = 64;

/// A client-sent request id is kept if it is short and plain; otherwise a new one is made.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID
                && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

fn is_json(res: &ServiceResponse<BoxBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().to_string();
    let timeout = req.app_data::<web::Data<AppState>>().map_or(Duration::from_secs(10), |s| s.request_timeout);
    let span = tracing::info_span!("request", request_id = %id, method = %method);
    // The request cannot be kept aside (routing needs sole ownership of it),
    // so a passed deadline or a service error leaves as an error: being the
    // outermost middleware, actix renders it with `ApiError`'s JSON body.
    let outcome = tokio::time::timeout(timeout, next.call(req)).instrument(span.clone()).await;
    let mut res = match outcome {
        Ok(Ok(res)) => res.map_into_boxed_body(),
        Ok(Err(e)) => {
            record(&method, "unmatched", e.as_response_error().status_code(), started);
            return Err(e);
        }
        Err(_) => {
            tracing::warn!(parent: &span, "request deadline passed");
            record(&method, "timeout", StatusCode::SERVICE_UNAVAILABLE, started);
            return Err(ApiError::Overloaded(Duration::from_secs(1)).into());
        }
    };
    let status = res.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&res) {
        let replacement = ApiError::for_status(status).error_response();
        res = res.into_response(replacement);
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let elapsed = record(&method, &route, status, started);
    tracing::info!(
        target: "http",
        parent: &span,
        route = %route,
        status = status.as_u16(),
        latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        "request"
    );
    Ok(res)
}

/// Counts the request and records its latency; returns the latency.
fn record(method: &str, route: &str, status: StatusCode, started: Instant) -> Duration {
    let elapsed = started.elapsed();
    metrics::counter!(names::HTTP_REQUESTS, "route" => route.to_owned(), "method" => method.to_owned(), "status" => status.as_u16().to_string())
        .increment(1);
    metrics::histogram!(names::HTTP_REQUEST_DURATION, "route" => route.to_owned()).record(elapsed.as_secs_f64());
    elapsed
}
