//! Seed `002` (Cloudflare Auth Service): `/api/auth/{project_id}/register |
//! login | me | refresh` and `/api/admin/login`, `/api/admin/projects`.
//! Every answer is wrapped (`{success, data}` / `{success: false, error,
//! code}`, see `envelope`), fields are camelCase, and admin routes take
//! `X-Admin-Session`. Each handler is the core handler of the same job with
//! its answer reshaped.

use actix_web::body::to_bytes;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{Error, HttpResponse, web};
use serde_json::{Value, json};

use super::envelope;
use crate::auth::SessionCaller;
use crate::http::extract::{Authenticated, Caller, Client, RouteProject};
use crate::http::middleware::deadline;
use crate::http::routes::{admin, auth};
use crate::http::{ApiError, AppState};

const ADMIN_SESSION: HeaderName = HeaderName::from_static("x-admin-session");

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope(&format!("/api/auth/{{{}}}", crate::http::extract::PROJECT_PARAM))
            .wrap(from_fn(envelope))
            .wrap(from_fn(deadline))
            .route("/register", web::post().to(register))
            .route("/login", web::post().to(login))
            .route("/me", web::get().to(me))
            .route("/refresh", web::post().to(refresh)),
    )
    .service(
        web::scope("/api/admin")
            .wrap(from_fn(envelope))
            .wrap(from_fn(admin_session))
            .wrap(from_fn(deadline))
            .route("/login", web::post().to(admin_login))
            .service(
                web::resource("/projects").route(web::get().to(list_projects)).route(web::post().to(create_project)),
            ),
    );
}

/// `X-Admin-Session: <sessionToken>` is the admin's bearer token.
async fn admin_session(
    mut req: ServiceRequest,
    next: Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<ServiceResponse<impl actix_web::body::MessageBody>, Error> {
    if !req.headers().contains_key(header::AUTHORIZATION)
        && let Some(session) = req.headers().get(&ADMIN_SESSION).cloned()
    {
        let mut bearer = b"Bearer ".to_vec();
        bearer.extend_from_slice(session.as_bytes());
        if let Ok(value) = HeaderValue::from_bytes(&bearer) {
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
    }
    next.call(req).await
}

/// The JSON body of a core answer, its status and `Cache-Control`.
async fn body_of(response: HttpResponse) -> Result<(StatusCode, Option<HeaderValue>, Value), ApiError> {
    let status = response.status();
    let cache = response.headers().get(header::CACHE_CONTROL).cloned();
    let bytes = to_bytes(response.into_body()).await.map_err(|_| ApiError::internal("reading an answer"))?;
    let body =
        if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).map_err(ApiError::internal)? };
    Ok((status, cache, body))
}

fn answer(status: StatusCode, cache: Option<HeaderValue>, data: Value) -> HttpResponse {
    let mut response = HttpResponse::build(status);
    if let Some(cache) = cache {
        response.insert_header((header::CACHE_CONTROL, cache));
    }
    response.json(data)
}

/// The user as seed 002 shows it.
fn user(core: &Value) -> Value {
    json!({
        "id": core["id"],
        "email": core["email"],
        "displayName": core["name"],
        "emailVerified": !core["email_verified_at"].is_null(),
        "role": core["role"],
        "createdAt": core["created_at"],
    })
}

/// A sign-in's answer: `{user, accessToken, refreshToken}`, or the
/// second-factor challenge (or anything else) in camelCase.
fn signed_in(core: &Value) -> Value {
    if core.get("token").is_some() {
        let mut data = json!({
            "accessToken": core["token"],
            "refreshToken": core["refresh_token"],
            "expiresIn": core["expires_in"],
            "tokenType": core["token_type"],
        });
        if let Some(u) = core.get("user") {
            data["user"] = user(u);
        }
        return data;
    }
    camel_case(core)
}

/// Keys of an object in camelCase (`challenge_token` → `challengeToken`).
fn camel_case(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let mut key = String::with_capacity(k.len());
                    let mut upper = false;
                    for c in k.chars() {
                        if c == '_' {
                            upper = true;
                        } else if upper {
                            key.extend(c.to_uppercase());
                            upper = false;
                        } else {
                            key.push(c);
                        }
                    }
                    (key, camel_case(v))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

async fn reshaped(core: HttpResponse, shape: fn(&Value) -> Value) -> Result<HttpResponse, ApiError> {
    let (status, cache, body) = body_of(core).await?;
    Ok(answer(status, cache, shape(&body)))
}

async fn register(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<auth::RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    reshaped(auth::register(state, project, client, body).await?, signed_in).await
}

async fn login(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<auth::LoginBody>,
) -> Result<HttpResponse, ApiError> {
    reshaped(auth::login(state, project, client, body).await?, signed_in).await
}

async fn refresh(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<auth::RefreshBody>,
) -> Result<HttpResponse, ApiError> {
    reshaped(auth::refresh(state, project, client, body).await?, signed_in).await
}

async fn me(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    reshaped(auth::me(state, caller).await?, user).await
}

/// `POST /api/admin/login {email, password}`: a password login of an admin
/// or superadmin of the default project; its access token is the
/// `sessionToken`. Anyone else's session is ended at once: 403.
async fn admin_login(
    state: web::Data<AppState>,
    project: RouteProject,
    client: Client,
    body: web::Json<auth::LoginBody>,
) -> Result<HttpResponse, ApiError> {
    let (status, cache, body) = body_of(auth::login(state.clone(), project, client.clone(), body).await?).await?;
    let Some(token) = body["token"].as_str() else {
        // Two-factor is on: the admin sends `totpCode` with the password.
        return Err(ApiError::InvalidCode);
    };
    let access = state.gate.check(token).await?;
    let is_admin = matches!(body["user"]["role"].as_str(), Some("admin" | "superadmin"));
    if !is_admin {
        if let Some(session_id) = access.session_id() {
            let caller = SessionCaller { user_id: access.user_id, session_id, project: access.project.clone() };
            state.auth.logout(&caller, client.0).await?;
        }
        return Err(ApiError::Forbidden);
    }
    let u = &body["user"];
    let admin = json!({"id": u["id"], "email": u["email"], "displayName": u["name"], "role": u["role"]});
    Ok(answer(status, cache, json!({ "sessionToken": token, "admin": admin })))
}

/// A project as seed 002 shows it.
fn project(core: &Value) -> Value {
    json!({
        "id": core["id"],
        "name": core["name"],
        "environment": core["environment"],
        "description": core["description"],
        "enabled": core["enabled"],
        "createdAt": core["created_at"],
    })
}

async fn list_projects(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    reshaped(admin::list(state, caller).await?, |core| {
        Value::Array(core["projects"].as_array().map(|all| all.iter().map(project).collect()).unwrap_or_default())
    })
    .await
}

async fn create_project(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    body: web::Json<admin::CreateBody>,
) -> Result<HttpResponse, ApiError> {
    reshaped(admin::create(state, caller, client, body).await?, project).await
}
