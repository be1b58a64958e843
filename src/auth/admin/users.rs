//! A project's users: list (paged by an opaque cursor), read, change (role,
//! disabled), delete.
//!
//! Rules: only a superadmin makes or unmakes an admin or superadmin, or
//! acts on one; `superadmin` exists only in the `default` project; the last
//! enabled superadmin cannot be demoted, disabled or deleted
//! (`Conflict::LastSuperadmin`). The enabled superadmins are kept in the
//! `default` project's record and changed at the version read, so two
//! admins racing on two nodes cannot both pass that check.

use crate::account::{CodePurpose, ProjectId, Role, User, UserId, normalize_email};
use crate::shards::{EditUser, UserEdit};

use super::{Admin, CURSOR_REFUSED};
use crate::auth::audit::kind;
use crate::auth::{AuthError, AuthService, ClientInfo, Conflict};

/// One page of a project's users, and where the next begins.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Where the next page begins, when there is more.
    pub next_cursor: Option<String>,
}

/// The list of `project`'s users that its cursors name.
fn users_list(project: &ProjectId) -> String {
    format!("users\0{project}")
}

/// What an admin changes on a user; `None` leaves it.
#[derive(Debug, Clone, Copy, Default)]
pub struct UserChangeByAdmin {
    pub role: Option<Role>,
    pub disabled: Option<bool>,
    /// Asks the user to choose a new password (seed 003's flag: clients
    /// read it; the next password change clears it).
    pub must_reset_password: Option<bool>,
}

fn is_elevated(role: Role) -> bool {
    matches!(role, Role::Admin | Role::Superadmin)
}

