//! The admin API's flows: `projects` (list, create, read, change, delete),
//! `users` (a project's users: list, read, change, delete) and
//! `audit_log` (the audit log, filtered and paged) and `overview` (the
//! figures an operator glances at).
//!
//! Every call takes an [`Admin`], which only `acting_admin` makes: the
//! caller's role read from the store on each request (a token's `role`
//! claim may be older than a demotion), an admin or superadmin of the
//! `default` project, enabled, or `Forbidden`. Admin actions are audit
//! events in the `default` project's log, naming the admin and what changed.

mod audit_log;
mod overview;
mod projects;
mod users;

pub use audit_log::{AuditFilter, AuditPage};
pub use overview::Overview;
pub use projects::{NewProject, ProjectChange};
pub use users::{UserChangeByAdmin, UserPage};

use std::sync::Arc;

use crate::account::{ProjectId, Role, User, UserId};
use crate::projects::ProjectView;

use super::{AuthError, AuthService, ClientInfo};

/// A cursor that is not one of the list it is used on.
const CURSOR_REFUSED: AuthError = AuthError::Invalid("cursor", "is not a cursor of this list");

/// An admin or superadmin of the `default` project, as stored when the
/// request began: only `acting_admin` makes one, and every admin flow
/// takes one.
#[derive(Debug, Clone)]
pub struct Admin(User);

impl Admin {
    pub fn id(&self) -> UserId {
        self.0.id
    }

    pub fn role(&self) -> Role {
        self.0.role
    }
}

impl AuthService {
    /// The caller, if it may use the admin API now (`Forbidden` otherwise).
    pub async fn acting_admin(&self, caller: UserId) -> Result<Admin, AuthError> {
        let user = self.store.find_user(caller).await?.ok_or(AuthError::Forbidden)?;
        let admin = matches!(user.role, Role::Admin | Role::Superadmin);
        if !admin || user.disabled || user.project.as_str() != ProjectId::DEFAULT {
            return Err(AuthError::Forbidden);
        }
        Ok(Admin(user))
    }

    /// An opaque cursor of the list `list` (its kind and scope, such as
    /// `users\0mobile`) resuming after `after`: sealed, so a client can
    /// neither forge one nor use one on another list.
    fn seal_cursor(&self, list: &str, after: &[u8]) -> String {
        crate::token::b64url(&self.vault.seal(list.as_bytes(), after))
    }

    /// What a cursor of `list` resumes after (as `seal_cursor` was given it).
    fn open_cursor(&self, list: &str, cursor: &str) -> Result<Vec<u8>, AuthError> {
        let sealed = crate::token::b64url_decode(cursor).ok_or(CURSOR_REFUSED)?;
        let plain = self.vault.open_sealed(list.as_bytes(), &sealed).ok_or(CURSOR_REFUSED)?;
        Ok(plain.to_vec())
    }

    /// A project the admin API may look into (disabled ones too), unless it
    /// is unknown or deleted.
    fn admin_project(&self, id: &ProjectId) -> Result<Arc<ProjectView>, AuthError> {
        self.projects.get(id).filter(|view| !view.project.deleted).ok_or(AuthError::NotFound)
    }

    /// An admin action in the `default` project's log, naming the admin.
    async fn audit_admin(&self, admin: &Admin, kind: &'static str, client: &ClientInfo, detail: &str) {
        self.audit(kind, &admin.0.project, Some(admin.id()), client, Some(detail.trim_end())).await;
    }
}
