//! The flows themselves, one method each.

use crate::account::{ProjectId, RefreshRecord, Session, SessionId, User, UserId};
use crate::hashing::Password;
use crate::shards::{Command, LockKey, UserChange};
use crate::telemetry::names;
use crate::token::refresh::RefreshSecret;

use super::codes::Registered;
use super::second_factor::LoginOutcome;
use super::{AuthError, AuthService, ClientInfo, SessionCaller, TokenGrant};

/// A validated registration.
#[derive(Debug)]
pub struct Registration {
    pub project: ProjectId,
    pub email: String,
    pub username: Option<String>,
    pub name: String,
    pub company: Option<String>,
    pub password: Password,
}

/// How the account is named at login.
#[derive(Debug, Clone)]
pub enum LoginIdentifier {
    Email(String),
    Username(String),
}

#[derive(Debug)]
pub struct LoginRequest {
    pub project: ProjectId,
    pub identifier: LoginIdentifier,
    pub password: Password,
    /// A TOTP or backup code sent along, for accounts with 2FA on.
    pub totp_code: Option<String>,
}

/// A validated profile change (`None`: leave as is).
#[derive(Debug, Default)]
pub struct ProfileChange {
    pub name: Option<String>,
    pub username: Option<Option<String>>,
    pub company: Option<Option<String>>,
}

pub(super) fn login_outcome(outcome: &'static str) {
    metrics::counter!(names::LOGINS, "outcome" => outcome).increment(1);
}

impl AuthService {
    /// Whether the default project has its first user.
    pub async fn setup_complete(&self) -> Result<bool, AuthError> {
        Ok(self.store.has_users(&ProjectId::default_project()).await?)
    }

    /// Creates the account; signs it in, or, when the project requires
    /// email verification, mails the code and waits for `register/verify`.
    pub async fn register(&self, registration: Registration, client: ClientInfo) -> Result<Registered, AuthError> {
        let Registration { project, email, username, name, company, password } = registration;
        self.hashing.admit()?;
        // Spare the hashing pool for addresses that are plainly taken; the
        // shard and the store still decide races.
        if self.store.find_user_by_email(&project, &email).await?.is_some() {
            return Err(AuthError::EmailTaken);
        }
        if let Some(username) = &username
            && self.store.find_user_by_username(&project, username).await?.is_some()
        {
            return Err(AuthError::UsernameTaken);
        }
        let password_hash = self.hashing.hash(password).await?;
        let now = self.clock.now();
        let user =
            User { username, company, ..User::fresh(project.clone(), email.clone(), name, Some(password_hash), now) };
        let user = self.shards.ask(&(project, email), |reply| Command::CreateUser { user, reply }).await?;
        tracing::info!(target: "security", event = "user_registered", user_id = %user.id, role = user.role.as_str(), "user registered");
        if self.policy.require_email_verification {
            self.send_verification(&user).await?;
            return Ok(Registered::VerificationRequired);
        }
        Ok(Registered::Signed(Box::new(self.start_session(user, client).await?)))
    }

    pub async fn login(&self, request: LoginRequest, client: ClientInfo) -> Result<LoginOutcome, AuthError> {
        let LoginRequest { project, identifier, password, totp_code } = request;
        // Under a flood, the excess is refused here, before a store read or a shard visit.
        self.hashing.admit()?;
        let (user, lock_name) = match &identifier {
            LoginIdentifier::Email(email) => (self.store.find_user_by_email(&project, email).await?, email),
            LoginIdentifier::Username(name) => (self.store.find_user_by_username(&project, name).await?, name),
        };
        // Failures of an existing account count against it however it is
        // named; unknown names are counted (and locked) the same way.
        let lock = match &user {
            Some(user) => LockKey::Account(user.id),
            None => LockKey::Unknown(project.clone(), lock_name.clone()),
        };
        if let Err(e) = self.ask_lock(&lock, |key, reply| Command::CheckLock { key, reply }).await {
            login_outcome("locked");
            return Err(e);
        }
        let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let verified = self.hashing.verify(password, stored_hash).await?;
        let Some(user) = user.filter(|_| verified) else {
            login_outcome("failure");
            tracing::info!(target: "security", event = "login_failed", "login failed");
            self.ask_lock(&lock, |key, reply| Command::RecordFailure { key, reply }).await?;
            return Err(AuthError::InvalidCredentials);
        };
        if user.disabled {
            login_outcome("disabled");
            return Err(AuthError::AccountDisabled);
        }
        if self.policy.require_email_verification && user.email_verified_at.is_none() {
            login_outcome("unverified");
            return Err(AuthError::EmailNotVerified);
        }
        if user.two_factor_enabled {
            let Some(code) = totp_code else {
                login_outcome("two_factor_required");
                return Ok(self.issue_challenge(user.id));
            };
            self.pass_second_factor(&user, &code, &client).await?;
        }
        login_outcome("success");
        tracing::info!(target: "security", event = "login_succeeded", user_id = %user.id, "login succeeded");
        Ok(LoginOutcome::Signed(Box::new(self.start_session(user, client).await?)))
    }

