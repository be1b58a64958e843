//! The gate every authenticated request passes: cache first, then a full
//! verification once per token.
//!
//! A hit costs a keyed BLAKE3 hash, one map lookup and a revocation check.
//! A miss verifies the Ed25519 signature and confirms in the store that the
//! session still exists (revocations from before a restart live there), then
//! caches the result until the token expires.

use std::sync::Arc;

use super::access::parse_subject;
use super::cache::{Cached, TokenCache};
use super::{TokenError, TokenSigner};
use crate::account::SessionId;
use crate::clock::{SharedClock, Timestamp};
use crate::store::Store;

pub use super::cache::VerifiedAccess;

pub struct AccessGate {
    signer: Arc<TokenSigner>,
    cache: Arc<TokenCache>,
    store: Arc<dyn Store>,
    clock: SharedClock,
}

impl AccessGate {
    pub fn new(signer: Arc<TokenSigner>, cache: Arc<TokenCache>, store: Arc<dyn Store>, clock: SharedClock) -> Self {
        AccessGate { signer, cache, store, clock }
    }

    /// Verifies a presented access token.
    pub async fn check(&self, token: &str) -> Result<Arc<VerifiedAccess>, TokenError> {
        let now = self.clock.now();
        let digest = self.cache.digest(token);
        match self.cache.lookup(&digest, now) {
            Cached::Hit(access) => return Ok(access),
            Cached::Expired => return Err(TokenError::Expired),
            Cached::Revoked => return Err(TokenError::Invalid),
            Cached::Miss => {}
        }
        let claims = self.signer.verify(token, now)?;
        let (user_id, session_id, project, role) = parse_subject(&claims).ok_or(TokenError::Invalid)?;
        if self.cache.is_revoked(session_id) {
            return Err(TokenError::Invalid);
        }
        let session = self.store.find_session(session_id).await?.ok_or(TokenError::Invalid)?;
        if session.user_id != user_id || session.expires_at <= now {
            return Err(TokenError::Invalid);
        }
        let access = Arc::new(VerifiedAccess {
            user_id,
            session_id,
            project,
            role,
            scope: Arc::from(claims.scope.as_str()),
            iat: claims.iat,
            exp: claims.exp,
        });
        self.cache.insert(digest, Arc::clone(&access), now);
        Ok(access)
    }

    /// Every access token of `session` fails from now on, on this node.
    pub fn invalidate_session(&self, session: SessionId, now: Timestamp) {
        self.cache.invalidate_session(session, now.plus(self.signer.ttl()));
    }

    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }
}
