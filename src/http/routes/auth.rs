//! `/auth`: setup status, register, login, refresh, logout, me, password.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::rate_limit;
use crate::account::{full_name, normalize_email, normalize_username, validate_name, validate_optional_name};
use crate::auth::{LoginIdentifier, LoginRequest, ProfileChange, Registered, Registration};
use crate::http::extract::{Authenticated, Caller, Client, RouteProject};
use crate::http::validate::{Check, code_shape, present};
use crate::http::view::{UserView, login_response, message, message_body, token_response};
use crate::http::{ApiError, AppState};
use crate::ratelimit::LimitedRoute;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/setup-status", web::get().to(setup_status))
        .route("/register", web::post().to(register))
        .route("/login", web::post().to(login))
        .route("/refresh", web::post().to(refresh))
        .route("/logout", web::post().to(logout))
        .service(web::resource("/me").route(web::get().to(me)).route(web::put().to(update_me)))
        .route("/me/password", web::put().to(change_password))
        .route("/me/set-initial-password", web::post().to(set_initial_password));
}

async fn setup_status(state: web::Data<AppState>, project: RouteProject) -> Result<HttpResponse, ApiError> {
    let complete = state.auth.setup_complete(project.id()).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "setup_complete": complete })))
}

#[derive(Deserialize)]
pub(crate) struct RegisterBody {
    email: Option<String>,
    password: Option<String>,
    #[serde(alias = "displayName")]
    name: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    username: Option<String>,
    /// Seed 001 names the organization `tenant_name`.
    #[serde(alias = "tenant_name")]
    company: Option<String>,
}

pub(crate) async fn register(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Register, &client)?;
    let body = body.into_inner();
    let mut check = Check::default();
    let email = check.email("email", &body.email);
    let password = check.password("password", &body.password, project.password_min_chars());
    let optional = |check: &mut Check, field, value: &Option<String>| match value.as_deref() {
        Some(v) => check.rule(field, validate_optional_name(v)).flatten(),
        None => None,
    };
    let first_name = optional(&mut check, "first_name", &body.first_name);
    let last_name = optional(&mut check, "last_name", &body.last_name);
    let company = optional(&mut check, "company", &body.company);
    // Without a name, seed 003's parts make it.
    let name = match (body.name.as_deref(), full_name(first_name.as_deref(), last_name.as_deref())) {
        (None, Some(parts)) => Some(parts),
        (None, None) => {
            check.problem("name", "is required (or first_name and last_name)");
            None
        }
        (Some(name), _) => check.rule("name", validate_name(name)),
    };
    let username = match body.username.as_deref().filter(|u| !u.is_empty()) {
        Some(u) => check.rule("username", normalize_username(u)),
        None => None,
    };
    let ((email, password), name) = check.finish(email.zip(password).zip(name))?;
    let registration =
        Registration { project: project.id().clone(), email, username, name, first_name, last_name, company, password };
    match state.auth.register(registration, client.0).await? {
        Registered::Signed(grant) => Ok(token_response(StatusCode::CREATED, &grant, true)),
        Registered::VerificationRequired => {
            Ok(HttpResponse::Accepted().json(message_body("verification_required", serde_json::Value::Null)))
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct LoginBody {
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(alias = "totpCode")]
    totp_code: Option<String>,
}

pub(crate) async fn login(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<LoginBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Login, &client)?;
    let body = body.into_inner();
    let mut check = Check::default();
    let identifier =
        match (body.email.as_deref().filter(|e| !e.is_empty()), body.username.as_deref().filter(|u| !u.is_empty())) {
            (Some(email), _) => check.rule("email", normalize_email(email)).map(LoginIdentifier::Email),
            (None, Some(username)) => {
                check.rule("username", normalize_username(username)).map(LoginIdentifier::Username)
            }
            (None, None) => {
                check.problem("email", "email or username is required");
                None
            }
        };
    // Any length passes but an oversized one: a too-short password is simply wrong.
    let password = check.password("password", &body.password, 1);
    let totp_code = match body.totp_code.filter(|c| !c.is_empty()) {
        Some(code) => check.rule("totp_code", code_shape(&code)).map(Some),
        None => Some(None),
    };
    let ((identifier, password), totp_code) = check.finish(identifier.zip(password).zip(totp_code))?;
    let request = LoginRequest { project: project.id().clone(), identifier, password, totp_code };
    let outcome = state.auth.login(request, client.0).await?;
    Ok(login_response(&outcome))
}

