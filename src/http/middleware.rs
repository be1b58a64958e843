//! Request middleware.
//!
//! `observe` wraps every route: request id, metrics, one log line, and a
//! JSON body for every error response. `deadline` wraps the routes that do
//! real work (`/api/v1/auth`): a request still running after the request
//! timeout answers 503. The gateway routes (`/introspect`, `/verify`) never
//! wait on hashing or shards, so they are spared the timer.
//!
//! Route labels come from the matched route pattern, never the raw path, so
//! label sets stay bounded; metric handles are looked up once per
//! (route, method, status) and kept.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};
use dashmap::DashMap;
use metrics::{Counter, Histogram};
use tracing::Instrument;

use super::{ApiError, AppState};
use crate::telemetry::names;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID: usize = 64;

/// Makes request ids: a random per-process prefix and a counter. Unique
/// across restarts and nodes (the prefix) without a syscall per request.
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    pub fn new() -> Self {
        RequestIds { prefix: u64::from_le_bytes(crate::token::random_bytes::<8>()), next: AtomicU64::new(0) }
    }

    fn next(&self) -> String {
        format!("{:016x}-{:08x}", self.prefix, self.next.fetch_add(1, Ordering::Relaxed))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Metric handles per route, and per (method, status) within it, made on
/// first use; afterwards a request costs two map lookups and no allocation.
#[derive(Default)]
pub struct HttpMetrics {
    routes: DashMap<String, RouteMetrics>,
    /// Paths that are their own route pattern (static routes, such as
    /// `/api/v1/verify`): their label is the path, found without walking the
    /// route map or allocating. At most one entry per static route: a path
    /// is kept only when the router matched it to a pattern equal to it.
    static_paths: DashMap<String, ()>,
}

struct RouteMetrics {
    duration: Histogram,
    requests: DashMap<(Method, u16), Counter>,
}

impl HttpMetrics {
    /// The metric label of an answered request: its route pattern, or
    /// `unmatched` when no route took it.
    fn label<'r>(&self, req: &'r actix_web::HttpRequest) -> std::borrow::Cow<'r, str> {
        let path = req.path();
        if self.static_paths.contains_key(path) {
            return path.into();
        }
        let label = pattern_label(req);
        if label == path {
            self.static_paths.insert(path.to_owned(), ());
        }
        label
    }

    fn record(&self, route: &str, method: &Method, status: StatusCode, elapsed: Duration) {
        let route_metrics = match self.routes.get(route) {
            Some(found) => found,
            None => {
                let fresh = RouteMetrics {
                    duration: metrics::histogram!(names::HTTP_REQUEST_DURATION, "route" => route.to_owned()),
                    requests: DashMap::new(),
                };
                self.routes.entry(route.to_owned()).or_insert(fresh).downgrade()
            }
        };
        route_metrics.duration.record(elapsed.as_secs_f64());
        let key = (method.clone(), status.as_u16());
        match route_metrics.requests.get(&key) {
            Some(counter) => counter.increment(1),
            None => {
                let counter = metrics::counter!(
                    names::HTTP_REQUESTS,
                    "route" => route.to_owned(),
                    "method" => method.to_string(),
                    "status" => status.as_u16().to_string()
                );
                counter.increment(1);
                route_metrics.requests.insert(key, counter);
            }
        }
    }
}

/// The matched route pattern (a walk of the route map), or `unmatched`.
fn pattern_label(req: &actix_web::HttpRequest) -> std::borrow::Cow<'static, str> {
    req.match_pattern().map_or("unmatched".into(), Into::into)
}

/// A client-sent request id is kept if it is short and plain; otherwise a new one is made.
fn request_id(req: &ServiceRequest, ids: Option<&RequestIds>) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID
                && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        .map_or_else(|| ids.map_or_else(|| RequestIds::new().next(), RequestIds::next), str::to_owned)
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
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let id = request_id(&req, state.as_deref().map(|s| &s.request_ids));
    let method = req.method().clone();
    let span = tracing::info_span!("request", request_id = %id, method = %method);
    let record = |route: &str, status: StatusCode| {
        let elapsed = started.elapsed();
        if let Some(state) = &state {
            state.http_metrics.record(route, &method, status, elapsed);
        }
        elapsed
    };
    let mut res = match next.call(req).instrument(span.clone()).await {
        Ok(res) => res.map_into_boxed_body(),
        Err(e) => {
            // Being the outermost middleware, actix renders the error with its JSON body.
            let status = e.as_response_error().status_code();
            record(if status == StatusCode::SERVICE_UNAVAILABLE { "timeout" } else { "unmatched" }, status);
            return Err(e);
        }
    };
    let status = res.status();
    if (status.is_client_error() || status.is_server_error()) && !is_json(&res) {
        let replacement = ApiError::for_status(status).error_response();
        res = res.into_response(replacement);
    }
    if let Ok(value) = HeaderValue::from_maybe_shared(actix_web::web::Bytes::from(id)) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let route = match &state {
        Some(state) => state.http_metrics.label(res.request()),
        None => pattern_label(res.request()),
    };
    let elapsed = record(&route, status);
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

