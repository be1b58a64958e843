//! `/auth/passkey`: WebAuthn registration (signed in), sign-in (options
//! with an optional address, then the assertion), and the caller's
//! passkeys (list, rename, remove).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::rate_limit;
use crate::account::{PasskeyId, normalize_email};
use crate::auth::CeremonyOptions;
use crate::http::extract::{Authenticated, Client, PathId, RouteProject};
use crate::http::validate::{Check, optional_body};
use crate::http::view::{PasskeyView, login_response, message, no_store, passkeys_body};
use crate::http::{ApiError, AppState};
use crate::projects::clean_text;
use crate::ratelimit::LimitedRoute;

const MAX_NAME_CHARS: usize = 64;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/passkey/list", web::get().to(list))
        .route("/passkey/register/options", web::post().to(register_options))
        .route("/passkey/register/verify", web::post().to(register_verify))
        .route("/passkey/login/options", web::post().to(login_options))
        .route("/passkey/login/verify", web::post().to(login_verify))
        .service(web::resource("/passkey/{id}").route(web::patch().to(rename)).route(web::delete().to(remove)));
}

/// `{"publicKey": {...}, "challenge_id": "..."}`: never cached.
fn options_response(options: CeremonyOptions) -> HttpResponse {
    no_store(StatusCode::OK).json(serde_json::json!({
        "publicKey": options.public_key,
        "challenge_id": options.challenge_id,
    }))
}

/// An optional passkey name: 1 to 64 printable characters.
fn passkey_name(check: &mut Check, name: Option<&str>) -> Option<String> {
    let name = name.and_then(|n| clean_text(n, MAX_NAME_CHARS)).filter(|n| !n.is_empty());
    if name.is_none() {
        check.problem("name", "must be 1 to 64 printable characters");
    }
    name
}

/// The browser's credential (`PublicKeyCredential.toJSON()`), read as `T`.
fn credential<T: DeserializeOwned>(check: &mut Check, value: Option<Value>) -> Option<T> {
    match value.map(serde_json::from_value) {
        Some(Ok(credential)) => Some(credential),
        Some(Err(_)) => {
            check.problem("credential", "must be a WebAuthn credential (PublicKeyCredential.toJSON())");
            None
        }
        None => {
            check.problem("credential", "is required");
            None
        }
    }
}

async fn list(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let passkeys = state.auth.list_passkeys(caller.0.user_id).await?;
    Ok(HttpResponse::Ok().json(passkeys_body(&passkeys)))
}

async fn register_options(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    Ok(options_response(state.auth.passkey_register_options(&caller.0).await?))
}

#[derive(Deserialize)]
struct RegisterVerifyBody {
    challenge_id: Option<String>,
    name: Option<String>,
    credential: Option<Value>,
}

async fn register_verify(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    body: web::Json<RegisterVerifyBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut check = Check::default();
    let challenge_id = check.required("challenge_id", &body.challenge_id).map(str::to_owned);
    let name = match body.name.as_deref() {
        Some(name) => passkey_name(&mut check, Some(name)).map(Some),
        None => Some(None),
    };
    let credential = credential(&mut check, body.credential);
    let ((challenge_id, name), credential) = check.finish(challenge_id.zip(name).zip(credential))?;
    let passkey = state.auth.passkey_register_verify(&caller.0, &challenge_id, name, &credential, client.0).await?;
    Ok(HttpResponse::Ok().json(PasskeyView::from(&passkey)))
}

#[derive(Deserialize)]
struct LoginOptionsBody {
    email: Option<String>,
}

/// The body is optional: none (or `{}`) asks for a usernameless sign-in.
async fn login_options(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Login, &client)?;
    let body: Option<LoginOptionsBody> = optional_body(&body)?;
    let email = body.and_then(|b| b.email).filter(|e| !e.is_empty());
    let mut check = Check::default();
    let email = match email {
        Some(email) => check.rule("email", normalize_email(&email)).map(Some),
        None => Some(None),
    };
    let email = check.finish(email)?;
    Ok(options_response(state.auth.passkey_login_options(project.id(), email.as_deref()).await?))
}

#[derive(Deserialize)]
struct LoginVerifyBody {
    challenge_id: Option<String>,
    credential: Option<Value>,
}

async fn login_verify(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<LoginVerifyBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Login, &client)?;
    let body = body.into_inner();
    let mut check = Check::default();
    let challenge_id = check.required("challenge_id", &body.challenge_id).map(str::to_owned);
    let credential = credential(&mut check, body.credential);
    let (challenge_id, credential) = check.finish(challenge_id.zip(credential))?;
    let outcome = state.auth.passkey_login_verify(project.id(), &challenge_id, &credential, client.0).await?;
    Ok(login_response(&outcome))
}

#[derive(Deserialize)]
struct RenameBody {
    name: Option<String>,
}

async fn rename(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<PathId>,
    body: web::Json<RenameBody>,
) -> Result<HttpResponse, ApiError> {
    let id = PasskeyId::parse(&path.id).ok_or(ApiError::NotFound)?;
    let mut check = Check::default();
    let name = passkey_name(&mut check, body.name.as_deref());
    let name = check.finish(name)?;
    let passkey = state.auth.rename_passkey(caller.0.user_id, id, name).await?;
    Ok(HttpResponse::Ok().json(PasskeyView::from(&passkey)))
}

async fn remove(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    let id = PasskeyId::parse(&path.id).ok_or(ApiError::NotFound)?;
    state.auth.remove_passkey(&caller.0, id, client.0).await?;
    Ok(message("passkey_removed"))
}
