//! `/admin/projects`: list, create, read, change, delete projects, and
//! `/admin/projects/{id}/users`: a project's users (paged list, read,
//! change, delete). Session tokens of an admin or superadmin of the
//! `default` project (the flow checks the role as stored now, before the
//! body); an API key is refused with 403. `/admin/audit-log`: the audit
//! log, filtered and paged. `/admin/overview`: a project's figures.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::account::{AuditEvent, ProjectId, Role, User, UserId};
use crate::auth::{AuditFilter, NewProject, Overview, ProjectChange, UserChangeByAdmin, UserPage};
use crate::http::extract::{Authenticated, Client, PathId};
use crate::http::validate::{Check, present};
use crate::http::view::{UserView, api_keys_body, message, no_store, passkeys_body, sessions_body};
use crate::http::{ApiError, AppState};
use crate::projects::{self, ProjectSettings, ProjectView, SettingsPatch};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/projects").route(web::get().to(list)).route(web::post().to(create)))
        .service(
            web::resource("/projects/{id}")
                .route(web::get().to(get))
                .route(web::patch().to(update))
                .route(web::delete().to(delete)),
        )
        .service(web::resource("/projects/{id}/users").route(web::get().to(list_users)))
        .service(web::resource("/audit-log").route(web::get().to(audit_log)))
        .service(web::resource("/overview").route(web::get().to(overview)))
        .service(
            web::resource("/projects/{id}/users/{uid}")
                .route(web::get().to(get_user))
                .route(web::patch().to(update_user))
                .route(web::delete().to(delete_user)),
        )
        .service(web::resource("/projects/{id}/users/{uid}/sessions").route(web::get().to(user_sessions)))
        .service(web::resource("/projects/{id}/users/{uid}/api-keys").route(web::get().to(user_api_keys)))
        .service(web::resource("/projects/{id}/users/{uid}/passkeys").route(web::get().to(user_passkeys)));
}

/// A page size of `limit` when none is asked for, and the largest one.
const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 200;
/// The longest cursor considered.
const MAX_CURSOR_LEN: usize = 256;

/// A user as the admin API shows it: API.md's user object, with its
/// project and whether it is disabled.
#[derive(Serialize)]
struct AdminUserBody<'a> {
    #[serde(flatten)]
    user: UserView,
    project: &'a str,
    disabled: bool,
}

impl<'a> From<&'a User> for AdminUserBody<'a> {
    fn from(user: &'a User) -> Self {
        AdminUserBody { user: UserView::from(user), project: user.project.as_str(), disabled: user.disabled }
    }
}

#[derive(Deserialize)]
struct UserPath {
    id: String,
    uid: String,
}

impl UserPath {
    /// The project and user named; ids that cannot exist are 404.
    fn ids(&self) -> Result<(ProjectId, UserId), ApiError> {
        Ok((project_id(self.id.clone())?, UserId::parse(&self.uid).ok_or(ApiError::NotFound)?))
    }
}

#[derive(Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<String>,
}

#[derive(Deserialize)]
struct UsersQuery {
    /// The one user with this address, instead of the whole list.
    email: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

impl PageQuery {
    /// The page size, 1 to `MAX_PAGE` (default `DEFAULT_PAGE`).
    fn limit(&self) -> Result<usize, &'static str> {
        match self.limit.as_deref() {
            None => Ok(DEFAULT_PAGE),
            Some(text) => match text.parse::<usize>() {
                Ok(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
                _ => Err("must be a whole number from 1 to 200"),
            },
        }
    }

    /// The cursor given, if any, checked for length only (its seal is the flow's).
    fn cursor(&self) -> Result<Option<&str>, &'static str> {
        match self.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(c) if c.len() > MAX_CURSOR_LEN => Err("is not a cursor of this list"),
            other => Ok(other),
        }
    }
}

#[derive(Deserialize)]
struct UserUpdateBody {
    role: Option<String>,
    disabled: Option<bool>,
    must_reset_password: Option<bool>,
}

/// API.md's project object; `settings` are those in force (the project's
/// own, else the node's defaults).
#[derive(Serialize)]
struct ProjectBody<'a> {
    id: &'a str,
    name: &'a str,
    environment: &'a str,
    description: Option<&'a str>,
    enabled: bool,
    created_at: String,
    updated_at: String,
    settings: &'a ProjectSettings,
}

