//! The verified-token cache: the fast path of every token check.
//!
//! Owns verified credentials keyed by a keyed BLAKE3 digest of the token
//! (the key is random per process, so the map never holds anything a leaked
//! heap dump could replay), and the set of sessions revoked on this node.
//!
//! Invariants: an entry is never served past its `exp` or after its session
//! was revoked here; the map holds at most `capacity` entries (inserting into
//! a full map first drops expired entries, then a batch of arbitrary ones);
//! no map guard is ever held across an `.await`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dashmap::DashMap;

use super::random_bytes;
use crate::account::{ProjectId, Role, SessionId, UserId};
use crate::clock::Timestamp;
use crate::telemetry::names;

/// What a verified credential says; shared by every hit.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedAccess {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub project: ProjectId,
    pub role: Role,
    pub scope: Arc<str>,
    /// Seconds since the epoch.
    pub iat: i64,
    pub exp: i64,
}

pub type TokenDigest = [u8; 32];

/// The answer of a cache lookup.
#[derive(Debug)]
pub enum Cached {
    Hit(Arc<VerifiedAccess>),
    Expired,
    Revoked,
    Miss,
}

pub struct TokenCache {
    key: [u8; 32],
    entries: DashMap<TokenDigest, Arc<VerifiedAccess>>,
    capacity: usize,
    /// Session id → when the entry may be forgotten (every token of the
    /// session has expired by then).
    revoked: DashMap<SessionId, Timestamp>,
    len: AtomicUsize,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            key: random_bytes::<32>(),
            entries: DashMap::with_capacity(capacity.min(1 << 16)),
            capacity: capacity.max(1),
            revoked: DashMap::new(),
            len: AtomicUsize::new(0),
        }
    }

    pub fn digest(&self, token: &str) -> TokenDigest {
        *blake3::keyed_hash(&self.key, token.as_bytes()).as_bytes()
    }

    pub fn lookup(&self, digest: &TokenDigest, now: Timestamp) -> Cached {
        let Some(entry) = self.entries.get(digest).map(|e| Arc::clone(e.value())) else {
            metrics::counter!(names::TOKEN_CACHE_MISSES).increment(1);
            return Cached::Miss;
        };
        metrics::counter!(names::TOKEN_CACHE_HITS).increment(1);
        if entry.exp <= now.as_secs() {
            self.remove(digest);
            return Cached::Expired;
        }
        if self.is_revoked(entry.session_id) {
            self.remove(digest);
            return Cached::Revoked;
        }
        Cached::Hit(entry)
    }

    pub fn is_revoked(&self, session: SessionId) -> bool {
        self.revoked.contains_key(&session)
    }

    pub fn insert(&self, digest: TokenDigest, access: Arc<VerifiedAccess>, now: Timestamp) {
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            self.make_room(now);
        }
        if self.entries.insert(digest, access).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        metrics::gauge!(names::TOKEN_CACHE_ENTRIES).set(self.len() as f64);
    }

    fn remove(&self, digest: &TokenDigest) {
        if self.entries.remove(digest).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Every token of `session` stops verifying here at once; the mark is
    /// kept until `forget_after`, when all of them have expired anyway.
    pub fn invalidate_session(&self, session: SessionId, forget_after: Timestamp) {
        self.revoked.insert(session, forget_after);
        // An unbounded number of revocations must not grow memory without
        // bound: past the capacity, drop every cached entry instead. The store
        // is the truth, and the next check of each token consults it.
        if self.revoked.len() > self.capacity {
            self.entries.clear();
            self.len.store(0, Ordering::Relaxed);
            self.revoked.retain(|s, _| *s == session);
        }
    }

    /// Drops expired entries and revocation marks no token can need.
    pub fn sweep(&self, now: Timestamp) {
        let secs = now.as_secs();
        let before = self.len();
        self.entries.retain(|_, e| e.exp > secs);
        self.len.store(self.entries.len(), Ordering::Relaxed);
        self.revoked.retain(|_, forget_after| *forget_after > now);
        let dropped = before.saturating_sub(self.len());
        metrics::counter!(names::TOKEN_CACHE_EVICTIONS).increment(dropped as u64);
        metrics::gauge!(names::TOKEN_CACHE_ENTRIES).set(self.len() as f64);
    }

    /// Expired entries first; if that frees too little, a batch of arbitrary ones.
    fn make_room(&self, now: Timestamp) {
        self.sweep(now);
        let target = self.capacity - self.capacity / 16 - 1;
        let excess = self.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let victims: Vec<TokenDigest> = self.entries.iter().take(excess).map(|e| *e.key()).collect();
        for digest in &victims {
            self.remove(digest);
        }
        metrics::counter!(names::TOKEN_CACHE_EVICTIONS).increment(victims.len() as u64);
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(exp: i64) -> Arc<VerifiedAccess> {
        Arc::new(VerifiedAccess {
            user_id: UserId::generate(),
            session_id: SessionId::generate(),
            project: ProjectId::default_project(),
            role: Role::User,
            scope: Arc::from("openid"),
            iat: 0,
            exp,
        })
    }

    #[test]
    fn entries_never_outlive_exp() {
        let cache = TokenCache::new(10);
        let d = cache.digest("t");
        cache.insert(d, access(100), Timestamp::from_secs(0));
        assert!(matches!(cache.lookup(&d, Timestamp::from_secs(99)), Cached::Hit(_)));
        assert!(matches!(cache.lookup(&d, Timestamp::from_secs(100)), Cached::Expired));
        assert!(matches!(cache.lookup(&d, Timestamp::from_secs(0)), Cached::Miss));
    }

    #[test]
    fn revoked_session_stops_hits_at_once() {
        let cache = TokenCache::new(10);
        let entry = access(100);
        let d = cache.digest("t");
        cache.insert(d, Arc::clone(&entry), Timestamp(0));
        cache.invalidate_session(entry.session_id, Timestamp::from_secs(100));
        assert!(matches!(cache.lookup(&d, Timestamp(0)), Cached::Revoked));
    }

    #[test]
    fn capacity_is_a_bound() {
        let cache = TokenCache::new(64);
        for i in 0..1000 {
            cache.insert(cache.digest(&i.to_string()), access(100), Timestamp(0));
            assert!(cache.len() <= 64, "len {} at {i}", cache.len());
        }
        assert_eq!(cache.len(), cache.entries.len());
    }

    #[test]
    fn digest_is_keyed_per_cache() {
        assert_ne!(TokenCache::new(1).digest("t"), TokenCache::new(1).digest("t"));
    }
}
