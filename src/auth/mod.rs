//! The sign-in flows, one file per family:
//! - `login`: setup status, register, login, refresh;
//! - `sessions`: the signed-in account (me, profile, password change), its
//!   sessions (list, revoke) and disabling it;
//! - `second_factor`: TOTP, backup codes and the login challenge;
//! - `codes`: one-time email codes (passwordless sign-in, password reset,
//!   email verification) and the initial password of a passwordless account;
//! - `oidc`: sign-in with a provider's ID token (Google, any OIDC provider);
//! - `passkeys`: WebAuthn registration and sign-in, and managing passkeys;
//! - `api_keys`: create, list, revoke;
//! - `admin`: the admin API (projects);
//! - `audit`: the audit events the flows leave;
//! - `outcome`: what the flows share: how a sign-in ends (`TokenGrant`,
//!   `LoginOutcome`, `Registered`), starting a session, the failed-login
//!   lock, the login counter.
//!
//! Imports run one way: a flow file uses `outcome` and `audit`, never
//! another flow file. All are methods of one [`AuthService`], built once by
//! the app.
//!
//! Owns the order of steps in each flow: password work in the hashing pool,
//! state changes through the user's shard, tokens from the signer, and
//! revocations through the feed. Knows nothing about HTTP; handlers call one
//! method here and map its result. Token checks do not come here: they go
//! to `token::AccessGate` directly.
//!
//! Never: answers differently (in body or in work done) for an unknown
//! account and a wrong password, or hashes a password inside a shard.

mod admin;
mod api_keys;
mod audit;
mod codes;
mod login;
mod oidc;
mod outcome;
mod passkeys;
mod second_factor;
mod sessions;
mod tally;

pub use admin::{Admin, AuditFilter, AuditPage, NewProject, Overview, ProjectChange, UserChangeByAdmin, UserPage};
pub use api_keys::{CreatedApiKey, NewApiKey};
pub use login::{LoginIdentifier, LoginRequest, Registration};
pub use outcome::{LOGIN_OUTCOMES, LoginOutcome, Registered, TokenGrant};
pub use passkeys::{CEREMONY_TTL, CeremonyOptions, MAX_PASSKEYS_PER_USER, RelyingParty};
pub use second_factor::{TwoFactorSetup, TwoFactorStatus};
pub use sessions::ProfileChange;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::account::{ProjectId, SessionId, UserId};
use crate::clock::SharedClock;
use crate::feed::Feed;
use crate::hashing::{HashError, HashingPool};
use crate::mail::Mailer;
use crate::projects::{Directory, ProjectSettings};
use crate::shards::{Declined, ShardError, ShardRouter};
use crate::store::{Store, StoreError, UniqueField};
use crate::token::api_key::ApiKeyHasher;
use crate::token::vault::Vault;
use crate::token::{TokenError, TokenSigner};

/// A cause kept for the log (never shown to clients).
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A wrong password, or an account that does not exist (never told apart).
    #[error("wrong credentials")]
    InvalidCredentials,
    /// Too many failed sign-ins; retry after the duration.
    #[error("locked out for {0:?}")]
    Locked(Duration),
    #[error("email taken")]
    EmailTaken,
    #[error("username taken")]
    UsernameTaken,
    /// A refresh token that is unknown, expired or revoked.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A rotated refresh token came back after the grace window; its session
    /// is revoked.
    #[error("refresh token reused")]
    RefreshTokenReused,
    /// The account exists and the credentials are right, but it is disabled.
    #[error("account disabled")]
    AccountDisabled,
    /// A wrong, used, expired or dead TOTP, backup or email code.
    #[error("invalid code")]
    InvalidCode,
    /// An ID token that does not verify (signature, issuer, audience, times, nonce).
    #[error("invalid ID token")]
    InvalidIdToken,
    /// The provider's keys cannot be fetched now.
    #[error("identity provider unavailable")]
    ProviderUnavailable,
    /// A 2FA challenge token that is not ours, not for this account, or used.
    #[error("invalid challenge")]
    InvalidChallenge,
    #[error("challenge expired")]
    ChallengeExpired,
    /// The project requires a verified address, and this one is not.
    #[error("email not verified")]
    EmailNotVerified,
    /// Two-factor is already on.
    #[error("two-factor already enabled")]
    AlreadyEnabled,
    /// `2fa/enable` with no pending `2fa/setup`.
    #[error("two-factor not set up")]
    TwoFactorNotSetUp,
    /// A two-factor operation on an account with two-factor off.
    #[error("two-factor not enabled")]
    TwoFactorNotEnabled,
    /// `set-initial-password` on an account that has one.
    #[error("password already set")]
    PasswordAlreadySet,
    /// Authenticated, but not allowed to do this.
    #[error("forbidden")]
    Forbidden,
    /// A per-user bound (such as the number of API keys) is reached.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// The session, key or account named is not the caller's, or is gone.
    #[error("not found")]
    NotFound,
    /// A field the flow checks (not its shape: that is the edge's) is not
    /// acceptable: `(field, problem)`.
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, &'static str),
    /// The change would break a rule of what exists (`409`).
    #[error("conflict: {0:?}")]
    Conflict(Conflict),
    /// Password work or a shard is saturated; retry after the duration.
    #[error("overloaded")]
    Overloaded(Duration),
    /// The store cannot take requests now.
    #[error("store unavailable")]
    StoreUnavailable(#[source] StoreError),
    /// Something that should not happen (a broken key, a corrupt record).
    #[error("internal error")]
    Internal(#[source] Cause),
}

/// Why a change was refused as a conflict with what exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    /// A project with this id exists.
    ProjectExists,
    /// The `default` project cannot be deleted or disabled.
    DefaultProject,
    /// The last enabled superadmin cannot be demoted, disabled or deleted.
    LastSuperadmin,
    /// The authenticator's credential is registered already (to any account).
    PasskeyExists,
}

