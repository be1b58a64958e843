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

/// Whose failures are counted: an existing account, or an identifier (email
/// or username) that matched none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockKey {
    Account(UserId),
    Unknown(ProjectId, String),
}

/// A key routes (and hashes) as what it names: an account's key to the
/// shard of its user id, where its sessions start; an unknown name to the
/// shard of (project, name), where a registration of that name would go.
impl Hash for LockKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            LockKey::Account(id) => id.hash(state),
            LockKey::Unknown(project, name) => (project, name).hash(state),
        }
    }
}

/// Answer `Locked` at once if `key` is locked out. Routed by the key.
pub struct CheckLock {
    pub key: LockKey,
}

impl ShardCommand for CheckLock {
    type Output = ();

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<()> {
        done(shard.lockout.locked_for(&self.key, now).map_or(Ok(()), |wait| Err(ShardError::Locked(wait))))
    }
}

/// Count a failed sign-in for `key` (it may lock the key). Routed by the key.
pub struct RecordFailure {
    pub key: LockKey,
}

impl ShardCommand for RecordFailure {
    type Output = ();

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<()> {
        if let Some(lock) = shard.lockout.record_failure(self.key, now) {
            tracing::warn!(target: "security", event = "login_locked", shard = shard.index, seconds = lock.as_secs(), "login locked after repeated failures");
        }
        done(Ok(()))
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Entry {
    failures: u32,
    /// How many locks this key has served; each lasts twice the previous.
    locks: u32,
    locked_until: Option<Timestamp>,
}

/// A shard's failed-login state, bounded to `max_entries` keys.
pub struct Lockout {
    entries: HashMap<LockKey, Entry>,
    threshold: u32,
    base: Duration,
    max_entries: usize,
}

/// The longest a single lock lasts.
const MAX_LOCK: Duration = Duration::from_secs(24 * 3600);

impl Lockout {
    pub fn new(threshold: u32, base: Duration, max_entries: usize) -> Self {
        Lockout { entries: HashMap::new(), threshold, base, max_entries }
    }

    /// `Some(wait)` while `key` is locked.
    pub fn locked_for(&self, key: &LockKey, now: Timestamp) -> Option<Duration> {
        let until = self.entries.get(key)?.locked_until?;
        (until > now).then(|| now.until(until).max(Duration::from_secs(1)))
    }

    /// Counts a failure; returns the lock's duration when this one locks the key.
    pub fn record_failure(&mut self, key: LockKey, now: Timestamp) -> Option<Duration> {
        if self.entries.len() >= self.max_entries && !self.entries.contains_key(&key) {
            // Keep what matters (active locks and their history); forget idle counters.
            self.entries.retain(|_, e| e.locks > 0);
            if self.entries.len() >= self.max_entries {
                self.entries.retain(|_, e| e.locked_until.is_some_and(|u| u > now));
            }
        }
        let entry = self.entries.entry(key).or_default();
        entry.failures += 1;
        if entry.failures < self.threshold {
            return None;
        }
        let factor = 2u32.saturating_pow(entry.locks.min(20));
        let lock = self.base.saturating_mul(factor).min(MAX_LOCK);
        entry.failures = 0;
        entry.locks += 1;
        entry.locked_until = Some(now.plus(lock));
        Some(lock)
    }

    /// A successful login clears the key's record.
    pub fn record_success(&mut self, key: &LockKey) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenth_failure_locks_and_locks_double() {
        let mut lockout = Lockout::new(10, Duration::from_secs(60), 100);
        let key = LockKey::Account(UserId::generate());
        let now = Timestamp::from_secs(0);
        for _ in 0..9 {
            assert_eq!(lockout.record_failure(key.clone(), now), None);
        }
        assert_eq!(lockout.record_failure(key.clone(), now), Some(Duration::from_secs(60)));
        assert_eq!(lockout.locked_for(&key, now), Some(Duration::from_secs(60)));
        let later = now.plus(Duration::from_secs(61));
        assert_eq!(lockout.locked_for(&key, later), None);
        for _ in 0..9 {
            lockout.record_failure(key.clone(), later);
        }
        assert_eq!(lockout.record_failure(key.clone(), later), Some(Duration::from_secs(120)));
    }

    #[test]
    fn success_clears_the_record() {
        let mut lockout = Lockout::new(2, Duration::from_secs(60), 100);
        let key = LockKey::Unknown(ProjectId::default_project(), "x@y.z".into());
        lockout.record_failure(key.clone(), Timestamp(0));
        lockout.record_success(&key);
        assert_eq!(lockout.record_failure(key, Timestamp(0)), None);
    }

    #[test]
    fn entries_are_bounded() {
        let mut lockout = Lockout::new(10, Duration::from_secs(60), 8);
        for i in 0..100 {
            lockout.record_failure(LockKey::Unknown(ProjectId::default_project(), i.to_string()), Timestamp(0));
            assert!(lockout.entries.len() <= 8);
        }
    }
}