/// Answers 503 `overloaded` for a request still running after the request
/// timeout. The request cannot be kept aside (routing needs sole ownership
/// of it), so the answer leaves as an error, rendered by `observe`'s caller.
pub async fn deadline(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let timeout = req.app_data::<web::Data<AppState>>().map_or(Duration::from_secs(10), |s| s.request_timeout);
    match tokio::time::timeout(timeout, next.call(req)).await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::warn!("request deadline passed");
            Err(ApiError::Overloaded(Duration::from_secs(1)).into())
        }
    }
}

/// Answers 408 `request_timeout` when a request's body has not fully
/// arrived `client_body_timeout` after its head (a slow or stalled client),
/// whichever extractor was reading it. Requests without a body pass as
/// they are, at no cost.
pub async fn body_deadline(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let has_body = req.headers().contains_key(header::TRANSFER_ENCODING)
        || req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|len| len.trim() != "0");
    if !has_body {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let limit = req.app_data::<web::Data<AppState>>().map_or(Duration::from_secs(5), |s| s.client_body_timeout);
    let timed_out = Arc::new(AtomicBool::new(false));
    let body = TimedBody {
        inner: actix_web::HttpMessage::take_payload(&mut req),
        deadline: Box::pin(tokio::time::sleep(limit)),
        timed_out: Arc::clone(&timed_out),
    };
    req.set_payload(actix_web::dev::Payload::Stream { payload: Box::pin(body) });
    let res = next.call(req).await;
    if timed_out.load(Ordering::Relaxed) {
        tracing::info!("request body timed out");
        return Err(ApiError::RequestTimeout.into());
    }
    Ok(res?.map_into_boxed_body())
}

/// A request body that fails once its deadline passes.
struct TimedBody {
    inner: actix_web::dev::Payload,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
}

impl futures_util::Stream for TimedBody {
    type Item = Result<actix_web::web::Bytes, actix_web::error::PayloadError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        use std::future::Future;
        use std::task::Poll;
        if self.timed_out.load(Ordering::Relaxed) {
            return Poll::Ready(None);
        }
        // The body first: a body that is all there is never late.
        if let Poll::Ready(chunk) = futures_util::StreamExt::poll_next_unpin(&mut self.inner, cx) {
            return Poll::Ready(chunk);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.store(true, Ordering::Relaxed);
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body timed out");
            return Poll::Ready(Some(Err(actix_web::error::PayloadError::Io(late))));
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpRequest, HttpResponse, test, web};

    use super::HttpMetrics;

    async fn answer() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[actix_web::test]
    async fn labels_are_route_patterns_and_only_static_paths_are_remembered() {
        let app = test::init_service(
            App::new()
                .route("/static", web::get().to(answer))
                .route("/users/{id}", web::get().to(answer))
                .service(web::scope("/scope").route("/inner", web::get().to(answer))),
        )
        .await;
        let metrics = HttpMetrics::default();
        let label = |req: HttpRequest| metrics.label(&req).into_owned();
        for _ in 0..2 {
            for (path, expected) in [
                ("/static", "/static"),
                ("/users/42", "/users/{id}"),
                ("/users/43", "/users/{id}"),
                ("/scope/inner", "/scope/inner"),
                ("/nowhere", "unmatched"),
            ] {
                let res = test::call_service(&app, test::TestRequest::get().uri(path).to_request()).await;
                assert_eq!(label(res.request().clone()), expected, "{path}");
            }
        }
        let mut remembered: Vec<String> = metrics.static_paths.iter().map(|e| e.key().clone()).collect();
        remembered.sort();
        assert_eq!(remembered, ["/scope/inner", "/static"]);
    }
}