impl<'a> From<&'a ProjectView> for ProjectBody<'a> {
    fn from(view: &'a ProjectView) -> Self {
        let p = &view.project;
        ProjectBody {
            id: p.id.as_str(),
            name: &p.name,
            environment: &p.environment,
            description: p.description.as_deref(),
            enabled: p.enabled,
            created_at: p.created_at.to_rfc3339(),
            updated_at: p.updated_at.to_rfc3339(),
            settings: &view.settings,
        }
    }
}

fn project_answer(status: StatusCode, view: &ProjectView) -> HttpResponse {
    no_store(status).json(ProjectBody::from(view))
}

#[derive(Deserialize)]
pub(crate) struct CreateBody {
    name: Option<String>,
    id: Option<String>,
    environment: Option<String>,
    description: Option<String>,
    settings: Option<Value>,
}

#[derive(Deserialize)]
struct UpdateBody {
    name: Option<String>,
    environment: Option<String>,
    #[serde(default, deserialize_with = "present")]
    description: Option<Option<String>>,
    enabled: Option<bool>,
    settings: Option<Value>,
}

fn name(check: &mut Check, value: &str) -> Option<String> {
    let name = projects::clean_text(value, projects::MAX_NAME_CHARS).filter(|n| !n.is_empty());
    if name.is_none() {
        check.problem("name", &format!("must be 1 to {} printable characters", projects::MAX_NAME_CHARS));
    }
    name
}

fn environment(check: &mut Check, value: &str) -> Option<String> {
    let ok = projects::valid_environment(value);
    if !ok {
        let rule = format!("must be 1 to {} of a-z, 0-9, - and _", projects::MAX_ENVIRONMENT_LEN);
        check.problem("environment", &rule);
    }
    ok.then(|| value.to_owned())
}

/// An empty description is no description.
fn description(check: &mut Check, value: &str) -> Option<Option<String>> {
    match projects::clean_text(value, projects::MAX_DESCRIPTION_CHARS) {
        Some(text) => Some(Some(text).filter(|t| !t.is_empty())),
        None => {
            let rule = format!("must be at most {} printable characters", projects::MAX_DESCRIPTION_CHARS);
            check.problem("description", &rule);
            None
        }
    }
}

/// Settings problems are named `settings.<key>`.
fn settings(check: &mut Check, value: Option<&Value>) -> SettingsPatch {
    match value.map(SettingsPatch::parse) {
        None => SettingsPatch::default(),
        Some(Ok(patch)) => patch,
        Some(Err(problems)) => {
            for (key, problem) in problems {
                let field = if key.is_empty() { "settings".to_owned() } else { format!("settings.{key}") };
                check.problem(&field, &problem);
            }
            SettingsPatch::default()
        }
    }
}

fn validate_create(body: CreateBody) -> Result<NewProject, ApiError> {
    let mut check = Check::default();
    let name = match body.name.as_deref() {
        Some(value) => name(&mut check, value),
        None => {
            check.problem("name", "is required");
            None
        }
    };
    let id = body.id.as_deref().and_then(|id| {
        let ok = projects::valid_id(id);
        if !ok {
            let rule = format!("must be 1 to {} of a-z, 0-9, - and _", projects::MAX_ID_LEN);
            check.problem("id", &rule);
        }
        ok.then(|| ProjectId(id.to_owned()))
    });
    let environment = body.environment.as_deref().and_then(|v| environment(&mut check, v));
    let description = body.description.as_deref().and_then(|v| description(&mut check, v)).flatten();
    let settings = settings(&mut check, body.settings.as_ref());
    let new = NewProject { name: name.unwrap_or_default(), id, environment, description, settings };
    check.finish(Some(new))
}

fn validate_update(body: UpdateBody) -> Result<ProjectChange, ApiError> {
    let mut check = Check::default();
    let change = ProjectChange {
        name: body.name.as_deref().and_then(|v| name(&mut check, v)),
        environment: body.environment.as_deref().and_then(|v| environment(&mut check, v)),
        description: match body.description {
            Some(Some(text)) => description(&mut check, &text),
            Some(None) => Some(None),
            None => None,
        },
        enabled: body.enabled,
        settings: settings(&mut check, body.settings.as_ref()),
    };
    check.finish(Some(change))
}

/// Ids that cannot be a project's answer 404 at once.
fn project_id(id: String) -> Result<ProjectId, ApiError> {
    if projects::valid_id(&id) { Ok(ProjectId(id)) } else { Err(ApiError::NotFound) }
}

