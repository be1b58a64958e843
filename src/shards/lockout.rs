//! Failed-login counting and the doubling account lock.
//!
//! The table is owned by one shard; never shared. Unknown identifiers are
//! counted and locked exactly like accounts, so the lock does not reveal
//! which exist.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use crate::account::{ProjectId, UserId};
use crate::clock::Timestamp;

use super::{ShardCommand, ShardError, UserShard, Work, done};

/// Whose failures are counted: an existing account's passwords and second
/// factors, an identifier (email or username) that matched none, or the
/// email codes of an address (counted apart, so guessing codes never locks
/// the password, and a locked password never refuses a right code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockKey {
    Account(UserId),
    Unknown(ProjectId, String),
    Codes(ProjectId, String),
}

/// A key routes (and hashes) as what it names: an account's key to the
/// shard of its user id, where its sessions start; an unknown name to the
/// shard of (project, name), where a registration of that name would go.
impl Hash for LockKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            LockKey::Account(id) => id.hash(state),
            LockKey::Unknown(project, name) | LockKey::Codes(project, name) => (project, name).hash(state),
        }
    }
}

/// Reserve one attempt at a secret (a password, a TOTP or backup code)
/// for `key`, before the secret is checked: answers `Locked` while the key
/// is locked, or while its failures and the attempts already in flight
/// reach the threshold. So however many requests race, at most `threshold`
/// wrong secrets are ever checked per lock. Routed by the key; end every
/// reservation with [`RecordFailure`], [`RecordSuccess`] or
/// [`ReleaseAttempt`] (one that is not ended lapses after the request
/// deadline).
pub struct ReserveAttempt {
    pub key: LockKey,
    /// The key's project's rules; `None`: the node's.
    pub rules: Option<LockRules>,
}

/// When failures lock a key: after `threshold` of them, for `base`, doubled
/// with each lock (a project may set its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockRules {
    pub threshold: u32,
    pub base: Duration,
}

impl ShardCommand for ReserveAttempt {
    type Output = ();

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<()> {
        done(shard.lockout.reserve(self.key, now, self.rules).map_err(ShardError::Locked))
    }
}

/// The reserved attempt was wrong: count a failure (it may lock the key).
pub struct RecordFailure {
    pub key: LockKey,
    /// The key's project's rules; `None`: the node's.
    pub rules: Option<LockRules>,
}

impl ShardCommand for RecordFailure {
    type Output = ();

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<()> {
        if let Some(lock) = shard.lockout.record_failure(self.key, now, self.rules) {
            tracing::warn!(target: "security", event = "login_locked", shard = shard.index, seconds = lock.as_secs(), "login locked after repeated failures");
        }
        done(Ok(()))
    }
}

/// The reserved attempt was right and completed what it was for (a signed-in
/// route's action): clear the key's failures.
pub struct RecordSuccess {
    pub key: LockKey,
}

impl ShardCommand for RecordSuccess {
    type Output = ();

    fn run(self, shard: &mut UserShard, _now: Timestamp) -> Work<()> {
        shard.lockout.record_success(&self.key);
        done(Ok(()))
    }
}

/// The reserved attempt was right but the sign-in goes on elsewhere (a 2FA
/// challenge) or stops for another reason (a disabled account): give the
/// reservation back without clearing the failures.
pub struct ReleaseAttempt {
    pub key: LockKey,
}

impl ShardCommand for ReleaseAttempt {
    type Output = ();

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<()> {
        shard.lockout.release(&self.key, now);
        done(Ok(()))
    }
}

#[derive(Debug, Default, Clone)]
struct Entry {
    failures: u32,
    /// How many locks this key has served; each lasts twice the previous.
    locks: u32,
    locked_until: Option<Timestamp>,
    /// Attempts reserved and not yet ended: when each lapses.
    in_flight: Vec<Timestamp>,
}

impl Entry {
    fn is_locked(&self, now: Timestamp) -> bool {
        self.locked_until.is_some_and(|until| until > now)
    }

    /// Ends the oldest reservation (and forgets lapsed ones).
    fn end_attempt(&mut self, now: Timestamp) {
        self.in_flight.retain(|lapses| *lapses > now);
        if !self.in_flight.is_empty() {
            self.in_flight.remove(0);
        }
    }
}

/// A shard's failed-attempt state, bounded to `max_entries` keys.
pub struct Lockout {
    entries: HashMap<LockKey, Entry>,
    threshold: u32,
    base: Duration,
    max_entries: usize,
    /// How long an attempt stays reserved if its request never ends it.
    reservation: Duration,
}

/// The longest a single lock lasts.
const MAX_LOCK: Duration = Duration::from_secs(24 * 3600);
/// What a request refused because the key's remaining tries are all in
/// flight should wait: they resolve within a hash or two.
const BUSY_WAIT: Duration = Duration::from_secs(1);

impl Lockout {
    pub fn new(threshold: u32, base: Duration, max_entries: usize, reservation: Duration) -> Self {
        Lockout { entries: HashMap::new(), threshold, base, max_entries, reservation }
    }

    /// `Some(wait)` while `key` is locked.
    pub fn locked_for(&self, key: &LockKey, now: Timestamp) -> Option<Duration> {
        let until = self.entries.get(key)?.locked_until?;
        (until > now).then(|| now.until(until).max(Duration::from_secs(1)))
    }

