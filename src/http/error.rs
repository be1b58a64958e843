//! The one error type of the HTTP edge and its mapping to API.md's body
//! `{"error", "code", "fields"?}`.
//!
//! Every failure a client can see passes through [`ApiError`]: handler
//! results, extractor failures (via the configs in `extract`), and actix's own
//! error responses (rewritten by the middleware). This file is the one table:
//! every conversion into `ApiError` (from `AuthError`, `TokenError`,
//! `StoreError`, JSON body errors, actix statuses) is here, and the test at
//! the bottom pins each row. 5xx bodies are opaque; the cause (kept with
//! `#[source]`) is logged once here, with its whole chain.

use std::time::Duration;

use actix_web::error::{JsonPayloadError, PayloadError};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::account::Fields;
use crate::auth::{AuthError, Cause, Conflict};
use crate::store::StoreError;
use crate::token::TokenError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("request validation failed")]
    Validation { message: String, fields: Fields },
    #[error("malformed JSON: {0}")]
    InvalidJson(String),
    #[error("authentication required")]
    Unauthorized,
    #[error("invalid credentials")]
    InvalidCredentials,
    #[error("invalid token")]
    InvalidToken,
    #[error("token expired")]
    TokenExpired,
    #[error("refresh token reused; the session has been revoked")]
    RefreshTokenReused,
    #[error("invalid or expired code")]
    InvalidCode,
    #[error("email address not verified")]
    EmailNotVerified,
    #[error("two-factor authentication is already enabled")]
    AlreadyEnabled,
    #[error("the account already has a password")]
    PasswordAlreadySet,
    #[error("forbidden")]
    Forbidden,
    #[error("account disabled")]
    AccountDisabled,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("email already registered")]
    EmailTaken,
    #[error("username already taken")]
    UsernameTaken,
    #[error("{}", conflict_message(*.0))]
    Conflict(Conflict),
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type; send application/json")]
    UnsupportedMediaType,
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("too many requests")]
    RateLimited(Duration),
    #[error("server busy; retry later")]
    Overloaded(Duration),
    #[error("the identity provider cannot be reached; retry later")]
    ProviderUnavailable,
    #[error("storage unavailable; retry later")]
    StoreUnavailable(#[source] StoreError),
    #[error("internal error")]
    Internal(#[source] Cause),
}

fn conflict_message(conflict: Conflict) -> &'static str {
    match conflict {
        Conflict::ProjectExists => "a project with this id exists",
        Conflict::DefaultProject => "the default project cannot be deleted or disabled",
        Conflict::LastSuperadmin => "the last superadmin cannot be demoted, disabled or deleted",
        Conflict::PasskeyExists => "this passkey is registered already",
    }
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: String,
    code: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    fields: Option<&'a Fields>,
}

impl ApiError {
    /// A validation error about one field.
    pub fn field(field: &str, problem: &str) -> Self {
        let mut fields = Fields::new();
        fields.insert(field.to_owned(), problem.to_owned());
        ApiError::Validation { message: format!("{field} {problem}"), fields }
    }

    /// A validation error about several fields (must not be empty).
    pub fn fields(fields: Fields) -> Self {
        let message = fields.iter().map(|(f, p)| format!("{f} {p}")).collect::<Vec<_>>().join("; ");
        ApiError::Validation { message, fields }
    }

    /// A 500 whose cause is logged, never shown.
    pub fn internal(cause: impl Into<Cause>) -> Self {
        ApiError::Internal(cause.into())
    }

