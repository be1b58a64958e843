//! The outermost middleware: a request id on every answer, the HTTP
//! metrics, one log line per request, and a JSON body for every error.
//!
//! Route labels come from the matched route pattern, never the raw path, so
//! label sets stay bounded; metric handles are looked up once per
//! (route, method, status) and kept.

use std::borrow::Cow;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{Error, ResponseError, web};
use dashmap::DashMap;
use metrics::{Counter, Histogram};
use pin_project_lite::pin_project;
use tracing::Instrument;
use tracing::instrument::Instrumented;

use crate::http::{ApiError, AppState};
use crate::telemetry::names;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const MAX_REQUEST_ID: usize = 64;

/// Makes request ids: a random per-process prefix and a counter. Unique
/// across restarts and nodes (the prefix) without a syscall per request.
pub struct RequestIds {
    /// The prefix in hex and the separator: `0123456789abcdef-`.
    prefix: [u8; 17],
    next: AtomicU64,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// `value`'s low `out.len()` nibbles in lowercase hex, most significant first.
fn write_hex(out: &mut [u8], value: u64) {
    for (i, byte) in out.iter_mut().rev().enumerate() {
        *byte = HEX[((value >> (4 * i)) & 0xf) as usize];
    }
}

impl RequestIds {
    pub fn new() -> Self {
        let mut prefix = [b'-'; 17];
        write_hex(&mut prefix[..16], u64::from_le_bytes(crate::token::random_bytes::<8>()));
        RequestIds { prefix, next: AtomicU64::new(0) }
    }

    /// `<prefix>-<counter>`, the counter as 8 hex digits (wrapping).
    fn next(&self) -> HeaderValue {
        let mut id = [0u8; 25];
        id[..17].copy_from_slice(&self.prefix);
        write_hex(&mut id[17..], self.next.fetch_add(1, Ordering::Relaxed));
        HeaderValue::from_maybe_shared(web::Bytes::copy_from_slice(&id)).unwrap_or(HeaderValue::from_static("-"))
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Metric handles per route, and per (method, status) within it, made on
/// first use; afterwards a request to a static route costs one map lookup
/// and no allocation.
#[derive(Default)]
pub struct HttpMetrics {
    /// Route label → its handles.
    routes: DashMap<String, Arc<RouteMetrics>>,
    /// Paths that are their own route pattern (static routes, such as
    /// `/api/v1/verify`) → their route's handles, found without walking the
    /// route map. At most one entry per static route: a path is kept only
    /// when the router matched it to a pattern equal to it.
    static_paths: DashMap<String, Arc<RouteMetrics>>,
}

struct RouteMetrics {
    /// The route's label, for the counters made on first use.
    route: String,
    duration: Histogram,
    /// A handful per route: a scan beats hashing.
    requests: RwLock<Vec<(Method, u16, Counter)>>,
}

impl RouteMetrics {
    fn record(&self, method: &Method, status: StatusCode, elapsed: Duration) {
        self.duration.record(elapsed.as_secs_f64());
        let status = status.as_u16();
        let counted = |requests: &[(Method, u16, Counter)]| {
            let found = requests.iter().find(|(m, s, _)| *s == status && m == method);
            found.map(|(_, _, counter)| counter.increment(1)).is_some()
        };
        if counted(&self.requests.read().unwrap_or_else(PoisonError::into_inner)) {
            return;
        }
        let mut requests = self.requests.write().unwrap_or_else(PoisonError::into_inner);
        if !counted(&requests) {
            let counter = metrics::counter!(
                names::HTTP_REQUESTS,
                "route" => self.route.clone(),
                "method" => method.to_string(),
                "status" => status.to_string()
            );
            counter.increment(1);
            requests.push((method.clone(), status, counter));
        }
    }
}

impl HttpMetrics {
    /// An answered request's metric label (its route pattern, or
    /// `unmatched` when no route took it) and its route's handles.
    fn route<'r>(&self, req: &'r actix_web::HttpRequest) -> (Cow<'r, str>, Arc<RouteMetrics>) {
        let path = req.path();
        if let Some(found) = self.static_paths.get(path) {
            return (path.into(), Arc::clone(found.value()));
        }
        let label = pattern_label(req);
        let handles = self.handles(&label);
        if label == path {
            self.static_paths.insert(path.to_owned(), Arc::clone(&handles));
        }
        (label, handles)
    }

    /// The handles of the route labelled `route`.
    fn handles(&self, route: &str) -> Arc<RouteMetrics> {
        if let Some(found) = self.routes.get(route) {
            return Arc::clone(found.value());
        }
        let fresh = RouteMetrics {
            route: route.to_owned(),
            duration: metrics::histogram!(names::HTTP_REQUEST_DURATION, "route" => route.to_owned()),
            requests: RwLock::new(Vec::new()),
        };
        Arc::clone(self.routes.entry(route.to_owned()).or_insert(Arc::new(fresh)).value())
    }
}

/// The matched route pattern (a walk of the route map), or `unmatched`.
fn pattern_label(req: &actix_web::HttpRequest) -> Cow<'static, str> {
    req.match_pattern().map_or("unmatched".into(), Into::into)
}

/// A client-sent request id is kept if it is short and plain; otherwise a new one is made.
fn request_id(req: &ServiceRequest, ids: Option<&RequestIds>) -> HeaderValue {
    req.headers()
        .get(&REQUEST_ID)
        .filter(|id| {
            let id = id.as_bytes();
            !id.is_empty()
                && id.len() <= MAX_REQUEST_ID
                && id.iter().all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
        })
        .cloned()
        .unwrap_or_else(|| ids.map_or_else(|| RequestIds::new().next(), RequestIds::next))
}

fn is_json(res: &ServiceResponse<BoxBody>) -> bool {
    res.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"))
}

/// The outermost middleware (see the module's documentation).
pub struct Observe;

impl<S, B> Transform<S, ServiceRequest> for Observe
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Transform = ObserveService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(ObserveService { service }))
    }
}

