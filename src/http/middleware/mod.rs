//! Request middleware, written as services rather than `from_fn` closures:
//! every request passes them, and a hand-written future costs no
//! allocation per request.
//!
//! `Observe` wraps every route: request id, metrics, one log line, and a
//! JSON body for every error response. `BodyDeadline` bounds the time a
//! request's body may take to arrive. `deadline` wraps the routes that do
//! real work (`/api/v1/auth`): a request still running after the request
//! timeout answers 503. The gateway routes (`/introspect`, `/verify`) never
//! wait on hashing or shards, so they are spared that timer.

mod deadline;
mod observe;

pub use deadline::{BodyDeadline, deadline};
pub use observe::{HttpMetrics, Observe, RequestIds};
