//! The verified-token cache: the fast path of every token check.
//!
//! Owns verified credentials keyed by a digest of the presented token, and
//! the marks of what was revoked on this node: sessions, API keys and whole
//! users. The digest (see [`TokenDigest`]) is keyed with secrets random per
//! process, so the map never holds anything a heap dump could replay.
//!
//! Invariants: an entry is never served past its credential's `exp`, past
//! its `cached_until`, or after a mark on its credential or user; a mark
//! outlives every entry it could concern (marks last the longest cache
//! lifetime); the map holds at most `capacity` entries (inserting into a full
//! map first drops expired entries, then a batch of arbitrary ones); no map
//! guard is ever held across an `.await`.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use polyval::Polyval;
use polyval::universal_hash::UniversalHash;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::random_bytes;
use crate::account::{ApiKeyId, ProjectId, Role, SessionId, UserId};
use crate::clock::Timestamp;
use crate::telemetry::names;

/// What a credential is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential {
    /// An access JWT of this session.
    Session(SessionId),
    /// This API key.
    ApiKey(ApiKeyId),
}

impl Credential {
    fn id(self) -> Uuid {
        match self {
            Credential::Session(id) => id.0,
            Credential::ApiKey(id) => id.0,
        }
    }
}

/// What a verified credential says; shared by every hit.
#[derive(Debug)]
pub struct VerifiedAccess {
    pub user_id: UserId,
    pub credential: Credential,
    pub project: ProjectId,
    pub role: Role,
    /// Space-separated scopes.
    pub scope: Arc<str>,
    pub username: Option<Arc<str>>,
    /// Seconds since the epoch.
    pub iat: i64,
    /// Seconds since the epoch; `None`: never expires (API keys without expiry).
    pub exp: Option<i64>,
    /// Seconds since the epoch; the entry is re-verified after this.
    pub cached_until: i64,
    /// Milliseconds: when this credential's use was last noted (API keys).
    pub(crate) last_noted: AtomicI64,
    /// The cache's mark epoch when this credential's verification began: a
    /// user mark made after that (a larger epoch) stops it; one made before
    /// was already seen by the verification's store reads.
    pub(crate) verified_epoch: AtomicU64,
}

impl VerifiedAccess {
    /// `cached_until` and `exp` in seconds since the epoch.
    #[expect(clippy::too_many_arguments, reason = "one field each; a builder would only rename them")]
    pub fn new(
        user_id: UserId,
        credential: Credential,
        project: ProjectId,
        role: Role,
        scope: &str,
        username: Option<&str>,
        iat: i64,
        exp: Option<i64>,
        cached_until: i64,
    ) -> Self {
        VerifiedAccess {
            user_id,
            credential,
            project,
            role,
            scope: Arc::from(scope),
            username: username.map(Arc::from),
            iat,
            exp,
            cached_until,
            last_noted: AtomicI64::new(0),
            verified_epoch: AtomicU64::new(0),
        }
    }

    pub fn session_id(&self) -> Option<SessionId> {
        match self.credential {
            Credential::Session(id) => Some(id),
            Credential::ApiKey(_) => None,
        }
    }

    pub fn has_scope(&self, wanted: &str) -> bool {
        self.scope.split(' ').any(|s| s == wanted)
    }

    fn is_expired(&self, secs: i64) -> bool {
        self.exp.is_some_and(|exp| exp <= secs)
    }
}

/// How many trailing bytes of a presented credential pick its map entry:
/// one BLAKE3 block. They lie inside a JWT's signature segment (86 bytes for
/// Ed25519), unique per token; a shorter credential (an API key) is all tail.
const TAIL: usize = 64;

