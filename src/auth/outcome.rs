//! What the flows share: how a sign-in ends, starting the session it ends
//! in, the failed-login lock every secret check goes through, and the login
//! counter.
//!
//! Uses no other flow file; every flow file may use this one.

use std::time::Duration;

use crate::account::{ProjectId, RefreshRecord, Session, User};
use crate::hashing::Password;
use crate::shards::{LockKey, LockRules, RecordFailure, RecordSuccess, ReleaseAttempt, ReserveAttempt, StartSession};
use crate::telemetry::names;
use crate::token::refresh::RefreshSecret;

use super::{AuthError, AuthService, ClientInfo};

/// What a successful sign-in or refresh hands out.
#[derive(Debug)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: Duration,
    pub refresh_token: String,
    pub user: User,
    pub session: Session,
}

/// How a sign-in ended: signed in, or waiting for the second factor.
#[derive(Debug)]
pub enum LoginOutcome {
    Signed(Box<TokenGrant>),
    TwoFactorRequired { challenge_token: String, expires_in: Duration },
}

/// What a registration answered.
#[derive(Debug)]
pub enum Registered {
    Signed(Box<TokenGrant>),
    /// The project requires email verification: a code was mailed.
    VerificationRequired,
}

/// Every `outcome` of `portcullis_logins_total`.
pub const LOGIN_OUTCOMES: &[&str] =
    &["success", "failure", "locked", "disabled", "unverified", "two_factor_required", "two_factor_failure"];

impl AuthService {
    /// Counts a sign-in attempt in `portcullis_logins_total{outcome, project}`
    /// (`project` bounded: see `Directory::metric_label`).
    pub(super) fn count_login(&self, project: &ProjectId, outcome: &'static str) {
        debug_assert!(LOGIN_OUTCOMES.contains(&outcome), "{outcome} joins LOGIN_OUTCOMES");
        let project = self.projects.metric_label(project);
        metrics::counter!(names::LOGINS, "outcome" => outcome, "project" => project).increment(1);
    }
}

/// Whose failures a sign-in by `name` counts against: the account when it
/// exists (however it is named), else the name itself, so unknown names are
/// counted and locked the same way.
pub(super) fn lock_key(user: Option<&User>, project: &ProjectId, name: &str) -> LockKey {
    match user {
        Some(user) => LockKey::Account(user.id),
        None => LockKey::Unknown(project.clone(), name.to_owned()),
    }
}

impl AuthService {
    /// Reserves one attempt at a secret for `key` before it is checked:
    /// `Locked` while the key is locked out, or while its remaining tries are
    /// all in flight. End it with `record_failure`, `record_success`,
    /// `release_attempt` or a new session (`start_session`).
    pub(super) async fn reserve_attempt(&self, key: &LockKey, project: &ProjectId) -> Result<(), AuthError> {
        let rules = Some(self.lock_rules(project));
        Ok(self.shards.ask(key, ReserveAttempt { key: key.clone(), rules }).await?)
    }

    /// The lock rules of `project`'s settings.
    fn lock_rules(&self, project: &ProjectId) -> LockRules {
        let settings = self.settings(project);
        LockRules { threshold: settings.lockout_threshold, base: settings.lockout_base() }
    }

    /// Checks `password` for an attempt reserved on `key`, within the
    /// account's share of the hashing pool; if it cannot be checked (the
    /// account's share or the pool is full) the reservation is given back.
    pub(super) async fn verify_reserved(
        &self,
        key: &LockKey,
        password: Password,
        stored: Option<String>,
    ) -> Result<bool, AuthError> {
        self.or_release(key, async {
            let _slot = self.hashing.account_slot(key)?;
            Ok(self.hashing.verify(password, stored).await?)
        })
        .await
    }

    /// The reserved attempt was wrong: counts a failure against `key`.
    pub(super) async fn record_failure(&self, key: &LockKey, project: &ProjectId) -> Result<(), AuthError> {
        let rules = Some(self.lock_rules(project));
        Ok(self.shards.ask(key, RecordFailure { key: key.clone(), rules }).await?)
    }

    /// The reserved attempt was right and its action is done: clears `key`'s failures.
    pub(super) async fn record_success(&self, key: &LockKey) -> Result<(), AuthError> {
        Ok(self.shards.ask(key, RecordSuccess { key: key.clone() }).await?)
    }

    /// The reserved attempt was right but did not end in a session or an
    /// action (a 2FA challenge, a disabled account): gives it back.
    pub(super) async fn release_attempt(&self, key: &LockKey) -> Result<(), AuthError> {
        Ok(self.shards.ask(key, ReleaseAttempt { key: key.clone() }).await?)
    }

    /// Runs `step` of an attempt reserved on `key` that is not the check of
    /// a wrong secret (a store write, a hash, a right code's claim): if it
    /// fails, the attempt is given back at once rather than when its
    /// deadline lapses, and the step's error is the answer.
    pub(super) async fn or_release<T>(
        &self,
        key: &LockKey,
        step: impl Future<Output = Result<T, AuthError>>,
    ) -> Result<T, AuthError> {
        let outcome = step.await;
        if outcome.is_err()
            && let Err(e) = self.release_attempt(key).await
        {
            tracing::warn!(error = %e, "an attempt could not be given back; it lapses at its deadline");
        }
        outcome
    }

    /// Creates a session with its first refresh token, clears the account's
    /// failed sign-ins, and mints the access token.
    pub(super) async fn start_session(&self, user: User, client: ClientInfo) -> Result<TokenGrant, AuthError> {
        let now = self.clock.now();
        let settings = self.settings(&user.project);
        let ip = client.ip.map(|ip| ip.to_string());
        let session = Session::begin(&user, client.user_agent, ip, now, now.plus(settings.refresh_ttl()));
        let secret = RefreshSecret::generate();
        let refresh = RefreshRecord::live(&session, secret.digest(), now, session.expires_at);
        let start = StartSession { key: LockKey::Account(user.id), session: session.clone(), refresh };
        self.shards.ask(&user.id, start).await?;
        let ttl = settings.access_ttl();
        let access_token = self.signer.mint(&user, &session, now, ttl)?;
        Ok(TokenGrant { access_token, expires_in: ttl, refresh_token: secret.token(), user, session })
    }
}