    /// Sends a lockout command to the shard owning `key`.
    pub(super) async fn ask_lock(
        &self,
        key: &LockKey,
        make: impl FnOnce(LockKey, crate::shards::Reply<()>) -> Command,
    ) -> Result<(), AuthError> {
        let owned = key.clone();
        let result = match key {
            LockKey::Account(id) => self.shards.ask(id, |reply| make(owned, reply)).await,
            LockKey::Unknown(project, name) => self.shards.ask(&(project, name), |reply| make(owned, reply)).await,
        };
        Ok(result?)
    }

    /// Creates a session with its first refresh token and mints the access token.
    pub(super) async fn start_session(&self, user: User, client: ClientInfo) -> Result<TokenGrant, AuthError> {
        let now = self.clock.now();
        let ip = client.ip.map(|ip| ip.to_string());
        let session = Session::begin(&user, client.user_agent, ip, now, now.plus(self.policy.refresh_ttl));
        let secret = RefreshSecret::generate();
        let refresh = RefreshRecord::live(&session, secret.digest(), now, session.expires_at);
        let key = LockKey::Account(user.id);
        let stored = session.clone();
        self.shards.ask(&user.id, |reply| Command::StartSession { key, session: stored, refresh, reply }).await?;
        let access_token = self.signer.mint(&user, &session, now)?;
        Ok(TokenGrant { access_token, expires_in: self.signer.ttl(), refresh_token: secret.token(), user, session })
    }

    /// Exchanges a refresh token per API.md's rotation and grace rules.
    pub async fn refresh(&self, presented: &str) -> Result<TokenGrant, AuthError> {
        let secret = RefreshSecret::parse(presented).ok_or(AuthError::InvalidRefreshToken)?;
        let record = self.store.find_refresh_token(&secret.digest()).await?.ok_or(AuthError::InvalidRefreshToken)?;
        let grace = self.policy.refresh_reuse_grace;
        let exchanged = self.shards.ask(&record.user_id, |reply| Command::RotateRefresh { secret, grace, reply }).await;
        let exchange = match exchanged {
            Ok(exchange) => exchange,
            Err(crate::shards::ShardError::RefreshReused(session)) => {
                self.gate.invalidate_session(session, self.clock.now());
                self.feed.publish_session(session).await;
                tracing::warn!(target: "security", event = "refresh_token_reused", user_id = %record.user_id, session_id = %session, "refresh token reused; session revoked");
                return Err(AuthError::RefreshTokenReused);
            }
            Err(e) => return Err(e.into()),
        };
        let user = self.store.find_user(record.user_id).await?.ok_or(AuthError::InvalidRefreshToken)?;
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        let access_token = self.signer.mint(&user, &exchange.session, self.clock.now())?;
        Ok(TokenGrant {
            access_token,
            expires_in: self.signer.ttl(),
            refresh_token: exchange.successor.token(),
            user,
            session: exchange.session,
        })
    }