/// A presented credential as the cache knows it. `slot`, a keyed BLAKE3 of
/// the credential's last `TAIL` bytes, finds the entry; `tag`, a POLYVAL
/// universal hash (keyed by a secret that never leaves the process) of the
/// bytes before them and of their length, must then equal the entry's.
///
/// Hashing a ~420-byte JWT with BLAKE3 costs 7 compressions; this costs one
/// and a carry-less-multiply pass. It keeps tampered tokens out as a full
/// digest did: a token whose header or payload was changed but whose
/// signature was kept finds the genuine token's entry, and its tag differs
/// unless the changed bytes are a root of a polynomial in the secret key
/// (probability at most length/2^128 per try, and a miss only ever leads to
/// a full verification). The tag is compared in constant time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest {
    slot: Slot,
    tag: [u8; 16],
}

/// The map key: 128 bits of a keyed BLAKE3, already uniform and unknowable
/// outside the process, so the map uses its first 64 bits as the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot([u8; 16]);

impl std::hash::Hash for Slot {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let mut word = [0u8; 8];
        word.copy_from_slice(&self.0[..8]);
        state.write_u64(u64::from_le_bytes(word));
    }
}

/// The hasher of [`Slot`]s: their bits as they are. SipHash over a keyed
/// BLAKE3 output would only re-randomize what is already random.
#[derive(Default)]
struct SlotHasher(u64);

impl std::hash::Hasher for SlotHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Only `Slot` is hashed with this hasher, through `write_u64`.
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = word;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type Slots = std::hash::BuildHasherDefault<SlotHasher>;

/// An entry: the verified credential and the tag its presented bytes had.
#[derive(Debug, Clone)]
struct Entry {
    tag: [u8; 16],
    access: Arc<VerifiedAccess>,
}

/// A revocation on this node.
#[derive(Debug, Clone, Copy)]
struct Mark {
    /// The epoch the mark was made at.
    epoch: u64,
    /// When no cached entry can need the mark any more.
    forget_after: Timestamp,
}

/// The answer of a cache lookup.
#[derive(Debug)]
pub enum Cached {
    Hit(Arc<VerifiedAccess>),
    Expired,
    Revoked,
    Miss,
}

pub struct TokenCache {
    /// The BLAKE3 key of slots.
    key: [u8; 32],
    /// POLYVAL keyed for tags, cloned for each digest.
    tagger: Polyval,
    entries: DashMap<Slot, Entry, Slots>,
    capacity: usize,
    /// Session, API-key or user id → its mark.
    revoked: DashMap<Uuid, Mark>,
    /// Counts marks made; a user mark stops only entries verified before it.
    epoch: AtomicU64,
    /// `revoked.len()`, kept so a hit skips the marks when there are none.
    marks: AtomicUsize,
    len: AtomicUsize,
    hits: metrics::Counter,
    misses: metrics::Counter,
    evictions: metrics::Counter,
    entries_gauge: metrics::Gauge,
}

impl TokenCache {
    pub fn new(capacity: usize) -> Self {
        TokenCache {
            key: random_bytes::<32>(),
            tagger: Polyval::new(&random_bytes::<16>().into()),
            entries: DashMap::with_capacity_and_hasher(capacity.min(1 << 16), Slots::default()),
            capacity: capacity.max(1),
            revoked: DashMap::new(),
            epoch: AtomicU64::new(0),
            marks: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            hits: metrics::counter!(names::TOKEN_CACHE_HITS),
            misses: metrics::counter!(names::TOKEN_CACHE_MISSES),
            evictions: metrics::counter!(names::TOKEN_CACHE_EVICTIONS),
            entries_gauge: metrics::gauge!(names::TOKEN_CACHE_ENTRIES),
        }
    }

    pub fn digest(&self, token: &[u8]) -> TokenDigest {
        let (head, tail) = token.split_at(token.len().saturating_sub(TAIL));
        let mut slot = [0u8; 16];
        slot.copy_from_slice(&blake3::keyed_hash(&self.key, tail).as_bytes()[..16]);
        TokenDigest { slot: Slot(slot), tag: self.tag(head) }
    }