    /// The stable machine-readable code of API.md.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Validation { .. } => "validation_error",
            ApiError::InvalidJson(_) => "invalid_json",
            ApiError::Unauthorized => "unauthorized",
            ApiError::InvalidCredentials => "invalid_credentials",
            ApiError::InvalidToken => "invalid_token",
            ApiError::TokenExpired => "token_expired",
            ApiError::RefreshTokenReused => "refresh_token_reused",
            ApiError::InvalidCode => "invalid_code",
            ApiError::EmailNotVerified => "email_not_verified",
            ApiError::AlreadyEnabled => "already_enabled",
            ApiError::PasswordAlreadySet => "password_already_set",
            ApiError::Forbidden => "forbidden",
            ApiError::AccountDisabled => "account_disabled",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::EmailTaken => "email_taken",
            ApiError::UsernameTaken => "username_taken",
            ApiError::Conflict(Conflict::ProjectExists) => "project_exists",
            ApiError::Conflict(Conflict::DefaultProject) => "default_project",
            ApiError::Conflict(Conflict::LastSuperadmin) => "last_superadmin",
            ApiError::Conflict(Conflict::PasskeyExists) => "passkey_exists",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RequestTimeout => "request_timeout",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Overloaded(_) => "overloaded",
            ApiError::ProviderUnavailable => "provider_unavailable",
            ApiError::StoreUnavailable(_) => "store_unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    /// The error for an actix error response of `status` that carried no JSON.
    pub fn for_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
            StatusCode::FORBIDDEN => ApiError::Forbidden,
            StatusCode::TOO_MANY_REQUESTS => ApiError::RateLimited(Duration::from_secs(1)),
            StatusCode::REQUEST_TIMEOUT => ApiError::RequestTimeout,
            StatusCode::SERVICE_UNAVAILABLE => ApiError::Overloaded(Duration::from_secs(1)),
            s if s.is_client_error() => ApiError::Validation { message: "bad request".into(), fields: Fields::new() },
            s => ApiError::internal(format!("status {s}")),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Validation { .. } | ApiError::InvalidJson(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized
            | ApiError::InvalidCredentials
            | ApiError::InvalidToken
            | ApiError::TokenExpired
            | ApiError::RefreshTokenReused
            | ApiError::InvalidCode => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden | ApiError::AccountDisabled | ApiError::EmailNotVerified => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::EmailTaken
            | ApiError::UsernameTaken
            | ApiError::AlreadyEnabled
            | ApiError::PasswordAlreadySet
            | ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded(_) | ApiError::StoreUnavailable(_) | ApiError::ProviderUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.respond(None)
    }
}

impl ApiError {
    /// The error response with `message` as its `error` text instead of the
    /// usual one (a dialect's wording); status, `code` and headers unchanged.
    pub fn response_saying(&self, message: &str) -> HttpResponse {
        self.respond(Some(message))
    }

    fn respond(&self, wording: Option<&str>) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            ApiError::Validation { message, .. } => message.clone(),
            ApiError::InvalidJson(detail) => format!("malformed JSON: {detail}"),
            ApiError::Internal(_) => {
                tracing::error!(cause = %causes(self), "internal error");
                self.to_string()
            }
            ApiError::StoreUnavailable(_) => {
                tracing::warn!(cause = %causes(self), "store unavailable");
                self.to_string()
            }
            other => other.to_string(),
        };
        let message = wording.map_or(message, str::to_owned);
        let fields = match self {
            ApiError::Validation { fields, .. } if !fields.is_empty() => Some(fields),
            _ => None,
        };
        let mut response = HttpResponse::build(status);
        if let ApiError::RateLimited(wait) | ApiError::Overloaded(wait) = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs(*wait).to_string()));
        }
        if let ApiError::StoreUnavailable(_) | ApiError::ProviderUnavailable = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        response.json(ErrorBody { error: message, code: self.code(), fields })
    }
}

