//! `/auth/sessions`: list, revoke one, revoke all others.

use actix_web::{HttpResponse, web};

use crate::account::SessionId;
use crate::http::extract::{Authenticated, Client, PathId};
use crate::http::view::{message, message_body, sessions_body};
use crate::http::{ApiError, AppState};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/sessions").route(web::get().to(list_sessions)).route(web::delete().to(revoke_other_sessions)),
    )
    .service(web::resource("/sessions/{id}").route(web::delete().to(revoke_session)));
}

async fn list_sessions(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let sessions = state.auth.list_sessions(caller.0.user_id).await?;
    Ok(HttpResponse::Ok().json(sessions_body(&sessions, Some(caller.0.session_id))))
}

async fn revoke_session(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    // An id that cannot exist is answered like another user's: not found.
    let session = SessionId::parse(&path.id).ok_or(ApiError::NotFound)?;
    state.auth.revoke_session(&caller.0, session, client.0).await?;
    Ok(message("session_revoked"))
}

async fn revoke_other_sessions(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
) -> Result<HttpResponse, ApiError> {
    let revoked = state.auth.revoke_other_sessions(&caller.0, client.0).await?;
    Ok(HttpResponse::Ok().json(message_body("sessions_revoked", serde_json::json!({ "revoked": revoked }))))
}
