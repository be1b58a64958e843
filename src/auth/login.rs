//! Register, login and refresh: how an account comes to hold tokens.

use crate::account::{ProjectId, User};
use crate::hashing::Password;
use crate::shards::{CreateUser, RotateRefresh, ShardError};
use crate::token::refresh::RefreshSecret;

use super::audit::kind;
use super::outcome::{LoginOutcome, Registered, TokenGrant, lock_key};
use super::{AuthError, AuthService, ClientInfo};

/// A validated registration.
#[derive(Debug)]
pub struct Registration {
    pub project: ProjectId,
    pub email: String,
    pub username: Option<String>,
    pub name: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
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

impl AuthService {
    /// Whether `project` has its first user.
    pub async fn setup_complete(&self, project: &ProjectId) -> Result<bool, AuthError> {
        Ok(self.store.has_users(project).await?)
    }

    /// Creates the account; signs it in, or, when the project requires
    /// email verification, mails the code and waits for `register/verify`.
    pub async fn register(&self, registration: Registration, client: ClientInfo) -> Result<Registered, AuthError> {
        let Registration { project, email, username, name, first_name, last_name, company, password } = registration;
        let settings = self.settings(&project);
        // Closed registration still lets a fresh install make its first
        // user, the superadmin (initial setup, seed 003); other projects
        // get their users from their admins.
        if !settings.allow_registration
            && (project.as_str() != ProjectId::DEFAULT || self.store.has_users(&project).await?)
        {
            return Err(AuthError::Forbidden);
        }
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
        let user = User {
            username,
            first_name,
            last_name,
            company,
            ..User::fresh(project.clone(), email.clone(), name, Some(password_hash), now)
        };
        let user = self.shards.ask(&(project, email), CreateUser { user }).await?;
        tracing::info!(target: "security", event = "user_registered", user_id = %user.id, role = user.role.as_str(), "user registered");
        self.audit(kind::USER_REGISTERED, &user.project, Some(user.id), &client, None).await;
        if settings.require_email_verification {
            self.send_verification(&user).await?;
            return Ok(Registered::VerificationRequired);
        }
        Ok(Registered::Signed(Box::new(self.start_session(user, client).await?)))
    }

    pub async fn login(&self, request: LoginRequest, client: ClientInfo) -> Result<LoginOutcome, AuthError> {
        let LoginRequest { project, identifier, password, totp_code } = request;
        // Under a flood, the excess is refused here, before a store read or a shard visit.
        self.hashing.admit()?;
        let (user, name) = match &identifier {
            LoginIdentifier::Email(email) => (self.store.find_user_by_email(&project, email).await?, email),
            LoginIdentifier::Username(name) => (self.store.find_user_by_username(&project, name).await?, name),
        };
        let lock = lock_key(user.as_ref(), &project, name);
        // Reserved before hashing: however many logins race, at most the
        // threshold of wrong passwords is checked per lock.
        if let Err(e) = self.reserve_attempt(&lock, &project).await {
            self.count_login(&project, "locked");
            return Err(e);
        }
        let stored_hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let verified = self.verify_reserved(&lock, password, stored_hash).await?;
        let known = user.as_ref().map(|u| u.id);
        let Some(user) = user.filter(|_| verified) else {
            self.count_login(&project, "failure");
            tracing::info!(target: "security", event = "login_failed", "login failed");
            self.record_failure(&lock, &project).await?;
            self.audit(kind::LOGIN_FAILED, &project, known, &client, Some("password")).await;
            return Err(AuthError::InvalidCredentials);
        };
        if user.disabled {
            self.count_login(&project, "disabled");
            self.release_attempt(&lock).await?;
            return Err(AuthError::AccountDisabled);
        }
        if self.settings(&project).require_email_verification && user.email_verified_at.is_none() {
            self.count_login(&project, "unverified");
            self.release_attempt(&lock).await?;
            return Err(AuthError::EmailNotVerified);
        }
        if user.two_factor_enabled {
            // The right password does not clear the failures: the code still has to be right.
            self.release_attempt(&lock).await?;
            let Some(code) = totp_code else {
                self.count_login(&project, "two_factor_required");
                return Ok(self.issue_challenge(user.id));
            };
            self.pass_second_factor(&user, &code, &client).await?;
        }
        self.count_login(&project, "success");
        tracing::info!(target: "security", event = "login_succeeded", user_id = %user.id, "login succeeded");
        self.audit(kind::LOGIN_SUCCEEDED, &user.project, Some(user.id), &client, Some("password")).await;
        Ok(LoginOutcome::Signed(Box::new(self.start_session(user, client).await?)))
    }

    /// Exchanges a refresh token of `project` per API.md's rotation and
    /// grace rules; a token of another project is unknown here.
    pub async fn refresh(
        &self,
        project: &ProjectId,
        presented: &str,
        client: ClientInfo,
    ) -> Result<TokenGrant, AuthError> {
        let secret = RefreshSecret::parse(presented).ok_or(AuthError::InvalidRefreshToken)?;
        let record = self.store.find_refresh_token(&secret.digest()).await?.ok_or(AuthError::InvalidRefreshToken)?;
        if &record.project != project {
            return Err(AuthError::InvalidRefreshToken);
        }
        let settings = self.settings(project);
        let rotate =
            RotateRefresh { secret, grace: settings.refresh_reuse_grace(), refresh_ttl: settings.refresh_ttl() };
        let exchange = match self.shards.ask(&record.user_id, rotate).await {
            Ok(exchange) => exchange,
            Err(ShardError::RefreshReused(session)) => {
                self.feed.revoke_session(session).await;
                tracing::warn!(target: "security", event = "refresh_token_reused", user_id = %record.user_id, session_id = %session, "refresh token reused; session revoked");
                let detail = format!("session={session}");
                self.audit(kind::REFRESH_TOKEN_REUSED, project, Some(record.user_id), &client, Some(&detail)).await;
                return Err(AuthError::RefreshTokenReused);
            }
            Err(e) => return Err(e.into()),
        };
        let user = self.store.find_user(record.user_id).await?.ok_or(AuthError::InvalidRefreshToken)?;
        if user.disabled {
            return Err(AuthError::AccountDisabled);
        }
        let ttl = settings.access_ttl();
        let access_token = self.signer.mint(&user, &exchange.session, self.clock.now(), ttl)?;
        Ok(TokenGrant {
            access_token,
            expires_in: ttl,
            refresh_token: exchange.successor.token(),
            user,
            session: exchange.session,
        })
    }
}