    /// Revokes the caller's session: its refresh token and access tokens.
    pub async fn logout(&self, caller: SessionCaller) -> Result<(), AuthError> {
        self.revoke_session(caller.user_id, caller.session_id).await
    }

    /// Revokes one of the caller's sessions; `NotFound` if it is not theirs.
    pub async fn revoke_session(&self, user: UserId, session: SessionId) -> Result<(), AuthError> {
        let revoked = self.shards.ask(&user, |reply| Command::RevokeSession { user, session, reply }).await?;
        if !revoked {
            return Err(AuthError::NotFound);
        }
        self.gate.invalidate_session(session, self.clock.now());
        self.feed.publish_session(session).await;
        tracing::info!(target: "security", event = "session_revoked", user_id = %user, session_id = %session, "session revoked");
        Ok(())
    }

    /// Revokes every session of the caller but the current one; returns how many.
    pub async fn revoke_other_sessions(&self, caller: SessionCaller) -> Result<usize, AuthError> {
        let (user, keep) = (caller.user_id, Some(caller.session_id));
        let revoked = self.shards.ask(&user, |reply| Command::RevokeSessions { user, keep, reply }).await?;
        let now = self.clock.now();
        for session in &revoked {
            self.gate.invalidate_session(*session, now);
            self.feed.publish_session(*session).await;
        }
        Ok(revoked.len())
    }

    pub async fn me(&self, user: UserId) -> Result<User, AuthError> {
        let user = self.store.find_user(user).await?.ok_or(AuthError::NotFound)?;
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        Ok(user)
    }

    pub async fn update_profile(&self, user: UserId, change: ProfileChange) -> Result<User, AuthError> {
        let change = UserChange {
            name: change.name,
            username: change.username,
            company: change.company,
            ..UserChange::default()
        };
        Ok(self.shards.ask(&user, |reply| Command::UpdateUser { user, change, reply }).await?)
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
    ) -> Result<(), AuthError> {
        let user = self.me(caller.user_id).await?;
        if !self.hashing.verify(current, user.password_hash.clone()).await? {
            tracing::info!(target: "security", event = "password_change_refused", user_id = %user.id, "wrong current password");
            return Err(AuthError::InvalidCredentials);
        }
        let password_hash = self.hashing.hash(new).await?;
        let mut revoked = self.revoke_other_sessions(caller).await?;
        let id = user.id;
        let change = UserChange { password_hash: Some(password_hash), ..UserChange::default() };
        self.shards.ask(&id, |reply| Command::UpdateUser { user: id, change, reply }).await?;
        revoked += self.revoke_other_sessions(caller).await?;
        tracing::info!(target: "security", event = "password_changed", user_id = %id, revoked_sessions = revoked, "password changed");
        Ok(())
    }

    /// Disables (or enables) an account. Disabling revokes every session and
    /// makes every credential of the user, API keys included, fail at once.
    pub async fn set_disabled(&self, user: UserId, disabled: bool) -> Result<User, AuthError> {
        let change = UserChange { disabled: Some(disabled), ..UserChange::default() };
        let updated = self.shards.ask(&user, |reply| Command::UpdateUser { user, change, reply }).await?;
        if disabled {
            self.gate.invalidate_user(user, self.clock.now());
            self.feed.publish_user(user).await;
            self.revoke_all_sessions(user).await?;
            tracing::warn!(target: "security", event = "account_disabled", user_id = %user, "account disabled");
        }
        Ok(updated)
    }

    /// Revokes every session of `user` on every node; returns how many.
    pub(super) async fn revoke_all_sessions(&self, user: UserId) -> Result<usize, AuthError> {
        let revoked = self.shards.ask(&user, |reply| Command::RevokeSessions { user, keep: None, reply }).await?;
        let now = self.clock.now();
        for session in &revoked {
            self.gate.invalidate_session(*session, now);
            self.feed.publish_session(*session).await;
        }
        Ok(revoked.len())
    }

    /// The caller's live sessions, oldest first.
    pub async fn list_sessions(&self, user: UserId) -> Result<Vec<Session>, AuthError> {
        Ok(self.store.list_sessions(user, self.clock.now()).await?)
    }
}
