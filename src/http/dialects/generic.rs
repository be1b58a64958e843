//! Seed `004` (the generic integration): `/auth/keys`, the API-key routes
//! in its shapes: `POST` answers 201 `{keyId, apiKey, name, createdAt}`,
//! `GET` a bare array `[{keyId, name, createdAt, lastUsed}]`, `DELETE` 204
//! with no body, and an unknown key 404 "API key not found". The keys are
//! the core's: the same flows, limits, audit events and revocation.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use crate::account::{ApiKey, ApiKeyId};
use crate::auth::NewApiKey;
use crate::clock::Timestamp;
use crate::http::extract::{Authenticated, Client, PathId};
use crate::http::validate::{Check, optional_body};
use crate::http::view::no_store;
use crate::http::{ApiError, AppState};
use crate::projects::clean_text;

/// The name of a key created without one.
const DEFAULT_NAME: &str = "API key";
const MAX_NAME_CHARS: usize = 100;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/keys").route(web::post().to(create)).route(web::get().to(list)))
        .service(web::resource("/keys/{id}").route(web::delete().to(remove)));
}

#[derive(Deserialize)]
struct CreateBody {
    name: Option<String>,
}

/// A key as seed 004 lists it (never its secret).
fn view(key: &ApiKey) -> serde_json::Value {
    serde_json::json!({
        "keyId": key.id.to_string(),
        "name": key.name,
        "createdAt": key.created_at.to_rfc3339(),
        "lastUsed": key.last_used_at.map(Timestamp::to_rfc3339),
    })
}

async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let body: Option<CreateBody> = optional_body(&body)?;
    let mut check = Check::default();
    let name = match body.and_then(|b| b.name).filter(|n| !n.trim().is_empty()) {
        Some(name) => {
            let clean = clean_text(&name, MAX_NAME_CHARS);
            if clean.is_none() {
                check.problem("name", "must be 1 to 100 printable characters");
            }
            clean
        }
        None => Some(DEFAULT_NAME.to_owned()),
    };
    let name = check.finish(name)?;
    let new = NewApiKey { name, scopes: Vec::new(), expires_at: None };
    let created = state.auth.create_api_key(caller.0, new, client.0).await?;
    let key = &created.key;
    Ok(no_store(StatusCode::CREATED).json(serde_json::json!({
        "keyId": key.id.to_string(),
        "apiKey": created.secret.as_str(),
        "name": key.name,
        "createdAt": key.created_at.to_rfc3339(),
    })))
}

async fn list(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let keys = state.auth.list_api_keys(caller.0.user_id).await?;
    Ok(HttpResponse::Ok().json(keys.iter().map(view).collect::<Vec<_>>()))
}

async fn remove(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    let revoked = match ApiKeyId::parse(&path.id) {
        Some(key) => state.auth.revoke_api_key(&caller.0, key, client.0).await.map_err(ApiError::from),
        None => Err(ApiError::NotFound),
    };
    match revoked {
        Ok(()) => Ok(HttpResponse::NoContent().finish()),
        Err(ApiError::NotFound) => Ok(ApiError::NotFound.response_saying("API key not found")),
        Err(e) => Err(e),
    }
}
