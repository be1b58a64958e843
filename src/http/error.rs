//! The one error type of the HTTP edge and its mapping to API.md's body
//! `{"error", "code", "fields"?}`.
//!
//! Every failure a client can see passes through [`ApiError`]: handler
//! results, extractor failures (via the configs in `extract`), and actix's own
//! error responses (rewritten by the middleware). 5xx bodies are opaque; the
//! cause is logged once here.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::account::Fields;
use crate::auth::AuthError;
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
    #[error("request body too large")]
    PayloadTooLarge,
    #[error("unsupported media type; send application/json")]
    UnsupportedMediaType,
    #[error("too many requests")]
    RateLimited(Duration),
    #[error("server busy; retry later")]
    Overloaded(Duration),
    #[error("storage unavailable; retry later")]
    StoreUnavailable(String),
    #[error("internal error")]
    Internal(String),
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
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::RateLimited(_) => "rate_limited",
            ApiError::Overloaded(_) => "overloaded",
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
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
                ApiError::Overloaded(Duration::from_secs(1))
            }
            s if s.is_client_error() => ApiError::Validation { message: "bad request".into(), fields: Fields::new() },
            s => ApiError::Internal(format!("status {s}")),
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
            | ApiError::PasswordAlreadySet => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded(_) | ApiError::StoreUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let status = self.status_code();
        let message = match self {
            ApiError::Validation { message, .. } => message.clone(),
            ApiError::InvalidJson(detail) => format!("malformed JSON: {detail}"),
            ApiError::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                self.to_string()
            }
            ApiError::StoreUnavailable(cause) => {
                tracing::warn!(cause = %cause, "store unavailable");
                self.to_string()
            }
            other => other.to_string(),
        };
        let fields = match self {
            ApiError::Validation { fields, .. } if !fields.is_empty() => Some(fields),
            _ => None,
        };
        let mut response = HttpResponse::build(status);
        if let ApiError::RateLimited(wait) | ApiError::Overloaded(wait) = self {
            response.insert_header((header::RETRY_AFTER, wait.as_secs().max(1).to_string()));
        }
        if let ApiError::StoreUnavailable(_) = self {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("1")));
        }
        if status == StatusCode::UNAUTHORIZED {
            response.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        response.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        response.json(ErrorBody { error: message, code: self.code(), fields })
    }
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
            AuthError::Overloaded(wait) => ApiError::Overloaded(wait),
            AuthError::StoreUnavailable(why) => ApiError::StoreUnavailable(why),
            AuthError::Internal(why) => ApiError::Internal(why),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Missing => ApiError::Unauthorized,
            TokenError::Invalid => ApiError::InvalidToken,
            TokenError::Expired => ApiError::TokenExpired,
            TokenError::Store(e) => AuthError::from(e).into(),
            TokenError::Signing(why) => ApiError::Internal(why),
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
            (ApiError::PayloadTooLarge, 413, "payload_too_large"),
            (ApiError::UnsupportedMediaType, 415, "unsupported_media_type"),
            (ApiError::RateLimited(second), 429, "rate_limited"),
            (ApiError::Overloaded(second), 503, "overloaded"),
            (ApiError::StoreUnavailable("down".into()), 503, "store_unavailable"),
            (ApiError::Internal("boom".into()), 500, "internal"),
        ];
        for (error, status, code) in table {
            assert_eq!(error.status_code().as_u16(), status, "{code}");
            let json = body(&error);
            assert_eq!(json["code"], code);
            assert!(json["error"].is_string());
        }
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let json = body(&ApiError::Internal("secret path /etc/x".into()));
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
