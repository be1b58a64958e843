//! One-time email codes: `otp/send` (alias `send-code`), `otp/login` (alias
//! `verify-code`), `reset-password` and `register/verify`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::rate_limit;
use crate::account::CodePurpose;
use crate::http::extract::{Client, RouteProject};
use crate::http::validate::{Check, CodeBody};
use crate::http::view::{login_response, message_body};
use crate::http::{ApiError, AppState};
use crate::ratelimit::LimitedRoute;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/otp/send", web::post().to(send))
        .route("/send-code", web::post().to(send_code))
        .route("/otp/login", web::post().to(login))
        .route("/verify-code", web::post().to(login))
        .route("/reset-password", web::post().to(reset))
        .route("/register/verify", web::post().to(verify_registration));
}

#[derive(Deserialize)]
struct SendBody {
    email: Option<String>,
    purpose: Option<String>,
    /// `send-code` (seed 003): how to send it; only `email` is known.
    method: Option<String>,
}

/// `otp/send`: `purpose` is required.
async fn send(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<SendBody>,
) -> Result<HttpResponse, ApiError> {
    send_for(&state, &project, client, &body, None).await
}

/// `send-code` (seed 003's spelling): without `purpose` it is a login code.
async fn send_code(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<SendBody>,
) -> Result<HttpResponse, ApiError> {
    send_for(&state, &project, client, &body, Some(CodePurpose::Login)).await
}

async fn send_for(
    state: &AppState,
    project: &RouteProject,
    client: Client,
    body: &SendBody,
    default_purpose: Option<CodePurpose>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(state, project, LimitedRoute::Otp, &client)?;
    let mut check = Check::default();
    let email = check.email("email", &body.email);
    let purpose = match (&body.purpose, default_purpose) {
        (None, Some(purpose)) => Some(purpose),
        (given, _) => check
            .required("purpose", given)
            .and_then(|p| check.rule("purpose", CodePurpose::parse(p).ok_or("must be login, reset or verify"))),
    };
    if body.method.as_deref().is_some_and(|m| m != "email") {
        check.problem("method", "must be email");
    }
    let (email, purpose) = check.finish(email.zip(purpose))?;
    state.auth.send_code(project.id().clone(), email, purpose).await?;
    Ok(HttpResponse::build(StatusCode::ACCEPTED).json(message_body("code_sent", serde_json::Value::Null)))
}

async fn login(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Otp, &client)?;
    let (email, code) = body.email_and_code()?;
    let outcome = state.auth.code_login(project.id().clone(), email, &code, client.0).await?;
    Ok(login_response(&outcome))
}

async fn verify_registration(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<CodeBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Otp, &client)?;
    let (email, code) = body.email_and_code()?;
    let outcome = state.auth.verify_registration(project.id().clone(), email, &code, client.0).await?;
    Ok(login_response(&outcome))
}

#[derive(Deserialize)]
struct ResetBody {
    email: Option<String>,
    code: Option<String>,
    new_password: Option<String>,
}

async fn reset(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<ResetBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Reset, &client)?;
    let mut check = Check::default();
    let email = check.email("email", &body.email);
    let code = check.code("code", &body.code);
    let password = check.password("new_password", &body.new_password, project.password_min_chars());
    let ((email, code), password) = check.finish(email.zip(code).zip(password))?;
    let revoked_api_keys = state.auth.reset_password(project.id().clone(), email, &code, password, client.0).await?;
    Ok(HttpResponse::Ok()
        .json(message_body("password_reset", serde_json::json!({ "revoked_api_keys": revoked_api_keys }))))
}
