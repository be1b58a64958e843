//! The seed dialects (API.md, "Seed dialects"): the paths and shapes that
//! clients of the five seed APIs are coded against, one file per seed, as
//! path aliases and reshaped requests and answers over the same flows as
//! the core routes.
//!
//! Never: holds flow logic (each handler calls the same `auth` method as
//! its core twin), or changes an error's `code` (a dialect may reword or
//! wrap an error, never recode it). Nothing below `http` knows a dialect
//! exists.

pub mod cloudflare;
pub mod cloudheed;
pub mod generic;
pub mod lnchr;

use actix_web::body::{MessageBody, to_bytes};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};
use serde_json::{Value, json};

/// Wraps every JSON answer of the scope: `{"success": true, "data": ...}`,
/// and errors `{"success": false, "error", "code", "fields"?}` with the
/// core's `code` (their status and headers unchanged). Wrap a scope in it
/// inside its `deadline`.
pub async fn envelope(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    // (An error the inner services return as such, rather than as a
    // response, cannot be wrapped here: the request is theirs. Handler and
    // extractor errors are responses by then; the request deadline wraps
    // this middleware, so its 503 keeps the core shape.)
    wrapped(next.call(req).await?.map_into_boxed_body()).await
}

/// `res` in the envelope, if it is JSON (a 204 or a redirect stays as it is).
async fn wrapped(res: ServiceResponse) -> Result<ServiceResponse, Error> {
    let is_json = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if !is_json {
        return Ok(res);
    }
    let (request, response) = res.into_parts();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes =
        to_bytes(response.into_body()).await.map_err(|_| crate::http::ApiError::internal("reading an answer"))?;
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let wrapped = if status.is_success() {
        json!({"success": true, "data": body})
    } else {
        let mut error = json!({"success": false, "error": body["error"], "code": body["code"]});
        if let Some(fields) = body.get("fields") {
            error["fields"] = fields.clone();
        }
        error
    };
    let mut rebuilt = HttpResponse::build(status);
    for (name, value) in &headers {
        if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
            rebuilt.append_header((name.clone(), value.clone()));
        }
    }
    rebuilt.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/json")));
    Ok(ServiceResponse::new(request, rebuilt.json(wrapped)))
}
