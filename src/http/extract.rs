//! Extractors: JSON body limits and errors, the project a route serves,
//! the authenticated caller (bound to that project), and the client's
//! address and user agent.

use std::future::{Ready, ready};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use ipnet::IpNet;

use super::{ApiError, AppState};
use crate::account::ProjectId;
use crate::auth::{ClientInfo, SessionCaller};
use crate::projects::{self, ProjectSettings, ProjectView};
use crate::token::VerifiedAccess;

/// The path segment naming the project of `/api/v1/projects/{project_id}/auth/...`.
pub const PROJECT_PARAM: &str = "project_id";

/// The largest request body accepted anywhere.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The longest bearer token considered; anything longer is not ours.
const MAX_TOKEN_BYTES: usize = 4096;
/// User agents are stored for the sessions list; longer ones are cut.
const MAX_USER_AGENT_CHARS: usize = 512;

/// JSON bodies: at most 64 KiB, `application/json` required, and every
/// failure in API.md's shape.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().limit(MAX_BODY_BYTES).error_handler(|err, _req| ApiError::from(&err).into())
}

pub fn payload_config() -> web::PayloadConfig {
    web::PayloadConfig::new(MAX_BODY_BYTES)
}

/// The client's address: the socket peer, unless the peer is a trusted
/// proxy; then the rightmost `X-Forwarded-For` entry that is not itself a
/// trusted proxy (entries further left are client-controlled).
pub fn client_ip(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(forwarded.into_iter().rev().find(|ip| !is_trusted(ip)).unwrap_or(peer))
}

fn state(req: &HttpRequest) -> Result<&web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>().ok_or_else(|| ApiError::internal("app state missing"))
}

/// Who sent the request: address and user agent.
#[derive(Clone)]
pub struct Client(pub ClientInfo);

impl FromRequest for Client {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let info = state(req).map(|state| ClientInfo {
            ip: client_ip(req, &state.trusted_proxies),
            user_agent: req
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .map(|ua| ua.chars().take(MAX_USER_AGENT_CHARS).collect()),
        });
        ready(info.map(Client))
    }
}

impl Client {
    /// The address rate limits are keyed by (unspecified if unknown).
    pub fn ip(&self) -> IpAddr {
        self.0.ip.unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }
}

/// The credential a request presents: its bearer token, else the first of
/// the API-key headers it has (`PORTCULLIS_API_KEY_HEADERS`, `X-API-Key` by default),
/// as raw bytes (the cache is keyed by them; they are checked to be text
/// only when verified for the first time).
pub fn presented_credential(req: &HttpRequest) -> Result<&[u8], ApiError> {
    let credential = match req.headers().get(header::AUTHORIZATION) {
        Some(value) => {
            let value = value.as_bytes();
            match value.get(..7) {
                Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
                // Another scheme (Basic, Digest...) names no credential of ours.
                _ if value.contains(&b' ') => return Err(ApiError::Unauthorized),
                _ => return Err(ApiError::InvalidToken),
            }
        }
        None => {
            let named = |name: &header::HeaderName| req.headers().get(name);
            let found = match req.app_data::<web::Data<AppState>>() {
                Some(state) => state.api_key_headers.iter().find_map(named),
                None => named(&API_KEY_HEADER),
            };
            found.ok_or(ApiError::Unauthorized)?.as_bytes().trim_ascii()
        }
    };
    if credential.is_empty() || credential.len() > MAX_TOKEN_BYTES {
        return Err(ApiError::InvalidToken);
    }
    Ok(credential)
}

/// The API-key header when the app's settings are not at hand (unit tests).
const API_KEY_HEADER: header::HeaderName = header::HeaderName::from_static("x-api-key");

/// The live project the route serves: `{project_id}` of
/// `/api/v1/projects/{project_id}/auth/...`, else `default`. Unknown,
/// disabled or deleted: 404 `not_found`. Read from the node's directory,
/// never the store.
fn route_project(req: &HttpRequest, state: &AppState) -> Result<Arc<ProjectView>, ApiError> {
    let id = req.match_info().get(PROJECT_PARAM).unwrap_or(ProjectId::DEFAULT);
    if !projects::valid_id(id) {
        return Err(ApiError::NotFound);
    }
    state.projects.live(&ProjectId(id.to_owned())).ok_or(ApiError::NotFound)
}

/// The live project a request's route serves, if there is one (for
/// middleware; handlers take `RouteProject`).
pub fn project_of(req: &HttpRequest) -> Option<Arc<ProjectView>> {
    state(req).and_then(|state| route_project(req, state)).ok()
}

/// The project the route serves, with its settings in force.
pub struct RouteProject(pub Arc<ProjectView>);

impl RouteProject {
    pub fn id(&self) -> &ProjectId {
        &self.0.project.id
    }

    pub fn settings(&self) -> &ProjectSettings {
        &self.0.settings
    }

    /// The project's shortest password, in characters.
    pub fn password_min_chars(&self) -> usize {
        usize::try_from(self.0.settings.password_min_length).unwrap_or(usize::MAX)
    }
}

impl FromRequest for RouteProject {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(state(req).and_then(|state| route_project(req, state)).map(RouteProject))
    }
}

/// Verifies the request's credential for `project`: a credential of
/// another project is not valid here.
async fn verify(
    state: web::Data<AppState>,
    project: Result<Arc<ProjectView>, ApiError>,
    credential: Result<Vec<u8>, ApiError>,
) -> Result<Arc<VerifiedAccess>, ApiError> {
    let project = project?;
    let access = state.gate.check(&credential?).await?;
    if access.project != project.project.id {
        return Err(ApiError::InvalidToken);
    }
    Ok(access)
}

type Verifying<T> = Pin<Box<dyn std::future::Future<Output = Result<T, ApiError>>>>;

fn verifying(req: &HttpRequest) -> Verifying<Arc<VerifiedAccess>> {
    let credential = presented_credential(req).map(<[u8]>::to_vec);
    let project = state(req).and_then(|s| route_project(req, s));
    let state = state(req).cloned();
    Box::pin(async move { verify(state?, project, credential).await })
}

/// The `{id}` of a route's path, whatever else the path names.
#[derive(serde::Deserialize)]
pub struct PathId {
    pub id: String,
}

/// A caller holding a valid access token or API key (routes marked *key ok*).
pub struct Caller(pub Arc<VerifiedAccess>);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Verifying<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let access = verifying(req);
        Box::pin(async move { access.await.map(Caller) })
    }
}

/// A caller signed in with an access token of one of its sessions. A valid
/// API key is refused with 403: keys cannot act as a signed-in user here.
pub struct Authenticated(pub SessionCaller);

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Verifying<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let access = verifying(req);
        Box::pin(async move {
            let access = access.await?;
            let session_id = access.session_id().ok_or(ApiError::Forbidden)?;
            let project = access.project.clone();
            Ok(Authenticated(SessionCaller { user_id: access.user_id, session_id, project }))
        })
    }
}