pub(crate) async fn list(state: web::Data<AppState>, caller: Authenticated) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let all = state.auth.list_projects(&admin);
    let projects: Vec<ProjectBody<'_>> = all.iter().map(|view| ProjectBody::from(view.as_ref())).collect();
    Ok(no_store(StatusCode::OK).json(serde_json::json!({ "projects": projects })))
}

pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let new = validate_create(body.into_inner())?;
    let view = state.auth.create_project(&admin, new, client.0).await?;
    Ok(project_answer(StatusCode::CREATED, &view))
}

async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let view = state.auth.get_project(&admin, &project_id(path.into_inner().id)?)?;
    Ok(project_answer(StatusCode::OK, &view))
}

async fn update(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    path: web::Path<PathId>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let id = project_id(path.into_inner().id)?;
    let change = validate_update(body.into_inner())?;
    let view = state.auth.update_project(&admin, &id, change, client.0).await?;
    Ok(project_answer(StatusCode::OK, &view))
}

async fn delete(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    path: web::Path<PathId>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    state.auth.delete_project(&admin, &project_id(path.into_inner().id)?, client.0).await?;
    Ok(message("project_deleted"))
}

async fn list_users(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<PathId>,
    query: web::Query<UsersQuery>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let project = project_id(path.into_inner().id)?;
    let limit = query.page.limit().map_err(|problem| ApiError::field("limit", problem))?;
    let cursor = query.page.cursor().map_err(|problem| ApiError::field("cursor", problem))?;
    let page = match query.email.as_deref() {
        // A search by address is one page: the user, or none.
        Some(_) if cursor.is_some() => return Err(ApiError::field("cursor", "a search by email has one page")),
        Some(email) => {
            let found = state.auth.find_project_user_by_email(&admin, &project, email).await?;
            UserPage { users: found.into_iter().collect(), next_cursor: None }
        }
        None => state.auth.list_project_users(&admin, &project, cursor, limit).await?,
    };
    let users: Vec<AdminUserBody<'_>> = page.users.iter().map(AdminUserBody::from).collect();
    let next_cursor = page.next_cursor;
    Ok(no_store(StatusCode::OK).json(serde_json::json!({ "users": users, "next_cursor": next_cursor })))
}

async fn get_user(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let user = read_by_admin(&state, &caller, &path).await?;
    Ok(no_store(StatusCode::OK).json(AdminUserBody::from(&user)))
}

async fn update_user(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    path: web::Path<UserPath>,
    body: web::Json<UserUpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let (project, id) = path.ids()?;
    let role = match body.role.as_deref() {
        Some(text) => {
            Some(Role::parse(text).ok_or_else(|| ApiError::field("role", "must be user, admin or superadmin"))?)
        }
        None => None,
    };
    let change = UserChangeByAdmin { role, disabled: body.disabled, must_reset_password: body.must_reset_password };
    let user = state.auth.change_project_user(&admin, &project, id, change, client.0).await?;
    Ok(no_store(StatusCode::OK).json(AdminUserBody::from(&user)))
}

/// The project's user `path` names, for an admin to read what it holds.
async fn read_by_admin(state: &AppState, caller: &Authenticated, path: &UserPath) -> Result<User, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let (project, id) = path.ids()?;
    Ok(state.auth.project_user(&admin, &project, id).await?)
}

/// A user's live sessions, as the user lists them (none is the admin's own).
async fn user_sessions(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let user = read_by_admin(&state, &caller, &path).await?;
    let sessions = state.auth.list_sessions(user.id).await?;
    Ok(no_store(StatusCode::OK).json(sessions_body(&sessions, None)))
}

/// A user's API keys, as the user lists them (never a secret).
async fn user_api_keys(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let user = read_by_admin(&state, &caller, &path).await?;
    let keys = state.auth.list_api_keys(user.id).await?;
    Ok(no_store(StatusCode::OK).json(api_keys_body(&keys)))
}

/// A user's passkeys, as the user lists them.
async fn user_passkeys(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let user = read_by_admin(&state, &caller, &path).await?;
    let passkeys = state.auth.list_passkeys(user.id).await?;
    Ok(no_store(StatusCode::OK).json(passkeys_body(&passkeys)))
}

async fn delete_user(
    state: web::Data<AppState>,
    caller: Authenticated,
    client: Client,
    path: web::Path<UserPath>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let (project, id) = path.ids()?;
    state.auth.delete_project_user(&admin, &project, id, client.0).await?;
    Ok(message("user_deleted"))
}

