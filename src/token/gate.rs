//! The gate every authenticated request passes: cache first, then a full
//! verification once per credential.
//!
//! A hit costs a keyed BLAKE3 hash, one map lookup and a revocation check.
//! A miss verifies an access token's Ed25519 signature (together with those
//! of the first sights running beside it, `token::batch`) or looks an API
//! key up by its keyed digest, confirms in the store that the session (or key)
//! and the user are still live, then caches the result: an access token
//! until it expires, an API key for at most the access-token lifetime.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::access::parse_subject;
use super::api_key::{ApiKeyHasher, KeyUsage, is_api_key};
use super::cache::{Cached, Credential, TokenCache};
use super::{TokenError, TokenSigner};
use crate::account::{ApiKeyId, ProjectId, SessionId, User, UserId};
use crate::clock::{SharedClock, Timestamp};
use crate::projects::Directory;
use crate::store::Store;

pub use super::cache::VerifiedAccess;

/// A key's use is noted at most this often.
const NOTE_USE_EVERY_MS: i64 = 1000;

pub struct AccessGate {
    signer: Arc<TokenSigner>,
    cache: Arc<TokenCache>,
    store: Arc<dyn Store>,
    clock: SharedClock,
    keys: ApiKeyHasher,
    usage: Arc<KeyUsage>,
    /// A credential of a project that is disabled or deleted does not verify.
    projects: Arc<Directory>,
}

/// What a gate works with.
pub struct GateParts {
    pub signer: Arc<TokenSigner>,
    pub cache: Arc<TokenCache>,
    pub store: Arc<dyn Store>,
    pub clock: SharedClock,
    pub keys: ApiKeyHasher,
    pub usage: Arc<KeyUsage>,
    pub projects: Arc<Directory>,
}

impl AccessGate {
    pub fn new(parts: GateParts) -> Self {
        let GateParts { signer, cache, store, clock, keys, usage, projects } = parts;
        AccessGate { signer, cache, store, clock, keys, usage, projects }
    }

    /// Verifies a presented access token or API key (its bytes as sent:
    /// a hit needs no text validation; a miss checks it is UTF-8).
    pub async fn check(&self, presented: impl AsRef<[u8]>) -> Result<Arc<VerifiedAccess>, TokenError> {
        let presented = presented.as_ref();
        let now = self.clock.now();
        let digest = self.cache.digest(presented);
        let access = match self.cache.lookup(&digest, now) {
            Cached::Hit(access) => access,
            Cached::Expired => return Err(TokenError::Expired),
            Cached::Revoked => return Err(TokenError::Invalid),
            Cached::Miss => {
                // Before any store read: a user mark made after this point stops the result.
                let epoch = self.cache.epoch();
                let presented = std::str::from_utf8(presented).map_err(|_| TokenError::Invalid)?;
                let access = if is_api_key(presented) {
                    self.verify_api_key(presented, now).await?
                } else {
                    self.verify_access_token(presented, now).await?
                };
                self.cache.insert_verified(digest, Arc::clone(&access), now, epoch);
                access
            }
        };
        if !self.projects.is_live(&access.project) {
            return Err(TokenError::Invalid);
        }
        self.note_use(&access, now);
        Ok(access)
    }

    async fn verify_access_token(&self, token: &str, now: Timestamp) -> Result<Arc<VerifiedAccess>, TokenError> {
        let claims = self.signer.verify_together(token, now).await?;
        let (user_id, session_id, project, _minted_role) = parse_subject(&claims).ok_or(TokenError::Invalid)?;
        let credential = Credential::Session(session_id);
        if self.cache.is_credential_revoked(credential) {
            return Err(TokenError::Invalid);
        }
        let session = self.store.find_session(session_id).await?.ok_or(TokenError::Invalid)?;
        if session.user_id != user_id || session.expires_at <= now {
            return Err(TokenError::Invalid);
        }
        let user = self.live_user(user_id, &project).await?;
        // The role as stored now, not as minted: a demotion counts at once
        // (a user change marks the user's cached credentials).
        Ok(Arc::new(VerifiedAccess::new(
            user_id,
            credential,
            project,
            user.role,
            &claims.scope,
            user.username.as_deref(),
            claims.iat,
            Some(claims.exp),
            claims.exp,
        )))
    }

    async fn verify_api_key(&self, presented: &str, now: Timestamp) -> Result<Arc<VerifiedAccess>, TokenError> {
        let key = self.store.find_api_key(&self.keys.digest(presented)).await?.ok_or(TokenError::Invalid)?;
        if key.expires_at.is_some_and(|exp| exp <= now) {
            return Err(TokenError::Expired);
        }
        let credential = Credential::ApiKey(key.id);
        if self.cache.is_credential_revoked(credential) {
            return Err(TokenError::Invalid);
        }
        let user = self.live_user(key.user_id, &key.project).await?;
        let exp = key.expires_at.map(Timestamp::as_secs);
        // Keys may never expire; the cache re-reads them once per access-token lifetime.
        let recheck = now.plus(self.projects.access_ttl(&key.project)).as_secs();
        Ok(Arc::new(VerifiedAccess::new(
            key.user_id,
            credential,
            key.project,
            user.role,
            &key.scopes.join(" "),
            user.username.as_deref(),
            key.created_at.as_secs(),
            exp,
            exp.map_or(recheck, |exp| exp.min(recheck)),
        )))
    }

    /// The user behind a credential, if it exists, is in the project and is enabled.
    async fn live_user(&self, id: UserId, project: &ProjectId) -> Result<User, TokenError> {
        let user = self.store.find_user(id).await?.ok_or(TokenError::Invalid)?;
        if user.disabled || &user.project != project {
            return Err(TokenError::Invalid);
        }
        Ok(user)
    }

    /// Notes an API key's use for the batched `last_used_at`, at most once a second.
    fn note_use(&self, access: &VerifiedAccess, now: Timestamp) {
        if let Credential::ApiKey(id) = access.credential {
            let last = access.last_noted.load(Ordering::Relaxed);
            if now.0 - last >= NOTE_USE_EVERY_MS
                && access.last_noted.compare_exchange(last, now.0, Ordering::Relaxed, Ordering::Relaxed).is_ok()
            {
                self.usage.note(id, now);
            }
        }
    }

    /// How long a revocation mark must last: the longest any entry is
    /// cached (the longest `access_ttl` of any project).
    fn mark_lifetime(&self) -> Duration {
        self.projects.max_access_ttl()
    }

    /// Every access token of `session` fails from now on, on this node.
    pub fn invalidate_session(&self, session: SessionId, now: Timestamp) {
        self.cache.invalidate(session.0, now.plus(self.mark_lifetime()));
    }

    /// The API key fails from now on, on this node.
    pub fn invalidate_api_key(&self, key: ApiKeyId, now: Timestamp) {
        self.cache.invalidate(key.0, now.plus(self.mark_lifetime()));
    }

    /// Every credential of `user` cached before now is verified again (the
    /// store then tells whether it still holds); credentials verified after
    /// it, such as a fresh login's once the account is enabled again, pass.
    pub fn invalidate_user(&self, user: UserId, now: Timestamp) {
        self.cache.invalidate(user.0, now.plus(self.mark_lifetime()));
    }

    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }
}