    /// The tag of a credential's head; a credential that is all tail (an
    /// API key) has none to check.
    fn tag(&self, head: &[u8]) -> [u8; 16] {
        if head.is_empty() {
            return [0; 16];
        }
        let mut tagger = self.tagger.clone();
        tagger.update_padded(head);
        // The length block: heads that differ only in trailing zero bytes
        // (the padding) get different tags.
        let mut lengths = [0u8; 16];
        lengths[..8].copy_from_slice(&(head.len() as u64).to_le_bytes());
        tagger.update(&[lengths.into()]);
        tagger.finalize().into()
    }

    pub fn lookup(&self, digest: &TokenDigest, now: Timestamp) -> Cached {
        let Some(entry) = self.entries.get(&digest.slot).map(|e| e.value().clone()) else {
            self.misses.increment(1);
            return Cached::Miss;
        };
        if !bool::from(entry.tag.ct_eq(&digest.tag)) {
            // The genuine token's slot with other bytes before its tail: a
            // tampered token, verified in full (and refused) like any other.
            // The genuine entry stays.
            self.misses.increment(1);
            return Cached::Miss;
        }
        let entry = entry.access;
        let secs = now.as_secs();
        // Still valid as far as it says, but due for a fresh verification:
        // its cache time is up, or its user changed after it was verified.
        if (entry.cached_until <= secs && !entry.is_expired(secs)) || self.is_user_marked_since(&entry) {
            self.misses.increment(1);
            self.remove(digest);
            return Cached::Miss;
        }
        self.hits.increment(1);
        let answer = if entry.is_expired(secs) {
            Cached::Expired
        } else if self.is_credential_revoked(entry.credential) {
            Cached::Revoked
        } else {
            return Cached::Hit(entry);
        };
        self.remove(digest);
        answer
    }

    /// Whether the entry's user was marked (disabled, role changed, enabled
    /// again) after the entry was verified: the store must tell afresh.
    fn is_user_marked_since(&self, entry: &VerifiedAccess) -> bool {
        self.marks.load(Ordering::Acquire) > 0
            && self
                .revoked
                .get(&entry.user_id.0)
                .is_some_and(|mark| mark.epoch > entry.verified_epoch.load(Ordering::Acquire))
    }

    /// Whether the credential (a session or an API key, never revived) was
    /// revoked on this node. A user mark does not stop a fresh verification:
    /// it reads the user from the store.
    pub fn is_credential_revoked(&self, credential: Credential) -> bool {
        self.marks.load(Ordering::Acquire) > 0 && self.revoked.contains_key(&credential.id())
    }

    /// The mark epoch now: taken before a verification's store reads, and
    /// given to `insert` with its result.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches a verification that began at mark epoch `verified_epoch`.
    pub fn insert_verified(
        &self,
        digest: TokenDigest,
        access: Arc<VerifiedAccess>,
        now: Timestamp,
        verified_epoch: u64,
    ) {
        access.verified_epoch.store(verified_epoch, Ordering::Release);
        self.insert(digest, access, now);
    }

    pub fn insert(&self, digest: TokenDigest, access: Arc<VerifiedAccess>, now: Timestamp) {
        if self.len.load(Ordering::Relaxed) >= self.capacity {
            self.make_room(now);
        }
        if self.entries.insert(digest.slot, Entry { tag: digest.tag, access }).is_none() {
            self.len.fetch_add(1, Ordering::Relaxed);
        }
        self.entries_gauge.set(self.len() as f64);
    }