#[derive(Deserialize)]
pub(crate) struct RefreshBody {
    #[serde(alias = "refreshToken")]
    refresh_token: Option<String>,
}

pub(crate) async fn refresh(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Refresh, &client)?;
    let mut check = Check::default();
    let token = check.required("refresh_token", &body.refresh_token);
    let grant = state.auth.refresh(project.id(), check.finish(token)?, client.0).await?;
    Ok(token_response(StatusCode::OK, &grant, false))
}

async fn logout(state: web::Data<AppState>, caller: Authenticated, client: Client) -> Result<HttpResponse, ApiError> {
    state.auth.logout(&caller.0, client.0).await?;
    Ok(message("logged_out"))
}

/// Key ok: an API key reads its owner.
pub(crate) async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let user = state.auth.me(caller.0.user_id).await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

#[derive(Deserialize)]
struct UpdateMeBody {
    #[serde(default, alias = "displayName", deserialize_with = "present")]
    name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    username: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    company: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    last_name: Option<Option<String>>,
}

async fn update_me(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: web::Json<UpdateMeBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let mut check = Check::default();
    let mut change = ProfileChange::default();
    match body.name {
        Some(Some(name)) => change.name = check.rule("name", validate_name(&name)),
        Some(None) => check.problem("name", "cannot be null"),
        None => {}
    }
    change.username = match body.username {
        Some(Some(u)) if !u.is_empty() => check.rule("username", normalize_username(&u)).map(Some),
        Some(_) => Some(None),
        None => None,
    };
    // A company or part of the name: `null` or "" clears it.
    let mut optional = |field, value: Option<Option<String>>| match value {
        Some(Some(v)) => check.rule(field, validate_optional_name(&v)),
        Some(None) => Some(None),
        None => None,
    };
    change.company = optional("company", body.company);
    change.first_name = optional("first_name", body.first_name);
    change.last_name = optional("last_name", body.last_name);
    let change = check.finish(Some(change))?;
    let user = state.auth.update_profile(caller.0.user_id, change).await?;
    Ok(HttpResponse::Ok().json(UserView::from(&user)))
}

#[derive(Deserialize)]
struct PasswordBody {
    current_password: Option<String>,
    new_password: Option<String>,
}

async fn change_password(
    state: web::Data<AppState>,
    project: RouteProject,
    caller: Authenticated,
    client: Client,
    body: web::Json<PasswordBody>,
) -> Result<HttpResponse, ApiError> {
    rate_limit(&state, &project, LimitedRoute::Secret, &client)?;
    let mut check = Check::default();
    let current = check.password("current_password", &body.current_password, 1);
    let new = check.password("new_password", &body.new_password, project.password_min_chars());
    let (current, new) = check.finish(current.zip(new))?;
    state.auth.change_password(caller.0, current, new, client.0).await?;
    Ok(message("password_changed"))
}

#[derive(Deserialize)]
struct InitialPasswordBody {
    new_password: Option<String>,
}

async fn set_initial_password(
    state: web::Data<AppState>,
    project: RouteProject,
    caller: Authenticated,
    client: Client,
    body: web::Json<InitialPasswordBody>,
) -> Result<HttpResponse, ApiError> {
    let mut check = Check::default();
    let new = check.password("new_password", &body.new_password, project.password_min_chars());
    let new = check.finish(new)?;
    state.auth.set_initial_password(caller.0, new, client.0).await?;
    Ok(message("password_set"))
}