    /// The entry of `key`, making room for it within `max_entries`.
    fn entry(&mut self, key: LockKey, now: Timestamp) -> &mut Entry {
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&key) {
            // Keep what matters (active locks and their history, attempts in
            // flight); forget idle counters.
            self.entries.retain(|_, e| e.locks > 0 || !e.in_flight.is_empty());
            if self.entries.len() >= self.max_entries {
                self.entries.retain(|_, e| e.is_locked(now));
            }
        }
        self.entries.entry(key).or_default()
    }

    /// Reserves an attempt; `Err(wait)` while locked, or while failures and
    /// attempts in flight already reach the threshold.
    pub fn reserve(&mut self, key: LockKey, now: Timestamp, rules: Option<LockRules>) -> Result<(), Duration> {
        if let Some(wait) = self.locked_for(&key, now) {
            return Err(wait);
        }
        let threshold = rules.map_or(self.threshold, |r| r.threshold);
        let lapses = now.plus(self.reservation);
        let entry = self.entry(key, now);
        entry.in_flight.retain(|lapse| *lapse > now);
        let pending = u32::try_from(entry.in_flight.len()).unwrap_or(u32::MAX);
        if entry.failures.saturating_add(pending) >= threshold {
            return Err(BUSY_WAIT);
        }
        entry.in_flight.push(lapses);
        Ok(())
    }

    /// Ends a reservation without counting anything.
    pub fn release(&mut self, key: &LockKey, now: Timestamp) {
        if let Some(entry) = self.entries.get_mut(key) {
            entry.end_attempt(now);
        }
    }

    /// Ends a reservation as a failure; returns the lock's duration when
    /// this one locks the key. A failure of an attempt that was in flight
    /// when the key locked belongs to that lock and is not counted again.
    pub fn record_failure(&mut self, key: LockKey, now: Timestamp, rules: Option<LockRules>) -> Option<Duration> {
        let (threshold, base) = rules.map_or((self.threshold, self.base), |r| (r.threshold, r.base));
        let entry = self.entry(key, now);
        entry.end_attempt(now);
        if entry.is_locked(now) {
            return None;
        }
        entry.failures += 1;
        if entry.failures < threshold {
            return None;
        }
        let factor = 2u32.saturating_pow(entry.locks.min(20));
        let lock = base.saturating_mul(factor).min(MAX_LOCK);
        entry.failures = 0;
        entry.locks += 1;
        entry.locked_until = Some(now.plus(lock));
        Some(lock)
    }

    /// A success clears the key's record.
    pub fn record_success(&mut self, key: &LockKey) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenth_failure_locks_and_locks_double() {
        let mut lockout = Lockout::new(10, Duration::from_secs(60), 100, Duration::from_secs(10));
        let key = LockKey::Account(UserId::generate());
        let now = Timestamp::from_secs(0);
        for _ in 0..9 {
            assert_eq!(lockout.record_failure(key.clone(), now, None), None);
        }
        assert_eq!(lockout.record_failure(key.clone(), now, None), Some(Duration::from_secs(60)));
        assert_eq!(lockout.locked_for(&key, now), Some(Duration::from_secs(60)));
        let later = now.plus(Duration::from_secs(61));
        assert_eq!(lockout.locked_for(&key, later), None);
        for _ in 0..9 {
            lockout.record_failure(key.clone(), later, None);
        }
        assert_eq!(lockout.record_failure(key.clone(), later, None), Some(Duration::from_secs(120)));
    }

    #[test]
    fn success_clears_the_record() {
        let mut lockout = Lockout::new(2, Duration::from_secs(60), 100, Duration::from_secs(10));
        let key = LockKey::Unknown(ProjectId::default_project(), "x@y.z".into());
        lockout.record_failure(key.clone(), Timestamp(0), None);
        lockout.record_success(&key);
        assert_eq!(lockout.record_failure(key, Timestamp(0), None), None);
    }

    #[test]
    fn parallel_attempts_past_the_threshold_are_refused_before_they_are_checked() {
        let mut lockout = Lockout::new(10, Duration::from_secs(60), 100, Duration::from_secs(10));
        let key = LockKey::Account(UserId::generate());
        let now = Timestamp::from_secs(0);
        let reserved = (0..40).filter(|_| lockout.reserve(key.clone(), now, None).is_ok()).count();
        assert_eq!(reserved, 10, "only the tries left may be in flight");
        let locks: Vec<_> = (0..10).filter_map(|_| lockout.record_failure(key.clone(), now, None)).collect();
        assert_eq!(locks, vec![Duration::from_secs(60)], "one lock, not stacked ones");
        assert_eq!(lockout.locked_for(&key, now), Some(Duration::from_secs(60)));
    }

    #[test]
    fn a_released_or_lapsed_reservation_frees_its_try() {
        let mut lockout = Lockout::new(2, Duration::from_secs(60), 100, Duration::from_secs(10));
        let key = LockKey::Account(UserId::generate());
        let now = Timestamp::from_secs(0);
        assert!(lockout.reserve(key.clone(), now, None).is_ok() && lockout.reserve(key.clone(), now, None).is_ok());
        assert_eq!(lockout.reserve(key.clone(), now, None), Err(BUSY_WAIT));
        lockout.release(&key, now);
        assert!(lockout.reserve(key.clone(), now, None).is_ok());
        // Neither is ended: they lapse with the request deadline.
        let later = now.plus(Duration::from_secs(11));
        assert!(lockout.reserve(key.clone(), later, None).is_ok());
    }

    #[test]
    fn entries_are_bounded() {
        let mut lockout = Lockout::new(10, Duration::from_secs(60), 8, Duration::from_secs(10));
        for i in 0..100 {
            lockout.record_failure(LockKey::Unknown(ProjectId::default_project(), i.to_string()), Timestamp(0), None);
            assert!(lockout.entries.len() <= 8);
        }
    }
}