impl AuthService {
    /// `limit` users of `project`, in creation order, from `cursor` (a
    /// cursor of this project's list) or the first.
    pub async fn list_project_users(
        &self,
        _admin: &Admin,
        project: &ProjectId,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<UserPage, AuthError> {
        self.admin_project(project)?;
        let list = users_list(project);
        let after = match cursor {
            Some(cursor) => {
                let after = self.open_cursor(&list, cursor)?;
                Some(UserId(uuid::Uuid::from_slice(&after).map_err(|_| CURSOR_REFUSED)?))
            }
            None => None,
        };
        let mut users = self.store.list_users(project, after, limit + 1).await?;
        let more = users.len() > limit;
        users.truncate(limit);
        let next_cursor = users.last().filter(|_| more).map(|last| self.seal_cursor(&list, last.id.0.as_bytes()));
        Ok(UserPage { users, next_cursor })
    }

    /// The user of `project` with this address (compared as sign-in
    /// compares it: trimmed, lowercased, NFC), if there is one.
    pub async fn find_project_user_by_email(
        &self,
        _admin: &Admin,
        project: &ProjectId,
        email: &str,
    ) -> Result<Option<User>, AuthError> {
        self.admin_project(project)?;
        let email = normalize_email(email).map_err(|problem| AuthError::Invalid("email", problem))?;
        Ok(self.store.find_user_by_email(project, &email).await?)
    }

    /// User `id` of `project`; another project's user is not found here.
    pub async fn project_user(&self, _admin: &Admin, project: &ProjectId, id: UserId) -> Result<User, AuthError> {
        self.admin_project(project)?;
        self.store.find_user(id).await?.filter(|u| &u.project == project).ok_or(AuthError::NotFound)
    }

    /// Whether `admin` may act on `target` at all, and set `role` if asked.
    fn may_change(admin: &Admin, target: &User, role: Option<Role>) -> Result<(), AuthError> {
        let superadmin = admin.role() == Role::Superadmin;
        if !superadmin && (is_elevated(target.role) || role.is_some_and(|r| r != target.role)) {
            return Err(AuthError::Forbidden);
        }
        if role == Some(Role::Superadmin) && target.project.as_str() != ProjectId::DEFAULT {
            return Err(AuthError::Invalid("role", "superadmin exists only in the default project"));
        }
        Ok(())
    }

    pub async fn change_project_user(
        &self,
        admin: &Admin,
        project: &ProjectId,
        id: UserId,
        change: UserChangeByAdmin,
        client: ClientInfo,
    ) -> Result<User, AuthError> {
        let target = self.project_user(admin, project, id).await?;
        Self::may_change(admin, &target, change.role)?;
        let role = change.role.unwrap_or(target.role);
        let disabled = change.disabled.unwrap_or(target.disabled);
        let must_reset = change.must_reset_password.unwrap_or(target.must_reset_password);
        let was_counted = target.role == Role::Superadmin && !target.disabled;
        let counted = role == Role::Superadmin && !disabled;
        if was_counted && !counted {
            self.remove_superadmin(id).await?;
        }
        let edit: UserEdit = Box::new(move |u: &mut User| {
            u.role = role;
            u.disabled = disabled;
            u.must_reset_password = must_reset;
            Ok(())
        });
        let updated = self.shards.ask(&id, EditUser { user: id, edit }).await?;
        if counted && !was_counted {
            self.add_superadmin(id).await?;
        }
        if role != target.role || disabled != target.disabled {
            // Cached credentials are checked again, with the role as stored now.
            self.feed.revoke_user(id).await;
        }
        if disabled && !target.disabled {
            self.revoke_sessions(id, None).await?;
        }
        let mut what = Vec::new();
        if role != target.role {
            what.push(format!("role={}", role.as_str()));
        }
        if disabled != target.disabled {
            what.push(format!("disabled={disabled}"));
        }
        if must_reset != target.must_reset_password {
            what.push(format!("must_reset_password={must_reset}"));
        }
        let detail = format!("project={project} user={id} {}", what.join(" "));
        self.audit_admin(admin, kind::USER_CHANGED_BY_ADMIN, &client, &detail).await;
        Ok(updated)
    }

    /// Deletes the account and everything of it: sessions, API keys and
    /// email codes; its credentials stop at once on every node.
    pub async fn delete_project_user(
        &self,
        admin: &Admin,
        project: &ProjectId,
        id: UserId,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        let target = self.project_user(admin, project, id).await?;
        Self::may_change(admin, &target, None)?;
        if target.role == Role::Superadmin && !target.disabled {
            self.remove_superadmin(id).await?;
        }
        self.erase_user(&target).await?;
        let detail = format!("project={project} user={id}");
        self.audit_admin(admin, kind::USER_DELETED_BY_ADMIN, &client, &detail).await;
        tracing::warn!(target: "security", event = "user_deleted", user_id = %id, by = %admin.id(), "account deleted by an admin");
        Ok(())
    }

    /// Deletes `user` with its sessions, API keys and email codes; its
    /// credentials stop at once on every node.
    async fn erase_user(&self, user: &User) -> Result<(), AuthError> {
        let id = user.id;
        self.feed.revoke_user(id).await;
        self.revoke_sessions(id, None).await?;
        self.revoke_api_keys(id).await?;
        for passkey in self.store.list_passkeys(id).await? {
            self.store.delete_passkey(id, passkey.id).await?;
        }
        for identity in self.store.list_identities(id).await? {
            self.store.delete_identity(&identity).await?;
        }
        for purpose in [CodePurpose::Login, CodePurpose::Reset, CodePurpose::Verify] {
            self.store.delete_code(&user.project, purpose, &user.email).await?;
        }
        self.store.delete_user(id).await?;
        Ok(())
    }

    /// Erases up to `batch` accounts of each deleted project (off the
    /// request path, on a timer, and once right after a delete); returns
    /// how many went. Its record stays, so the id stays taken.
    pub async fn purge_deleted_projects(&self, batch: usize) -> Result<usize, AuthError> {
        let mut erased = 0;
        let deleted: Vec<ProjectId> = self
            .projects
            .all()
            .into_iter()
            .filter(|view| view.project.deleted)
            .map(|view| view.project.id.clone())
            .collect();
        for project in deleted {
            for user in self.store.list_users(&project, None, batch).await? {
                self.erase_user(&user).await?;
                erased += 1;
            }
        }
        if erased > 0 {
            tracing::info!(erased, "accounts of deleted projects erased");
        }
        Ok(erased)
    }

    /// Writes the superadmins list that `change` makes of the current one
    /// (read from the users while the record keeps none), at the version
    /// read, retried on a conflict.
    async fn change_superadmins(
        &self,
        change: impl Fn(Vec<UserId>) -> Result<Vec<UserId>, AuthError>,
    ) -> Result<(), AuthError> {
        let default = ProjectId::default_project();
        let kept = self.projects.get(&default).is_some_and(|view| !view.project.superadmins.is_empty());
        let from_users = if kept { Vec::new() } else { self.store.enabled_superadmins(&default).await? };
        self.rewrite_project(&default, |project| {
            let current = if project.superadmins.is_empty() { from_users.clone() } else { project.superadmins.clone() };
            project.superadmins = change(current)?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    /// Takes `id` off the list; refused if it is the last one on it.
    async fn remove_superadmin(&self, id: UserId) -> Result<(), AuthError> {
        self.change_superadmins(|mut listed| {
            listed.retain(|listed| *listed != id);
            if listed.is_empty() { Err(AuthError::Conflict(Conflict::LastSuperadmin)) } else { Ok(listed) }
        })
        .await
    }

    /// Puts `id` on the list (a new or re-enabled superadmin).
    pub(crate) async fn add_superadmin(&self, id: UserId) -> Result<(), AuthError> {
        self.change_superadmins(|mut listed| {
            if !listed.contains(&id) {
                listed.push(id);
            }
            Ok(listed)
        })
        .await
    }
}
