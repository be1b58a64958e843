//! The signed-in account: reading it, changing its profile and password,
//! its sessions (list, revoke one, revoke the others or all), and disabling
//! it. Every revocation goes through the feed, so it holds on every node.

use crate::account::{Session, SessionId, User, UserId};
use crate::hashing::Password;
use crate::shards::{LockKey, RevokeSession, RevokeSessions, UpdateUser, UserChange};

use super::audit::kind;
use super::{AuthError, AuthService, ClientInfo, SessionCaller};

/// A validated profile change (`None`: leave as is).
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub name: Option<String>,
    pub username: Option<Option<String>>,
    pub company: Option<Option<String>>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
}

impl AuthService {
    /// The caller's account, unless it is gone or disabled.
    pub async fn me(&self, user: UserId) -> Result<User, AuthError> {
        let user = self.store.find_user(user).await?.ok_or(AuthError::NotFound)?;
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        Ok(user)
    }

    pub async fn update_profile(&self, user: UserId, change: ProfileChange) -> Result<User, AuthError> {
        let ProfileChange { name, username, company, first_name, last_name } = change;
        let change = UserChange { name, username, company, first_name, last_name, ..UserChange::default() };
        Ok(self.shards.ask(&user, UpdateUser { user, change }).await?)
    }

    /// The caller's live sessions, oldest first.
    pub async fn list_sessions(&self, user: UserId) -> Result<Vec<Session>, AuthError> {
        Ok(self.store.list_sessions(user, self.clock.now()).await?)
    }

    /// Revokes the caller's session: its refresh token and access tokens.
    pub async fn logout(&self, caller: &SessionCaller, client: ClientInfo) -> Result<(), AuthError> {
        self.end_session(caller, caller.session_id, &client, "logout").await
    }

    /// Revokes one of the caller's sessions; `NotFound` if it is not theirs.
    pub async fn revoke_session(
        &self,
        caller: &SessionCaller,
        session: SessionId,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        self.end_session(caller, session, &client, "revoked").await
    }

    async fn end_session(
        &self,
        caller: &SessionCaller,
        session: SessionId,
        client: &ClientInfo,
        how: &'static str,
    ) -> Result<(), AuthError> {
        let user = caller.user_id;
        if !self.shards.ask(&user, RevokeSession { user, session }).await? {
            return Err(AuthError::NotFound);
        }
        self.feed.revoke_session(session).await;
        tracing::info!(target: "security", event = "session_revoked", user_id = %user, session_id = %session, "session revoked");
        let detail = format!("{how} session={session}");
        self.audit(kind::SESSION_REVOKED, &caller.project, Some(user), client, Some(&detail)).await;
        Ok(())
    }

    /// `DELETE /sessions`: every session of the caller but the current one.
    pub async fn revoke_other_sessions(&self, caller: &SessionCaller, client: ClientInfo) -> Result<usize, AuthError> {
        let revoked = self.revoke_sessions(caller.user_id, Some(caller.session_id)).await?;
        let detail = format!("others count={revoked}");
        self.audit(kind::SESSION_REVOKED, &caller.project, Some(caller.user_id), &client, Some(&detail)).await;
        Ok(revoked)
    }

    /// Revokes every session of `user` but `keep` (all of them with `None`)
    /// on every node; returns how many.
    pub async fn revoke_sessions(&self, user: UserId, keep: Option<SessionId>) -> Result<usize, AuthError> {
        let revoked = self.shards.ask(&user, RevokeSessions { user, keep }).await?;
        for session in &revoked {
            self.feed.revoke_session(*session).await;
        }
        Ok(revoked.len())
    }

    /// Checks the current password, stores the new one, and revokes every
    /// other session.
    ///
    /// Other sessions are revoked before the new hash is stored and again
    /// after: if the store fails between the steps, the old password still
    /// works for a retry and no old session survives a changed password; the
    /// second pass catches a login with the old password that raced the change.
    pub async fn change_password(
        &self,
        caller: SessionCaller,
        current: Password,
        new: Password,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        let user = self.me(caller.user_id).await?;
        // A stolen access token must not make the password guessable: the
        // same lock as login.
        let lock = LockKey::Account(user.id);
        self.reserve_attempt(&lock, &user.project).await?;
        if !self.verify_reserved(&lock, current, user.password_hash.clone()).await? {
            self.record_failure(&lock, &user.project).await?;
            tracing::info!(target: "security", event = "password_change_refused", user_id = %user.id, "wrong current password");
            return Err(AuthError::InvalidCredentials);
        }
        let (id, keep) = (user.id, Some(caller.session_id));
        let revoked = self
            .or_release(&lock, async {
                let password_hash = {
                    let _slot = self.hashing.account_slot(&lock)?;
                    self.hashing.hash(new).await?
                };
                let revoked = self.revoke_sessions(id, keep).await?;
                let change = UserChange { password_hash: Some(password_hash), ..UserChange::default() };
                self.shards.ask(&id, UpdateUser { user: id, change }).await?;
                Ok(revoked + self.revoke_sessions(id, keep).await?)
            })
            .await?;
        self.record_success(&lock).await?;
        tracing::info!(target: "security", event = "password_changed", user_id = %id, revoked_sessions = revoked, "password changed");
        let detail = format!("revoked_sessions={revoked}");
        self.audit(kind::PASSWORD_CHANGED, &user.project, Some(id), &client, Some(&detail)).await;
        Ok(())
    }

    /// Disables (or enables) an account. Disabling revokes every session and
    /// makes every credential of the user, API keys included, fail at once.
    pub async fn set_disabled(&self, user: UserId, disabled: bool) -> Result<User, AuthError> {
        let change = UserChange { disabled: Some(disabled), ..UserChange::default() };
        let updated = self.shards.ask(&user, UpdateUser { user, change }).await?;
        if disabled {
            self.feed.revoke_user(user).await;
            self.revoke_sessions(user, None).await?;
            tracing::warn!(target: "security", event = "account_disabled", user_id = %user, "account disabled");
        }
        Ok(updated)
    }
}