/// `Retry-After` in whole seconds, rounded up: a client that waits exactly
/// that long is not refused again for the same reason.
fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// The chain of causes under `error`, outermost first, joined by `: `.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = String::new();
    let mut cause = error.source();
    while let Some(e) = cause {
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::InvalidCredentials => ApiError::InvalidCredentials,
            AuthError::Locked(wait) => ApiError::RateLimited(wait),
            AuthError::EmailTaken => ApiError::EmailTaken,
            AuthError::UsernameTaken => ApiError::UsernameTaken,
            AuthError::InvalidRefreshToken => ApiError::InvalidToken,
            AuthError::RefreshTokenReused => ApiError::RefreshTokenReused,
            AuthError::AccountDisabled => ApiError::AccountDisabled,
            AuthError::InvalidCode => ApiError::InvalidCode,
            AuthError::InvalidChallenge => ApiError::InvalidToken,
            AuthError::InvalidIdToken => ApiError::InvalidToken,
            AuthError::ProviderUnavailable => ApiError::ProviderUnavailable,
            AuthError::ChallengeExpired => ApiError::TokenExpired,
            AuthError::EmailNotVerified => ApiError::EmailNotVerified,
            AuthError::AlreadyEnabled => ApiError::AlreadyEnabled,
            AuthError::PasswordAlreadySet => ApiError::PasswordAlreadySet,
            AuthError::TwoFactorNotSetUp => ApiError::field("code", "has nothing to confirm: call 2fa/setup first"),
            AuthError::TwoFactorNotEnabled => ApiError::Validation {
                message: "two-factor authentication is not enabled".into(),
                fields: Default::default(),
            },
            AuthError::Forbidden => ApiError::Forbidden,
            AuthError::LimitReached(what) => {
                ApiError::Validation { message: what.to_owned(), fields: Default::default() }
            }
            AuthError::NotFound => ApiError::NotFound,
            AuthError::Conflict(conflict) => ApiError::Conflict(conflict),
            AuthError::Invalid(field, problem) => ApiError::field(field, problem),
            AuthError::Overloaded(wait) => ApiError::Overloaded(wait),
            AuthError::StoreUnavailable(cause) => ApiError::StoreUnavailable(cause),
            AuthError::Internal(cause) => ApiError::Internal(cause),
        }
    }
}

/// A credential check (`/verify`, `/introspect`, the extractors).
impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Missing => ApiError::Unauthorized,
            TokenError::Invalid => ApiError::InvalidToken,
            TokenError::Expired => ApiError::TokenExpired,
            TokenError::Store(e) => e.into(),
            TokenError::Signing(_) => ApiError::internal(e),
        }
    }
}

/// A store read at the edge (`/readyz`, a token check): the same rows as
/// for the flows.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        AuthError::from(e).into()
    }
}

