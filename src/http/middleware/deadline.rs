//! Time limits: the request deadline of the routes that do real work, and
//! the client body timeout of every request with a body.

use std::cell::Cell;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage, web};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::http::{ApiError, AppState};

/// Answers 503 `overloaded` for a request still running after the request
/// timeout. The request cannot be kept aside (routing needs sole ownership
/// of it), so the answer leaves as an error, rendered by `Observe`'s caller.
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
/// they are, at no cost; a body that is all there at once costs no timer.
pub struct BodyDeadline;

impl<S, B> Transform<S, ServiceRequest> for BodyDeadline
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = BodyDeadlineService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(BodyDeadlineService { service }))
    }
}

pub struct BodyDeadlineService<S> {
    service: S,
}

fn has_body(req: &ServiceRequest) -> bool {
    req.headers().contains_key(header::TRANSFER_ENCODING)
        || req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).is_some_and(|len| len.trim() != "0")
}

impl<S, B> Service<ServiceRequest> for BodyDeadlineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error>,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = BodyDeadlineFuture<S::Future>;

    forward_ready!(service);

    fn call(&self, mut req: ServiceRequest) -> Self::Future {
        if !has_body(&req) {
            return BodyDeadlineFuture { inner: self.service.call(req), timed_out: None };
        }
        let limit = req.app_data::<web::Data<AppState>>().map_or(Duration::from_secs(5), |s| s.client_body_timeout);
        let timed_out = Rc::new(Cell::new(false));
        let body = TimedBody {
            inner: req.take_payload(),
            until: Instant::now() + limit,
            deadline: None,
            looked: false,
            timed_out: Rc::clone(&timed_out),
        };
        req.set_payload(Payload::Stream { payload: Box::pin(body) });
        BodyDeadlineFuture { inner: self.service.call(req), timed_out: Some(timed_out) }
    }
}

pin_project! {
    /// The inner service's answer, or 408 if the body it read came too late.
    pub struct BodyDeadlineFuture<F> {
        #[pin]
        inner: F,
        timed_out: Option<Rc<Cell<bool>>>,
    }
}

impl<F, B> Future for BodyDeadlineFuture<F>
where
    F: Future<Output = Result<ServiceResponse<B>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let outcome = std::task::ready!(this.inner.poll(cx));
        if this.timed_out.as_ref().is_some_and(|late| late.get()) {
            tracing::info!("request body timed out");
            return Poll::Ready(Err(ApiError::RequestTimeout.into()));
        }
        Poll::Ready(outcome)
    }
}

/// A request body that fails once its deadline passes. The timer is made
/// only when the body is not all there: most bodies arrive with the head.
struct TimedBody {
    inner: Payload,
    until: Instant,
    deadline: Option<Pin<Box<Sleep>>>,
    /// Whether the body was found missing once already. actix calls the
    /// handler before it hands over the body bytes that came with the head,
    /// so the first poll finds nothing even when everything is there; that
    /// poll only asks to be polled again (after the bytes are handed over),
    /// and a body still missing then gets the timer.
    looked: bool,
    timed_out: Rc<Cell<bool>>,
}

impl futures_util::Stream for TimedBody {
    type Item = Result<web::Bytes, actix_web::error::PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.timed_out.get() {
            return Poll::Ready(None);
        }
        // The body first: a body that is all there is never late.
        if let Poll::Ready(chunk) = futures_util::StreamExt::poll_next_unpin(&mut self.inner, cx) {
            return Poll::Ready(chunk);
        }
        if !self.looked {
            self.looked = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let until = self.until;
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(until)));
        if deadline.as_mut().poll(cx).is_ready() {
            self.timed_out.set(true);
            let late = std::io::Error::new(std::io::ErrorKind::TimedOut, "request body timed out");
            return Poll::Ready(Some(Err(actix_web::error::PayloadError::Io(late))));
        }
        Poll::Pending
    }
}