    fn remove(&self, digest: &TokenDigest) {
        if self.entries.remove_if(&digest.slot, |_, entry| entry.tag == digest.tag).is_some() {
            self.len.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Every cached credential of `id` (a session, an API key, or a user)
    /// stops verifying here at once; the mark is kept until `forget_after`.
    pub fn invalidate(&self, id: Uuid, forget_after: Timestamp) {
        let epoch = self.epoch.fetch_add(1, Ordering::AcqRel) + 1;
        if self.revoked.insert(id, Mark { epoch, forget_after }).is_none() {
            self.marks.fetch_add(1, Ordering::AcqRel);
        }
        // An unbounded number of revocations must not grow memory without
        // bound: past the capacity, drop every cached entry instead. The store
        // is the truth, and the next check of each token consults it.
        if self.revoked.len() > self.capacity {
            self.entries.clear();
            self.len.store(0, Ordering::Relaxed);
            self.revoked.retain(|mark, _| *mark == id);
            self.marks.store(self.revoked.len(), Ordering::Release);
        }
    }

    /// Drops every entry (not the marks): each token is verified afresh.
    pub fn clear(&self) {
        self.entries.clear();
        self.len.store(0, Ordering::Relaxed);
        self.entries_gauge.set(0.0);
    }

    /// Drops expired entries and marks no entry can need.
    pub fn sweep(&self, now: Timestamp) {
        let secs = now.as_secs();
        let before = self.len();
        self.entries.retain(|_, e| !e.access.is_expired(secs) && e.access.cached_until > secs);
        self.len.store(self.entries.len(), Ordering::Relaxed);
        self.revoked.retain(|_, mark| mark.forget_after > now);
        self.marks.store(self.revoked.len(), Ordering::Release);
        let dropped = before.saturating_sub(self.len());
        self.evictions.increment(dropped as u64);
        self.entries_gauge.set(self.len() as f64);
    }

    /// Expired entries first; if that frees too little, a batch of arbitrary ones.
    fn make_room(&self, now: Timestamp) {
        self.sweep(now);
        let target = self.capacity - self.capacity / 16 - 1;
        let excess = self.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        let victims: Vec<Slot> = self.entries.iter().take(excess).map(|e| *e.key()).collect();
        for slot in &victims {
            if self.entries.remove(slot).is_some() {
                self.len.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.evictions.increment(victims.len() as u64);
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

    /// A fresh session credential of `user`.
    fn access_of(user: UserId) -> Arc<VerifiedAccess> {
        let session = Credential::Session(SessionId::generate());
        let role = Role::User;
        Arc::new(VerifiedAccess::new(
            user,
            session,
            ProjectId::default_project(),
            role,
            "openid",
            None,
            0,
            Some(100),
            100,
        ))
    }

    fn access(exp: i64) -> Arc<VerifiedAccess> {
        Arc::new(VerifiedAccess::new(
            UserId::generate(),
            Credential::Session(SessionId::generate()),
            ProjectId::default_project(),
            Role::User,
            "openid",
            None,
            0,
            Some(exp),
            exp,
        ))
    }

    #[test]
    fn entries_never_outlive_exp() {
        let cache = TokenCache::new(10);
        let d = cache.digest(b"t");
        cache.insert(d, access(100), Timestamp::from_secs(0));
        assert!(matches!(cache.lookup(&d, Timestamp::from_secs(99)), Cached::Hit(_)));
        assert!(matches!(cache.lookup(&d, Timestamp::from_secs(100)), Cached::Expired));
        assert!(matches!(cache.lookup(&d, Timestamp::from_secs(0)), Cached::Miss));
    }

    #[test]
    fn entries_are_reverified_after_cached_until() {
        let cache = TokenCache::new(10);
        let d = cache.digest(b"key");
        let entry = VerifiedAccess { exp: None, cached_until: 50, ..Arc::try_unwrap(access(100)).unwrap() };
        cache.insert(d, Arc::new(entry), Timestamp(0));
        assert!(matches!(cache.lookup(&d, Timestamp::from_secs(49)), Cached::Hit(_)));
        assert!(matches!(cache.lookup(&d, Timestamp::from_secs(50)), Cached::Miss));
    }

    #[test]
    fn a_revoked_credential_stops_at_once_and_a_changed_user_is_verified_again() {
        let cache = TokenCache::new(10);
        let (a, b) = (access(100), access(100));
        let (da, db) = (cache.digest(b"a"), cache.digest(b"b"));
        cache.insert(da, Arc::clone(&a), Timestamp(0));
        cache.insert(db, Arc::clone(&b), Timestamp(0));
        let Credential::Session(session) = a.credential else { unreachable!() };
        cache.invalidate(session.0, Timestamp::from_secs(100));
        assert!(matches!(cache.lookup(&da, Timestamp(0)), Cached::Revoked));
        assert!(matches!(cache.lookup(&db, Timestamp(0)), Cached::Hit(_)));
        // A user mark sends the user's entries back to the store (which tells
        // whether they still hold): a miss, not a refusal.
        cache.invalidate(b.user_id.0, Timestamp::from_secs(100));
        assert!(matches!(cache.lookup(&db, Timestamp(0)), Cached::Miss));
        // A credential of that user verified after the mark is good.
        let epoch = cache.epoch();
        cache.insert_verified(db, access_of(b.user_id), Timestamp(0), epoch);
        assert!(matches!(cache.lookup(&db, Timestamp(0)), Cached::Hit(_)));
        // One whose verification began before the mark is not.
        let stale = cache.epoch();
        cache.invalidate(b.user_id.0, Timestamp::from_secs(100));
        cache.insert_verified(db, access_of(b.user_id), Timestamp(0), stale);
        assert!(matches!(cache.lookup(&db, Timestamp(0)), Cached::Miss));
        // Marks go once nothing can need them.
        cache.sweep(Timestamp::from_secs(100));
        assert_eq!(cache.marks.load(Ordering::Acquire), 0);
    }

    #[test]
    fn capacity_is_a_bound() {
        let cache = TokenCache::new(64);
        for i in 0..1000 {
            cache.insert(cache.digest(i.to_string().as_bytes()), access(100), Timestamp(0));
            assert!(cache.len() <= 64, "len {} at {i}", cache.len());
        }
        assert_eq!(cache.len(), cache.entries.len());
    }

    #[test]
    fn a_tampered_token_misses_and_leaves_the_genuine_entry() {
        let cache = TokenCache::new(10);
        // A JWT's shape: a header and payload, then a signature longer than the tail.
        let genuine = format!("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ1c2VyIn0.{}", "s".repeat(86));
        let d = cache.digest(genuine.as_bytes());
        cache.insert(d, access(100), Timestamp(0));
        let forged_payload = genuine.replacen("eyJzdWIiOiJ1c2VyIn0", "eyJzdWIiOiJyb290In0", 1);
        let extended = format!("{}\0{}", &genuine[..genuine.len() - 86], "s".repeat(86));
        let signature_only = "s".repeat(86);
        let tail_only = "s".repeat(TAIL);
        for tampered in [forged_payload, extended, signature_only, tail_only] {
            let t = cache.digest(tampered.as_bytes());
            assert_eq!(t.slot, d.slot, "same tail, same slot: {tampered}");
            assert!(matches!(cache.lookup(&t, Timestamp(0)), Cached::Miss), "{tampered}");
        }
        assert!(matches!(cache.lookup(&d, Timestamp(0)), Cached::Hit(_)));
        // Heads that differ only by trailing zero bytes (POLYVAL's padding) differ in tag.
        let tail = "t".repeat(TAIL);
        let (short, padded) = (format!("ab{tail}"), format!("ab\0\0{tail}"));
        assert_ne!(cache.digest(short.as_bytes()).tag, cache.digest(padded.as_bytes()).tag);
        // Credentials no longer than the tail (API keys) are told apart by it alone.
        assert_ne!(cache.digest(b"pk_live_a").slot, cache.digest(b"pk_live_b").slot);
    }

    #[test]
    fn digest_is_keyed_per_cache() {
        assert_ne!(TokenCache::new(1).digest(b"t"), TokenCache::new(1).digest(b"t"));
    }
}
