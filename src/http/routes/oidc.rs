//! `/auth/google` and `/auth/oidc/{provider}`: sign-in with an ID token of
//! one of the project's OpenID Connect providers.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::rate_limit;
use crate::http::extract::{Client, RouteProject};
use crate::http::validate::Check;
use crate::http::view::login_response;
use crate::http::{ApiError, AppState};
use crate::oidc::provider::valid_name;
use crate::ratelimit::LimitedRoute;

/// The longest ID token or nonce taken.
const MAX_ID_TOKEN_BYTES: usize = 16 * 1024;
const MAX_NONCE_BYTES: usize = 512;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/google", web::post().to(google)).route("/oidc/{provider}", web::post().to(oidc));
}

#[derive(Deserialize)]
struct IdTokenBody {
    id_token: Option<String>,
    nonce: Option<String>,
}

async fn google(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<IdTokenBody>,
) -> Result<HttpResponse, ApiError> {
    sign_in(&state, &project, "google", client, body.into_inner()).await
}

async fn oidc(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    provider: web::Path<(String,)>,
    body: web::Json<IdTokenBody>,
) -> Result<HttpResponse, ApiError> {
    let provider = provider.into_inner().0;
    if !valid_name(&provider) {
        return Err(ApiError::NotFound);
    }
    sign_in(&state, &project, &provider, client, body.into_inner()).await
}

async fn sign_in(
    state: &AppState,
    project: &RouteProject,
    provider: &str,
    client: Client,
    body: IdTokenBody,
) -> Result<HttpResponse, ApiError> {
    rate_limit(state, project, LimitedRoute::Login, &client)?;
    let mut check = Check::default();
    let id_token = check.required("id_token", &body.id_token);
    if id_token.is_some_and(|t| t.len() > MAX_ID_TOKEN_BYTES) {
        check.problem("id_token", "must be at most 16384 bytes");
    }
    let nonce = body.nonce.as_deref().filter(|n| !n.is_empty());
    if nonce.is_some_and(|n| n.len() > MAX_NONCE_BYTES) {
        check.problem("nonce", "must be at most 512 bytes");
    }
    let id_token = check.finish(id_token)?;
    let outcome = state.auth.oidc_login(project.id(), provider, id_token, nonce, client.0).await?;
    Ok(login_response(&outcome))
}
