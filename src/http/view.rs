//! Response bodies: how records look to clients (API.md's objects).

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use serde::Serialize;

use crate::account::{ApiKey, PasskeyRecord, Session, SessionId, User};
use crate::auth::{LoginOutcome, TokenGrant};
use crate::clock::Timestamp;

/// API.md's user object: every field present, `null` where empty.
#[derive(Serialize)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub username: Option<String>,
    pub name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company: Option<String>,
    pub role: &'static str,
    pub email_verified_at: Option<String>,
    pub two_factor_enabled: bool,
    pub has_password: bool,
    pub must_reset_password: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        UserView {
            id: u.id.to_string(),
            email: u.email.clone(),
            username: u.username.clone(),
            name: u.name.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            company: u.company.clone(),
            role: u.role.as_str(),
            email_verified_at: u.email_verified_at.map(|t| t.to_rfc3339()),
            two_factor_enabled: u.two_factor_enabled,
            has_password: u.password_hash.is_some(),
            must_reset_password: u.must_reset_password,
            created_at: u.created_at.to_rfc3339(),
            updated_at: u.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Serialize)]
struct TokenBody<'a> {
    token: &'a str,
    token_type: &'static str,
    expires_in: u64,
    refresh_token: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<UserView>,
}

/// A response that carries tokens: never cached by anyone.
pub fn no_store(status: StatusCode) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
        .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
    response
}

/// The token response; `with_user` adds the user object (sign-in, not refresh).
pub fn token_response(status: StatusCode, grant: &TokenGrant, with_user: bool) -> HttpResponse {
    no_store(status).json(TokenBody {
        token: &grant.access_token,
        token_type: "Bearer",
        expires_in: grant.expires_in.as_secs(),
        refresh_token: &grant.refresh_token,
        user: with_user.then(|| UserView::from(&grant.user)),
    })
}

/// A sign-in's answer: the token response, or API.md's
/// `{"two_factor_required": true, "challenge_token": ...}`.
pub fn login_response(outcome: &LoginOutcome) -> HttpResponse {
    match outcome {
        LoginOutcome::Signed(grant) => token_response(StatusCode::OK, grant, true),
        LoginOutcome::TwoFactorRequired { challenge_token, expires_in } => {
            no_store(StatusCode::OK).json(serde_json::json!({
                "two_factor_required": true,
                "challenge_token": challenge_token,
                "expires_in": expires_in.as_secs(),
            }))
        }
    }
}

/// The short sentence that goes with a `message_code` (API.md: every answer
/// that carries `message_code` also carries `message`).
pub fn message_text(code: &str) -> &'static str {
    match code {
        "logged_out" => "Successfully logged out",
        "password_changed" => "Password changed",
        "password_set" => "Password set",
        "password_reset" => "Password reset; every session and API key of the account was revoked",
        "verification_required" => "Check your email for a verification code",
        "code_sent" => "If the address can receive one, a code has been sent",
        "session_revoked" => "Session revoked",
        "sessions_revoked" => "Other sessions revoked",
        "2fa_enabled" => "Two-factor authentication enabled",
        "2fa_disabled" => "Two-factor authentication disabled",
        "api_key_revoked" => "API key revoked",
        "passkey_removed" => "Passkey removed",
        "project_deleted" => "Project deleted",
        "user_deleted" => "User deleted",
        _ => "Done",
    }
}

/// `{"message_code": code, "message": <its sentence>}` and `extra`'s fields.
pub fn message_body(code: &str, extra: serde_json::Value) -> serde_json::Value {
    let mut body = serde_json::json!({ "message_code": code, "message": message_text(code) });
    if let (Some(body), serde_json::Value::Object(extra)) = (body.as_object_mut(), extra) {
        body.extend(extra);
    }
    body
}

/// `200 {"message_code": code, "message": ...}`.
pub fn message(code: &str) -> HttpResponse {
    HttpResponse::Ok().json(message_body(code, serde_json::Value::Null))
}

// A user's sessions, API keys and passkeys, listed alike to the user and
// to an admin (`/admin/projects/{id}/users/{uid}/...`).

