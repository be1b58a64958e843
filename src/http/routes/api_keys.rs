//! `/auth/api-keys`: create (the key is shown once), list, revoke.
//! Session tokens only: an API key cannot create or list keys.

use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::account::{ApiKeyId, Fields};
use crate::auth::NewApiKey;
use crate::clock::Timestamp;
use crate::http::extract::{Authenticated, Client, PathId};
use crate::http::view::{api_keys_body, message, no_store};
use crate::http::{ApiError, AppState};

const MAX_NAME_CHARS: usize = 100;
const MAX_SCOPES: usize = 32;
const MAX_SCOPE_CHARS: usize = 64;
/// The longest lifetime a key may be given: ten years.
const MAX_LIFETIME: Duration = Duration::from_secs(3650 * 86_400);

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/api-keys").route(web::post().to(create_api_key)).route(web::get().to(list_api_keys)))
        .service(web::resource("/api-keys/{id}").route(web::delete().to(revoke_api_key)));
}

#[derive(Deserialize)]
pub(crate) struct CreateBody {
    name: Option<String>,
    scopes: Option<Vec<String>>,
    expires_in: Option<String>,
    expires_at: Option<String>,
}

/// `30d`, `12h`, `365d`: a whole number of days or hours, at most ten years.
/// Any other text, non-ASCII included, is `None` (never a panic: the unit
/// is split off as a character, not a byte).
pub(crate) fn parse_expires_in(text: &str) -> Option<Duration> {
    let (count, unit_secs) =
        if let Some(count) = text.strip_suffix('d') { (count, 86_400) } else { (text.strip_suffix('h')?, 3600) };
    if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) || count.starts_with('0') || count.len() > 6 {
        return None;
    }
    let count: u64 = count.parse().ok()?;
    let duration = Duration::from_secs(count * unit_secs);
    (duration <= MAX_LIFETIME).then_some(duration)
}

fn valid_scope(scope: &str) -> bool {
    !scope.is_empty()
        && scope.len() <= MAX_SCOPE_CHARS
        && scope.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-' | b'/'))
}

fn validate(body: CreateBody, now: Timestamp) -> Result<NewApiKey, ApiError> {
    let mut fields = Fields::new();
    let name = body.name.as_deref().map(str::trim).unwrap_or_default().to_owned();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
        fields.insert("name".into(), "must be 1 to 100 printable characters".into());
    }
    let mut scopes: Vec<String> = Vec::new();
    for scope in body.scopes.unwrap_or_default() {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.len() > MAX_SCOPES || !scopes.iter().all(|s| valid_scope(s)) {
        fields.insert("scopes".into(), "at most 32 scopes of 1 to 64 of A-Z a-z 0-9 : . _ - /".into());
    }
    let expires_at = match (body.expires_in.as_deref(), body.expires_at.as_deref()) {
        (Some(_), Some(_)) => {
            fields.insert("expires_in".into(), "give expires_in or expires_at, not both".into());
            None
        }
        (Some(text), None) => match parse_expires_in(text) {
            Some(lifetime) => Some(now.plus(lifetime)),
            None => {
                fields
                    .insert("expires_in".into(), "must be a whole number of days or hours, such as 30d or 12h".into());
                None
            }
        },
        (None, Some(text)) => match Timestamp::parse_rfc3339(text) {
            Some(at) if at > now && at <= now.plus(MAX_LIFETIME) => Some(at),
            _ => {
                fields.insert("expires_at".into(), "must be an RFC 3339 time in the next ten years".into());
                None
            }
        },
        (None, None) => None,
    };
    if !fields.is_empty() {
        return Err(ApiError::fields(fields));
    }
    Ok(NewApiKey { name, scopes, expires_at })
}

pub(crate) async fn create_api_key(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let new = validate(body.into_inner(), state.clock.now())?;
    let created = state.auth.create_api_key(caller.0, new, client.0).await?;
    let key = &created.key;
    Ok(no_store(StatusCode::CREATED).json(serde_json::json!({
        "api_key": created.secret.as_str(),
        "id": key.id.to_string(),
        "name": key.name,
        "prefix": key.prefix,
        "scopes": key.scopes,
        "expires_at": key.expires_at.map(Timestamp::to_rfc3339),
        "created_at": key.created_at.to_rfc3339(),
    })))
}

pub(crate) async fn list_api_keys(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let keys = state.auth.list_api_keys(caller.0.user_id).await?;
    Ok(HttpResponse::Ok().json(api_keys_body(&keys)))
}

pub(crate) async fn revoke_api_key(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    let key = ApiKeyId::parse(&path.id).ok_or(ApiError::NotFound)?;
    state.auth.revoke_api_key(&caller.0, key, client.0).await?;
    Ok(message("api_key_revoked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_takes_days_or_hours_only() {
        assert_eq!(parse_expires_in("30d"), Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_expires_in("12h"), Some(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_expires_in("3650d"), Some(MAX_LIFETIME));
        for bad in ["", "d", "0d", "07d", "30", "30m", "-1d", "1.5d", "3651d", "30 d", "ten d", "1é", "é", "1dé", "１d"]
        {
            assert_eq!(parse_expires_in(bad), None, "{bad:?}");
        }
    }
}
