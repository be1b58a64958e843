//! Gateway routes for reverse proxies and services: `POST /introspect`
//! (RFC 7662) and `GET /verify` (forward auth). Never rate limited; every
//! check goes through the verified-token cache.

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, mime, web};
use serde::{Deserialize, Serialize};

use crate::account::{ProjectId, SessionId, UserId};
use crate::http::extract::presented_credential;
use crate::http::view::no_store;
use crate::http::{ApiError, AppState};
use crate::token::{Credential, INTROSPECT_SCOPE, VerifiedAccess};

/// The two routes at their full paths, registered first: the router tries
/// services in order, and every proxied request comes here.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api/v1/introspect").route(web::post().to(introspect)))
        .service(web::resource("/api/v1/verify").route(web::get().to(verify)));
}

#[derive(Deserialize)]
struct IntrospectBody {
    token: Option<String>,
    /// Accepted and ignored: every kind of token is looked up anyway.
    #[serde(rename = "token_type_hint")]
    _token_type_hint: Option<String>,
}

/// RFC 7662's answer. Absent fields are left out.
#[derive(Serialize)]
struct Introspection<'a> {
    active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<UserId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    aud: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<SessionId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
}

/// The answer for every token that is not active here.
const INACTIVE: &[u8] = br#"{"active":false}"#;

fn active(access: &VerifiedAccess) -> Introspection<'_> {
    let (sid, token_type) = match access.credential {
        Credential::Session(id) => (Some(id), "access_token"),
        Credential::ApiKey(_) => (None, "api_key"),
    };
    Introspection {
        active: true,
        sub: Some(access.user_id),
        aud: Some(access.project.as_str()),
        scope: Some(&access.scope),
        exp: access.exp,
        iat: Some(access.iat),
        sid,
        role: Some(access.role.as_str()),
        token_type: Some(token_type),
        username: access.username.as_deref(),
    }
}

/// The common form `token=<value>[&token_type_hint=...]` whose value needs
/// no percent-decoding (JWTs and API keys are URL-safe): the token's bytes,
/// borrowed. Anything else goes through the full form parser.
pub(crate) fn plain_form_token(body: &[u8]) -> Option<&[u8]> {
    let rest = body.strip_prefix(b"token=")?;
    // One SIMD pass: the value ends at `&`; a `%` or `+` before it needs decoding.
    let value = match memchr::memchr3(b'&', b'%', b'+', rest) {
        None => rest,
        Some(end) if rest[end] == b'&' => &rest[..end],
        Some(_) => return None,
    };
    (!value.is_empty()).then_some(value)
}

/// The token to introspect, from a form or JSON body.
fn token_from<'a>(req: &HttpRequest, body: &'a [u8]) -> Result<std::borrow::Cow<'a, [u8]>, ApiError> {
    let content_type = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    let is_form = essence.eq_ignore_ascii_case("application/x-www-form-urlencoded");
    if is_form && let Some(token) = plain_form_token(body) {
        return Ok(std::borrow::Cow::Borrowed(token));
    }
    let parsed: IntrospectBody = if is_form {
        serde_urlencoded::from_bytes(body).map_err(|e| ApiError::field("token", &e.to_string()))?
    } else if essence.eq_ignore_ascii_case("application/json") {
        serde_json::from_slice(body).map_err(|e| {
            if e.is_data() {
                ApiError::field("token", "must be a string")
            } else {
                ApiError::InvalidJson(e.to_string())
            }
        })?
    } else {
        return Err(ApiError::UnsupportedMediaType);
    };
    parsed
        .token
        .filter(|t| !t.is_empty())
        .map(|t| std::borrow::Cow::Owned(t.into_bytes()))
        .ok_or_else(|| ApiError::field("token", "is required"))
}

/// RFC 7662 introspection, for an API key with scope `introspect` of any
/// project (the key is checked here, not bound to a route's project).
async fn introspect(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let caller = state.gate.check(presented_credential(&req)?).await?;
    if !matches!(caller.credential, Credential::ApiKey(_)) || !caller.has_scope(INTROSPECT_SCOPE) {
        return Err(ApiError::Forbidden);
    }
    let token = token_from(&req, &body)?;
    let checked = match state.gate.check(&*token).await {
        Ok(access) => Some(access),
        Err(refused) if refused.is_refusal() => None,
        Err(e) => return Err(e.into()),
    };
    let body = match &checked {
        // A key of the `default` project (made by one of its admins: the
        // operator's gateway) introspects every project's tokens, `aud`
        // telling which; any other project's key only its own project's.
        Some(access) if access.project == caller.project || caller.project.as_str() == ProjectId::DEFAULT => {
            active_body(access)?
        }
        _ => Bytes::from_static(INACTIVE),
    };
    Ok(no_store(StatusCode::OK).content_type(mime::APPLICATION_JSON).body(body))
}

/// The active answer's JSON (ids serialized straight from their bytes,
/// into one allocation of the usual answer's size).
fn active_body(access: &VerifiedAccess) -> Result<Bytes, ApiError> {
    let mut body = Vec::with_capacity(ANSWER_CAPACITY);
    serde_json::to_writer(&mut body, &active(access))
        .map_err(|_| ApiError::internal("introspection not serializable"))?;
    Ok(Bytes::from(body))
}

