//! Sign-in flows: register, login, refresh, logout, profile, password,
//! sessions, two-factor (`second_factor`), one-time email codes (`codes`)
//! and the audit events they leave (`audit`).
//!
//! Owns the order of steps in each flow: password work in the hashing pool,
//! state changes through the user's shard, tokens from the signer, and
//! revocations into the token gate. Knows nothing about HTTP; handlers call
//! one method here and map its result.
//!
//! Never: answers differently (in body or in work done) for an unknown
//! account and a wrong password, or hashes a password inside a shard.

mod api_keys;
mod audit;
mod codes;
mod flows;
mod second_factor;

pub use api_keys::{CreatedApiKey, INTROSPECT_SCOPE, NewApiKey};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub use codes::Registered;
pub use flows::{LoginIdentifier, LoginRequest, ProfileChange, Registration};
pub use second_factor::{LoginOutcome, TwoFactorSetup, TwoFactorStatus};

use crate::account::{Session, SessionId, User, UserId};
use crate::clock::SharedClock;
use crate::feed::Feed;
use crate::hashing::{HashError, HashingPool};
use crate::mail::Mailer;
use crate::shards::{ShardError, ShardRouter};
use crate::store::{Store, StoreError, UniqueField};
use crate::token::vault::Vault;
use crate::token::{AccessGate, TokenError, TokenSigner};

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("wrong credentials")]
    InvalidCredentials,
    #[error("locked out for {0:?}")]
    Locked(Duration),
    #[error("email taken")]
    EmailTaken,
    #[error("username taken")]
    UsernameTaken,
    /// A refresh token that is unknown, expired or revoked.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    #[error("refresh token reused")]
    RefreshTokenReused,
    #[error("account disabled")]
    AccountDisabled,
    /// A wrong, used, expired or dead TOTP, backup or email code.
    #[error("invalid code")]
    InvalidCode,
    /// A 2FA challenge token that is not ours, not for this account, or used.
    #[error("invalid challenge")]
    InvalidChallenge,
    #[error("challenge expired")]
    ChallengeExpired,
    #[error("email not verified")]
    EmailNotVerified,
    /// Two-factor is already on.
    #[error("two-factor already enabled")]
    AlreadyEnabled,
    #[error("two-factor not set up")]
    TwoFactorNotSetUp,
    #[error("two-factor not enabled")]
    TwoFactorNotEnabled,
    #[error("password already set")]
    PasswordAlreadySet,
    /// Authenticated, but not allowed to do this.
    #[error("forbidden")]
    Forbidden,
    /// A per-user bound (such as the number of API keys) is reached.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    #[error("not found")]
    NotFound,
    /// Password work or a shard is saturated; retry after the duration.
    #[error("overloaded")]
    Overloaded(Duration),
    #[error("store unavailable: {0}")]
    StoreUnavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

/// How long a client refused for load should wait.
const RETRY_AFTER: Duration = Duration::from_secs(1);

impl From<HashError> for AuthError {
    fn from(e: HashError) -> Self {
        match e {
            HashError::Overloaded | HashError::DeadlineExceeded => AuthError::Overloaded(crate::hashing::RETRY_AFTER),
            HashError::Stopped | HashError::Argon2(_) => AuthError::Internal(e.to_string()),
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(UniqueField::Email) => AuthError::EmailTaken,
            StoreError::AlreadyExists(UniqueField::Username) => AuthError::UsernameTaken,
            StoreError::NotFound => AuthError::NotFound,
            StoreError::Unavailable(why) => AuthError::StoreUnavailable(why),
            StoreError::Conflict | StoreError::Corrupt(_) => AuthError::Internal(e.to_string()),
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

impl From<crate::shards::Declined> for AuthError {
    fn from(why: crate::shards::Declined) -> Self {
        use crate::shards::Declined;
        match why {
            Declined::AlreadyEnabled => AuthError::AlreadyEnabled,
            Declined::NotSetUp => AuthError::TwoFactorNotSetUp,
            Declined::NotEnabled => AuthError::TwoFactorNotEnabled,
            Declined::PasswordAlreadySet => AuthError::PasswordAlreadySet,
        }
    }
}

impl From<TokenError> for AuthError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Store(e) => e.into(),
            other => AuthError::Internal(other.to_string()),
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCaller {
    pub user_id: UserId,
    pub session_id: SessionId,
}

/// What a successful sign-in or refresh hands out.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: Duration,
    pub refresh_token: String,
    pub user: User,
    pub session: Session,
}

/// Per-flow knobs (per project once projects land).
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    pub refresh_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    /// In mail and as the TOTP issuer.
    pub project_name: String,
    pub require_email_verification: bool,
    pub passwordless_signup: bool,
}

/// What the flows work with, each built once by the app.
pub struct AuthParts {
    pub store: Arc<dyn Store>,
    pub hashing: HashingPool,
    pub shards: Arc<ShardRouter>,
    pub signer: Arc<TokenSigner>,
    pub gate: Arc<AccessGate>,
    pub feed: Arc<Feed>,
    pub vault: Arc<Vault>,
    pub mailer: Mailer,
    pub clock: SharedClock,
    pub policy: AuthPolicy,
}

pub struct AuthService {
    store: Arc<dyn Store>,
    hashing: HashingPool,
    shards: Arc<ShardRouter>,
    signer: Arc<TokenSigner>,
    gate: Arc<AccessGate>,
    feed: Arc<Feed>,
    vault: Arc<Vault>,
    mailer: Mailer,
    clock: SharedClock,
    policy: AuthPolicy,
}

impl AuthService {
    pub fn new(parts: AuthParts) -> Self {
        let AuthParts { store, hashing, shards, signer, gate, feed, vault, mailer, clock, policy } = parts;
        AuthService { store, hashing, shards, signer, gate, feed, vault, mailer, clock, policy }
    }

    pub fn gate(&self) -> &AccessGate {
        &self.gate
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
}