/// `{"sessions": [...]}`; `current`: the caller's own session, if the
/// caller has one among these (an admin reading another user's has none).
pub fn sessions_body(sessions: &[Session], current: Option<SessionId>) -> serde_json::Value {
    let views: Vec<SessionView> = sessions.iter().map(|s| SessionView::new(s, current)).collect();
    serde_json::json!({ "sessions": views })
}

/// `{"api_keys": [...]}`: never a secret.
pub fn api_keys_body(keys: &[ApiKey]) -> serde_json::Value {
    let views: Vec<KeyView<'_>> = keys.iter().map(KeyView::from).collect();
    serde_json::json!({ "api_keys": views })
}

/// `{"passkeys": [...]}`.
pub fn passkeys_body(passkeys: &[PasskeyRecord]) -> serde_json::Value {
    let views: Vec<PasskeyView<'_>> = passkeys.iter().map(PasskeyView::from).collect();
    serde_json::json!({ "passkeys": views })
}

#[derive(Serialize)]
struct SessionView {
    id: String,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: String,
    last_seen_at: String,
    current: bool,
}

impl SessionView {
    fn new(session: &Session, current: Option<SessionId>) -> Self {
        SessionView {
            id: session.id.to_string(),
            user_agent: session.user_agent.clone(),
            ip: session.ip.clone(),
            created_at: session.created_at.to_rfc3339(),
            last_seen_at: session.last_seen_at.to_rfc3339(),
            current: current == Some(session.id),
        }
    }
}

/// A key as listed: never the secret.
#[derive(Serialize)]
struct KeyView<'a> {
    id: String,
    name: &'a str,
    prefix: &'a str,
    scopes: &'a [String],
    last_used_at: Option<String>,
    expires_at: Option<String>,
    created_at: String,
}

impl<'a> From<&'a ApiKey> for KeyView<'a> {
    fn from(key: &'a ApiKey) -> Self {
        KeyView {
            id: key.id.to_string(),
            name: &key.name,
            prefix: &key.prefix,
            scopes: &key.scopes,
            last_used_at: key.last_used_at.map(Timestamp::to_rfc3339),
            expires_at: key.expires_at.map(Timestamp::to_rfc3339),
            created_at: key.created_at.to_rfc3339(),
        }
    }
}

/// A passkey as its owner sees it (never its key or counter).
#[derive(Serialize)]
pub struct PasskeyView<'a> {
    id: String,
    name: &'a str,
    created_at: String,
    last_used_at: Option<String>,
}

impl<'a> From<&'a PasskeyRecord> for PasskeyView<'a> {
    fn from(p: &'a PasskeyRecord) -> Self {
        PasskeyView {
            id: p.id.to_string(),
            name: &p.name,
            created_at: p.created_at.to_rfc3339(),
            last_used_at: p.last_used_at.map(Timestamp::to_rfc3339),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route file, to find the message codes they answer with.
    const ROUTES: [&str; 9] = [
        include_str!("routes/admin.rs"),
        include_str!("routes/api_keys.rs"),
        include_str!("routes/auth.rs"),
        include_str!("routes/oidc.rs"),
        include_str!("routes/otp.rs"),
        include_str!("routes/passkeys.rs"),
        include_str!("routes/sessions.rs"),
        include_str!("routes/twofa.rs"),
        include_str!("routes/gateway.rs"),
    ];

    #[test]
    fn every_message_code_a_route_answers_has_its_sentence() {
        let mut codes = Vec::new();
        for source in ROUTES {
            assert!(!source.contains("\"message_code\""), "a route builds a message body by hand");
            for call in ["message(\"", "message_body(\""] {
                for (at, _) in source.match_indices(call) {
                    let rest = &source[at + call.len()..];
                    codes.push(rest[..rest.find('"').unwrap()].to_owned());
                }
            }
        }
        assert!(codes.len() >= 14, "{codes:?}");
        for code in codes {
            assert_ne!(message_text(&code), "Done", "{code} has no sentence");
        }
        let body = message_body("sessions_revoked", serde_json::json!({"revoked": 2}));
        assert_eq!(
            body,
            serde_json::json!({"message_code": "sessions_revoked", "message": "Other sessions revoked", "revoked": 2})
        );
    }
}