#[derive(Deserialize)]
struct AuditQueryParams {
    project: Option<String>,
    user: Option<String>,
    kind: Option<String>,
    #[serde(flatten)]
    page: PageQuery,
}

/// An audit event as the log shows it.
#[derive(Serialize)]
struct AuditEventBody<'a> {
    id: String,
    at: String,
    project: &'a str,
    user_id: Option<String>,
    kind: &'a str,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
    detail: Option<&'a str>,
    /// How many times it happened within its minute (repeated failures).
    count: u32,
}

impl<'a> From<&'a AuditEvent> for AuditEventBody<'a> {
    fn from(e: &'a AuditEvent) -> Self {
        AuditEventBody {
            id: e.id.to_string(),
            at: e.at.to_rfc3339(),
            project: e.project.as_str(),
            user_id: e.user_id.map(|id| id.to_string()),
            kind: &e.kind,
            ip: e.ip.as_deref(),
            user_agent: e.user_agent.as_deref(),
            detail: e.detail.as_deref(),
            count: e.count,
        }
    }
}

/// A `project` query parameter: the `default` project when absent or empty.
fn project_param(check: &mut Check, value: Option<&str>) -> ProjectId {
    let project = value.filter(|p| !p.is_empty()).unwrap_or(ProjectId::DEFAULT);
    if !projects::valid_id(project) {
        check.problem("project", "is not a project id");
    }
    ProjectId(project.to_owned())
}

/// The longest `kind` filter considered.
const MAX_KIND_LEN: usize = 64;

fn audit_filter(params: &AuditQueryParams) -> Result<AuditFilter, ApiError> {
    let mut check = Check::default();
    let project = project_param(&mut check, params.project.as_deref());
    let user = match params.user.as_deref().filter(|u| !u.is_empty()) {
        Some(text) => {
            let parsed = UserId::parse(text);
            if parsed.is_none() {
                check.problem("user", "is not a user id");
            }
            parsed
        }
        None => None,
    };
    let kind = params.kind.clone().filter(|k| !k.is_empty());
    if kind
        .as_deref()
        .is_some_and(|k| k.len() > MAX_KIND_LEN || !k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
    {
        check.problem("kind", "must be a snake_case event kind");
    }
    let limit = check.rule("limit", params.page.limit());
    let cursor = check.rule("cursor", params.page.cursor()).flatten();
    let filter =
        AuditFilter { project, user, kind, cursor: cursor.map(str::to_owned), limit: limit.unwrap_or(DEFAULT_PAGE) };
    check.finish(Some(filter))
}

async fn audit_log(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<AuditQueryParams>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let page = state.auth.audit_log(&admin, audit_filter(&query)?).await?;
    let events: Vec<AuditEventBody<'_>> = page.events.iter().map(AuditEventBody::from).collect();
    Ok(no_store(StatusCode::OK).json(serde_json::json!({ "events": events, "next_cursor": page.next_cursor })))
}

#[derive(Deserialize)]
struct OverviewQuery {
    project: Option<String>,
}

#[derive(Serialize)]
struct OverviewBody<'a> {
    project: &'a str,
    at: String,
    accounts: u64,
    logins_last_hour: u64,
    failed_logins_last_hour: u64,
    active_sessions: u64,
    active_sessions_estimated: bool,
}

impl<'a> From<&'a Overview> for OverviewBody<'a> {
    fn from(o: &'a Overview) -> Self {
        OverviewBody {
            project: o.project.as_str(),
            at: o.at.to_rfc3339(),
            accounts: o.accounts,
            logins_last_hour: o.logins.succeeded,
            failed_logins_last_hour: o.logins.failed,
            active_sessions: o.active_sessions,
            active_sessions_estimated: o.sessions_estimated,
        }
    }
}

async fn overview(
    state: web::Data<AppState>,
    caller: Authenticated,
    query: web::Query<OverviewQuery>,
) -> Result<HttpResponse, ApiError> {
    let admin = state.auth.acting_admin(caller.0.user_id).await?;
    let mut check = Check::default();
    let project = project_param(&mut check, query.project.as_deref());
    let project = check.finish(Some(project))?;
    let overview = state.auth.overview(&admin, &project).await?;
    Ok(no_store(StatusCode::OK).json(OverviewBody::from(&overview)))
}