impl AuthError {
    pub fn internal(cause: impl Into<Cause>) -> Self {
        AuthError::Internal(cause.into())
    }
}

/// How long a client refused for load should wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded | HashError::DeadlineExceeded => AuthError::Overloaded(crate::hashing::RETRY_AFTER),
            // One account's share of the pool is taken: that client waits, like a lock.
            HashError::AccountBusy => AuthError::Locked(crate::hashing::RETRY_AFTER),
            HashError::Stopped | HashError::Argon2(_) => AuthError::internal(e),
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(UniqueField::Email) => AuthError::EmailTaken,
            StoreError::AlreadyExists(UniqueField::Username) => AuthError::UsernameTaken,
            StoreError::NotFound => AuthError::NotFound,
            StoreError::Unavailable(_) => AuthError::StoreUnavailable(e),
            StoreError::Conflict | StoreError::Corrupt(_) => AuthError::internal(e),
        }
    }
}

impl From<ShardError> for AuthError {
    fn from(e: ShardError) -> Self {
        match e {
            ShardError::Overloaded | ShardError::Timeout => AuthError::Overloaded(RETRY_AFTER),
            ShardError::Locked(wait) => AuthError::Locked(wait),
            ShardError::InvalidRefresh => AuthError::InvalidRefreshToken,
            ShardError::RefreshReused(_) => AuthError::RefreshTokenReused,
            ShardError::LimitReached(what) => AuthError::LimitReached(what),
            ShardError::Declined(why) => why.into(),
            ShardError::Store(e) => e.into(),
        }
    }
}

impl From<Declined> for AuthError {
    fn from(why: Declined) -> Self {
        match why {
            Declined::AlreadyEnabled => AuthError::AlreadyEnabled,
            Declined::NotSetUp => AuthError::TwoFactorNotSetUp,
            Declined::NotEnabled => AuthError::TwoFactorNotEnabled,
            Declined::PasswordAlreadySet => AuthError::PasswordAlreadySet,
        }
    }
}

/// Minting a token: only a store failure or a broken key can stop it.
impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Store(e) => e.into(),
            other => AuthError::internal(other),
        }
    }
}

/// Who is asking, as far as the request tells.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// A caller signed in with an access token of one of its sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCaller {
    pub user_id: UserId,
    pub session_id: SessionId,
    /// The project of the user (and of the route it came in on).
    pub project: ProjectId,
}

/// The node's knobs of the flows; what a project may set for itself is in
/// its settings (`projects::ProjectSettings`, through the directory).
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// The `default` project's name in mail and as the TOTP issuer (other
    /// projects use their own name).
    pub project_name: String,
    /// How long audit events are kept.
    pub audit_retention: Duration,
}

/// What the flows work with, each built once by the app.
pub struct AuthParts {
    pub store: Arc<dyn Store>,
    pub hashing: HashingPool,
    pub shards: Arc<ShardRouter>,
    pub signer: Arc<TokenSigner>,
    /// Digests of new API keys (the same key the gate checks them with).
    pub key_hasher: ApiKeyHasher,
    pub feed: Arc<Feed>,
    pub vault: Arc<Vault>,
    pub mailer: Mailer,
    pub clock: SharedClock,
    pub policy: AuthPolicy,
    pub projects: Arc<Directory>,
    /// The WebAuthn relying party (the gateway's public URL).
    pub relying_party: RelyingParty,
    /// ID tokens of OpenID Connect providers.
    pub oidc: crate::oidc::Verifier,
}

pub struct AuthService {
    store: Arc<dyn Store>,
    hashing: HashingPool,
    shards: Arc<ShardRouter>,
    signer: Arc<TokenSigner>,
    key_hasher: ApiKeyHasher,
    feed: Arc<Feed>,
    vault: Arc<Vault>,
    mailer: Mailer,
    clock: SharedClock,
    policy: AuthPolicy,
    projects: Arc<Directory>,
    relying_party: RelyingParty,
    oidc: crate::oidc::Verifier,
    /// Repeated failures being counted into one audit event per minute.
    repeats: audit::Repeats,
    /// This node's sign-ins per project and minute, for the overview.
    tallies: tally::LoginTallies,
}

impl AuthService {
    pub fn new(parts: AuthParts) -> Self {
        let AuthParts {
            store,
            hashing,
            shards,
            signer,
            key_hasher,
            feed,
            vault,
            mailer,
            clock,
            policy,
            projects,
            relying_party,
            oidc,
        } = parts;
        let repeats = audit::Repeats::default();
        AuthService {
            store,
            hashing,
            shards,
            signer,
            key_hasher,
            feed,
            vault,
            mailer,
            clock,
            policy,
            projects,
            relying_party,
            oidc,
            repeats,
            tallies: tally::LoginTallies::default(),
        }
    }

    /// Writes this node's login tallies (see `tally`); a failed write is
    /// logged and kept for the next.
    pub async fn flush_login_tallies(&self) {
        if let Err(e) = self.tallies.flush(&self.store, self.clock.now()).await {
            tracing::warn!(error = %e, "writing login tallies failed; will retry");
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The settings in force for `project`.
    fn settings(&self, project: &ProjectId) -> ProjectSettings {
        self.projects.settings(project)
    }

    /// The name `project` signs its mail and TOTP entries with.
    fn project_name(&self, project: &ProjectId) -> String {
        match self.projects.get(project) {
            Some(view) if project.as_str() != ProjectId::DEFAULT => view.project.name.clone(),
            _ => self.policy.project_name.clone(),
        }
    }
}