/// A JSON body that could not be read (the `JsonConfig` error handler).
impl From<&JsonPayloadError> for ApiError {
    fn from(e: &JsonPayloadError) -> Self {
        match e {
            JsonPayloadError::OverflowKnownLength { .. } | JsonPayloadError::Overflow { .. } => {
                ApiError::PayloadTooLarge
            }
            JsonPayloadError::ContentType => ApiError::UnsupportedMediaType,
            JsonPayloadError::Deserialize(e) if e.is_data() => {
                ApiError::Validation { message: e.to_string(), fields: Default::default() }
            }
            JsonPayloadError::Deserialize(e) => ApiError::InvalidJson(e.to_string()),
            JsonPayloadError::Payload(PayloadError::Overflow) => ApiError::PayloadTooLarge,
            JsonPayloadError::Payload(PayloadError::Io(io)) if io.kind() == std::io::ErrorKind::TimedOut => {
                ApiError::RequestTimeout
            }
            JsonPayloadError::Payload(e) => ApiError::InvalidJson(e.to_string()),
            other => ApiError::InvalidJson(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::MessageBody;

    fn body(e: &ApiError) -> serde_json::Value {
        let bytes = e.error_response().into_body().try_into_bytes().unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// The mapping table of API.md, pinned.
    #[test]
    fn every_error_maps_to_its_status_and_code() {
        let second = Duration::from_secs(1);
        let table: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::field("email", "is required"), 400, "validation_error"),
            (ApiError::InvalidJson("eof".into()), 400, "invalid_json"),
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::InvalidCredentials, 401, "invalid_credentials"),
            (ApiError::InvalidToken, 401, "invalid_token"),
            (ApiError::TokenExpired, 401, "token_expired"),
            (ApiError::RefreshTokenReused, 401, "refresh_token_reused"),
            (ApiError::Forbidden, 403, "forbidden"),
            (ApiError::AccountDisabled, 403, "account_disabled"),
            (ApiError::NotFound, 404, "not_found"),
            (ApiError::MethodNotAllowed, 405, "method_not_allowed"),
            (ApiError::EmailTaken, 409, "email_taken"),
            (ApiError::UsernameTaken, 409, "username_taken"),
            (ApiError::Conflict(Conflict::ProjectExists), 409, "project_exists"),
            (ApiError::Conflict(Conflict::DefaultProject), 409, "default_project"),
            (ApiError::Conflict(Conflict::LastSuperadmin), 409, "last_superadmin"),
            (ApiError::Conflict(Conflict::PasskeyExists), 409, "passkey_exists"),
            (ApiError::PayloadTooLarge, 413, "payload_too_large"),
            (ApiError::UnsupportedMediaType, 415, "unsupported_media_type"),
            (ApiError::RequestTimeout, 408, "request_timeout"),
            (ApiError::RateLimited(second), 429, "rate_limited"),
            (ApiError::Overloaded(second), 503, "overloaded"),
            (ApiError::StoreUnavailable(StoreError::Unavailable("down".into())), 503, "store_unavailable"),
            (ApiError::ProviderUnavailable, 503, "provider_unavailable"),
            (ApiError::internal("boom"), 500, "internal"),
        ];
        for (error, status, code) in table {
            assert_eq!(error.status_code().as_u16(), status, "{code}");
            let json = body(&error);
            assert_eq!(json["code"], code);
            assert!(json["error"].is_string());
        }
    }

    /// Every subsystem error a handler can return, to its status and code.
    #[test]
    fn every_subsystem_error_maps_to_its_status_and_code() {
        use crate::hashing::HashError;
        use crate::shards::{Declined, ShardError};
        use crate::store::UniqueField;
        let wait = Duration::from_secs(7);
        let down = || StoreError::Unavailable("down".into());
        let auth: Vec<(AuthError, u16, &str)> = vec![
            (AuthError::InvalidCredentials, 401, "invalid_credentials"),
            (AuthError::Locked(wait), 429, "rate_limited"),
            (AuthError::EmailTaken, 409, "email_taken"),
            (AuthError::UsernameTaken, 409, "username_taken"),
            (AuthError::InvalidRefreshToken, 401, "invalid_token"),
            (AuthError::RefreshTokenReused, 401, "refresh_token_reused"),
            (AuthError::AccountDisabled, 403, "account_disabled"),
            (AuthError::InvalidCode, 401, "invalid_code"),
            (AuthError::InvalidChallenge, 401, "invalid_token"),
            (AuthError::InvalidIdToken, 401, "invalid_token"),
            (AuthError::ProviderUnavailable, 503, "provider_unavailable"),
            (AuthError::ChallengeExpired, 401, "token_expired"),
            (AuthError::EmailNotVerified, 403, "email_not_verified"),
            (AuthError::AlreadyEnabled, 409, "already_enabled"),
            (AuthError::TwoFactorNotSetUp, 400, "validation_error"),
            (AuthError::TwoFactorNotEnabled, 400, "validation_error"),
            (AuthError::PasswordAlreadySet, 409, "password_already_set"),
            (AuthError::Forbidden, 403, "forbidden"),
            (AuthError::LimitReached("at most 100"), 400, "validation_error"),
            (AuthError::NotFound, 404, "not_found"),
            (AuthError::Conflict(Conflict::ProjectExists), 409, "project_exists"),
            (AuthError::Invalid("role", "no"), 400, "validation_error"),
            (AuthError::Overloaded(wait), 503, "overloaded"),
            (AuthError::StoreUnavailable(down()), 503, "store_unavailable"),
            (AuthError::internal("boom"), 500, "internal"),
            // What the flows' own subsystems answer, through AuthError.
            (HashError::Overloaded.into(), 503, "overloaded"),
            (HashError::DeadlineExceeded.into(), 503, "overloaded"),
            (HashError::Stopped.into(), 500, "internal"),
            (HashError::AccountBusy.into(), 429, "rate_limited"),
            (ShardError::Overloaded.into(), 503, "overloaded"),
            (ShardError::Timeout.into(), 503, "overloaded"),
            (ShardError::Locked(wait).into(), 429, "rate_limited"),
            (ShardError::InvalidRefresh.into(), 401, "invalid_token"),
            (ShardError::RefreshReused(crate::account::SessionId::generate()).into(), 401, "refresh_token_reused"),
            (ShardError::LimitReached("at most 100").into(), 400, "validation_error"),
            (ShardError::Declined(Declined::AlreadyEnabled).into(), 409, "already_enabled"),
            (ShardError::Declined(Declined::NotSetUp).into(), 400, "validation_error"),
            (ShardError::Declined(Declined::NotEnabled).into(), 400, "validation_error"),
            (ShardError::Declined(Declined::PasswordAlreadySet).into(), 409, "password_already_set"),
            (ShardError::Store(down()).into(), 503, "store_unavailable"),
        ];
        let store: Vec<(StoreError, u16, &str)> = vec![
            (StoreError::AlreadyExists(UniqueField::Email), 409, "email_taken"),
            (StoreError::AlreadyExists(UniqueField::Username), 409, "username_taken"),
            (StoreError::NotFound, 404, "not_found"),
            (down(), 503, "store_unavailable"),
            (StoreError::Conflict, 500, "internal"),
            (StoreError::Corrupt("bad json".into()), 500, "internal"),
        ];
        let token: Vec<(TokenError, u16, &str)> = vec![
            (TokenError::Missing, 401, "unauthorized"),
            (TokenError::Invalid, 401, "invalid_token"),
            (TokenError::Expired, 401, "token_expired"),
            (TokenError::Store(down()), 503, "store_unavailable"),
            (TokenError::Signing("broken key".into()), 500, "internal"),
        ];
        let rows = auth
            .into_iter()
            .map(|(e, s, c)| (ApiError::from(e), s, c))
            .chain(store.into_iter().map(|(e, s, c)| (ApiError::from(e), s, c)))
            .chain(token.into_iter().map(|(e, s, c)| (ApiError::from(e), s, c)));
        for (error, status, code) in rows {
            assert_eq!((error.status_code().as_u16(), error.code()), (status, code), "{error:?}");
        }
        let locked = ApiError::from(AuthError::Locked(wait)).error_response();
        assert_eq!(locked.headers().get(header::RETRY_AFTER).unwrap(), "7", "a lock tells how long it lasts");
    }

    #[test]
    fn the_cause_chain_is_kept_for_the_log() {
        let error = ApiError::from(AuthError::from(StoreError::Corrupt("bad json".into())));
        assert!(causes(&error).contains("bad json"), "{}", causes(&error));
        assert_eq!(body(&error)["error"], "internal error");
    }

    #[test]
    fn retry_after_rounds_up_to_the_second() {
        assert_eq!(retry_after_secs(Duration::from_millis(5_999)), 6);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
        assert_eq!(retry_after_secs(Duration::from_millis(6_001)), 7);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let json = body(&ApiError::internal("secret path /etc/x"));
        assert_eq!(json["error"], "internal error");
    }

    #[test]
    fn validation_errors_name_fields() {
        let json = body(&ApiError::field("password", "is too short"));
        assert_eq!(json["fields"]["password"], "is too short");
    }

    #[test]
    fn refusals_for_load_carry_retry_after() {
        for e in [ApiError::RateLimited(Duration::from_secs(7)), ApiError::Overloaded(Duration::from_secs(7))] {
            assert_eq!(e.error_response().headers().get(header::RETRY_AFTER).unwrap(), "7");
        }
    }
}