pub struct ObserveService<S> {
    service: S,
}

impl<S, B> Service<ServiceRequest> for ObserveService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<BoxBody>;
    type Error = Error;
    type Future = ObserveFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let id = request_id(&req, state.as_deref().map(|s| &s.request_ids));
        let method = req.method().clone();
        let span = tracing::info_span!("request", request_id = id.to_str().unwrap_or("-"), method = %method);
        ObserveFuture { inner: self.service.call(req).instrument(span), started, state, id: Some(id), method }
    }
}

pin_project! {
    /// The inner service's answer, with the request id, counted and logged.
    pub struct ObserveFuture<F> {
        #[pin]
        inner: Instrumented<F>,
        started: Instant,
        state: Option<web::Data<AppState>>,
        id: Option<HeaderValue>,
        method: Method,
    }
}

impl<F, B> Future for ObserveFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
    B: MessageBody + 'static,
{
    type Output = Result<ServiceResponse<BoxBody>, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let outcome = std::task::ready!(this.inner.as_mut().poll(cx));
        let span = this.inner.span();
        let state = this.state.as_deref();
        let elapsed = this.started.elapsed();
        let mut res = match outcome {
            Ok(res) => res.map_into_boxed_body(),
            Err(e) => {
                // Being the outermost middleware, actix renders the error with its JSON body.
                let status = e.as_response_error().status_code();
                if let Some(state) = state {
                    let route = if status == StatusCode::SERVICE_UNAVAILABLE { "timeout" } else { "unmatched" };
                    state.http_metrics.handles(route).record(this.method, status, elapsed);
                }
                return Poll::Ready(Err(e));
            }
        };
        let status = res.status();
        if (status.is_client_error() || status.is_server_error()) && !is_json(&res) {
            let replacement = ApiError::for_status(status).error_response();
            res = res.into_response(replacement);
        }
        if let Some(id) = this.id.take() {
            res.headers_mut().insert(REQUEST_ID, id);
        }
        let route = match state {
            Some(state) => {
                let (route, handles) = state.http_metrics.route(res.request());
                handles.record(this.method, status, elapsed);
                route
            }
            None => pattern_label(res.request()),
        };
        tracing::info!(
            target: "http",
            parent: span,
            route = %route,
            status = status.as_u16(),
            latency_us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
            "request"
        );
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use actix_web::{App, HttpRequest, HttpResponse, test, web};

    use super::{HttpMetrics, RequestIds};

    #[actix_web::test]
    async fn request_ids_are_the_process_prefix_and_a_hex_counter() {
        let ids = RequestIds::new();
        let first = ids.next();
        let first = first.to_str().unwrap();
        let (prefix, counter) = first.split_once('-').unwrap();
        assert_eq!((prefix.len(), counter), (16, "00000000"));
        assert!(prefix.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        for expected in ["00000001", "00000002"] {
            assert_eq!(ids.next().to_str().unwrap(), format!("{prefix}-{expected}"));
        }
        ids.next.store(0x1_2345_6789_abcd, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(ids.next().to_str().unwrap(), format!("{prefix}-6789abcd"));
        assert_ne!(RequestIds::new().next().to_str().unwrap(), first);
    }

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
        let label = |req: HttpRequest| metrics.route(&req).0.into_owned();
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