/// An active answer with a username fits: 234 bytes without one.
const ANSWER_CAPACITY: usize = 320;

const X_AUTH_USER_ID: HeaderName = HeaderName::from_static("x-auth-user-id");
const X_AUTH_PROJECT: HeaderName = HeaderName::from_static("x-auth-project");
const X_AUTH_ROLE: HeaderName = HeaderName::from_static("x-auth-role");
const X_AUTH_SCOPES: HeaderName = HeaderName::from_static("x-auth-scopes");
const X_AUTH_SESSION: HeaderName = HeaderName::from_static("x-auth-session");
const X_AUTH_KEY_ID: HeaderName = HeaderName::from_static("x-auth-key-id");
const X_AUTH_USERNAME: HeaderName = HeaderName::from_static("x-auth-username");

/// The identity headers of a `/verify` answer, their values written into
/// one buffer (one allocation, where a value each made one apiece) and
/// inserted straight into the answer's header map.
fn identity_headers(access: &VerifiedAccess, headers: &mut HeaderMap) -> Result<(), ApiError> {
    const ID: usize = uuid::fmt::Hyphenated::LENGTH;
    let (credential_header, credential_id) = match access.credential {
        Credential::Session(id) => (X_AUTH_SESSION, id.0),
        Credential::ApiKey(id) => (X_AUTH_KEY_ID, id.0),
    };
    let project = access.project.as_str().as_bytes();
    let scope = access.scope.as_bytes();
    let username = access.username.as_deref().map_or(&b""[..], str::as_bytes);
    let mut text = Vec::with_capacity(2 * ID + project.len() + scope.len() + username.len());
    let mut id = [0u8; ID];
    text.extend_from_slice(access.user_id.0.hyphenated().encode_lower(&mut id).as_bytes());
    text.extend_from_slice(credential_id.hyphenated().encode_lower(&mut id).as_bytes());
    text.extend_from_slice(project);
    text.extend_from_slice(scope);
    text.extend_from_slice(username);
    let text = Bytes::from(text);
    let mut at = 0;
    let mut next = |len: usize| {
        let value = HeaderValue::from_maybe_shared(text.slice(at..at + len))
            .map_err(|_| ApiError::internal("header value not representable"));
        at += len;
        value
    };
    headers.insert(X_AUTH_USER_ID, next(ID)?);
    headers.insert(credential_header, next(ID)?);
    headers.insert(X_AUTH_PROJECT, next(project.len())?);
    headers.insert(X_AUTH_SCOPES, next(scope.len())?);
    if access.username.is_some() {
        headers.insert(X_AUTH_USERNAME, next(username.len())?);
    }
    headers.insert(X_AUTH_ROLE, HeaderValue::from_static(access.role.as_str()));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(())
}

/// The project a `/verify?project=<id>` asks for: a proxy in front of one
/// project's services names it, and a credential of any other project is
/// refused. `None` without the parameter (any project's credential passes,
/// `X-Auth-Project` telling which).
fn wanted_project(req: &HttpRequest) -> Option<&str> {
    let query = req.query_string();
    if query.is_empty() {
        return None;
    }
    query.split('&').find_map(|pair| pair.strip_prefix("project="))
}

/// Forward auth: 200 with the caller's identity in `X-Auth-*` headers, 401 otherwise.
async fn verify(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let credential = presented_credential(&req)?;
    let access: Arc<VerifiedAccess> = state.gate.check(credential).await?;
    if wanted_project(&req).is_some_and(|wanted| wanted != access.project.as_str()) {
        return Err(ApiError::InvalidToken);
    }
    let mut response = HttpResponse::new(StatusCode::OK);
    identity_headers(&access, response.headers_mut())?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::plain_form_token;

    #[test]
    fn the_wanted_project_is_read_from_the_query() {
        let req = |uri: &str| actix_web::test::TestRequest::get().uri(uri).to_http_request();
        assert_eq!(super::wanted_project(&req("/api/v1/verify")), None);
        assert_eq!(super::wanted_project(&req("/api/v1/verify?project=mobile")), Some("mobile"));
        assert_eq!(super::wanted_project(&req("/api/v1/verify?x=1&project=web")), Some("web"));
        assert_eq!(super::wanted_project(&req("/api/v1/verify?x=1")), None);
    }

    #[test]
    fn plain_form_tokens_are_borrowed_and_others_parsed_in_full() {
        assert_eq!(plain_form_token(b"token=abc.def-_"), Some(&b"abc.def-_"[..]));
        assert_eq!(plain_form_token(b"token=abc&token_type_hint=access_token"), Some(&b"abc"[..]));
        assert_eq!(plain_form_token(b"token=a%2Bb"), None);
        assert_eq!(plain_form_token(b"token=a+b"), None);
        assert_eq!(plain_form_token(b"token="), None);
        assert_eq!(plain_form_token(b"token_type_hint=x&token=abc"), None);
    }
}
