//! `/auth/2fa`: TOTP status, setup, enable, disable, backup codes, and the
//! second step of a login (`2fa/verify`).

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::rate_limit;
use crate::http::extract::{Authenticated, Client, RouteProject};
use crate::http::validate::{Check, CodeBody};
use crate::http::view::{message, message_body, no_store, token_response};
use crate::http::{ApiError, AppState};
use crate::ratelimit::LimitedRoute;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/2fa/status", web::get().to(status))
        .route("/2fa/setup", web::post().to(setup))
        .route("/2fa/enable", web::post().to(enable))
        .route("/2fa/disable", web::post().to(disable))
        .route("/2fa/backup-codes/regenerate", web::post().to(regenerate))
        .route("/2fa/verify", web::post().to(verify));
}

async fn status(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let status = state.auth.two_factor_status(caller.0.user_id).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "enabled": status.enabled,
        "backup_codes_remaining": status.backup_codes_remaining,
    })))
}

async fn setup(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let setup = state.auth.two_factor_setup(caller.0.user_id).await?;
    Ok(no_store(actix_web::http::StatusCode::OK)
        .json(serde_json::json!({ "secret": setup.secret, "qr_code_url": setup.otpauth_url })))
}

pub(crate) async fn enable(
    state: web::Data<AppState>,
    project: RouteProject,
    caller: Authenticated,
    client: Client,
    body: web::Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Secret, &client)?;
    let code = body.code()?;
    let backup_codes = state.auth.two_factor_enable(caller.0.user_id, &code, client.0).await?;
    Ok(no_store(actix_web::http::StatusCode::OK)
        .json(message_body("2fa_enabled", serde_json::json!({ "backup_codes": backup_codes }))))
}

/// A current second factor and the password (`disable`, `regenerate`);
/// whether the password may be left out is the flow's to say.
#[derive(Deserialize)]
struct PasswordCodeBody {
    password: Option<String>,
    #[serde(alias = "totpCode", alias = "totp_code")]
    code: Option<String>,
}

impl PasswordCodeBody {
    fn checked(&self) -> Result<(Option<crate::hashing::Password>, String), ApiError> {
        let mut check = Check::default();
        let password = match self.password {
            Some(_) => check.password("password", &self.password, 1).map(Some),
            None => Some(None),
        };
        let code = check.code("code", &self.code);
        check.finish(password.zip(code))
    }
}

async fn disable(
    state: web::Data<AppState>,
    project: RouteProject,
    caller: Authenticated,
    client: Client,
    body: web::Json<PasswordCodeBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Secret, &client)?;
    let (password, code) = body.checked()?;
    state.auth.two_factor_disable(caller.0, password, &code, client.0).await?;
    Ok(message("2fa_disabled"))
}

async fn regenerate(
    state: web::Data<AppState>,
    project: RouteProject,
    caller: Authenticated,
    client: Client,
    body: web::Json<PasswordCodeBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Secret, &client)?;
    let (password, code) = body.checked()?;
    let backup_codes = state.auth.regenerate_backup_codes(caller.0.user_id, password, &code, client.0).await?;
    Ok(no_store(actix_web::http::StatusCode::OK).json(serde_json::json!({ "backup_codes": backup_codes })))
}

#[derive(Deserialize)]
struct VerifyBody {
    #[serde(alias = "challengeToken")]
    challenge_token: Option<String>,
    #[serde(alias = "totpCode", alias = "totp_code")]
    code: Option<String>,
}

async fn verify(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<VerifyBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::TwoFactor, &client)?;
    let mut check = Check::default();
    let challenge = check.required("challenge_token", &body.challenge_token);
    if challenge.is_some_and(|c| c.len() > 256) {
        check.problem("challenge_token", "is too long");
    }
    let code = check.code("code", &body.code);
    let (challenge, code) = check.finish(challenge.zip(code))?;
    let grant = state.auth.verify_two_factor(project.id(), challenge, &code, client.0).await?;
    Ok(token_response(actix_web::http::StatusCode::OK, &grant, true))
}
