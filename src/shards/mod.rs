//! Sharded actors: the one owner, per node, of each user's mutable state.
//!
//! This file is the plumbing: the [`ShardRouter`] (hash of the owning key →
//! shard), the [`UserShard`] actor, its bounded mailbox, and the one generic
//! handler that runs any [`ShardCommand`]. The rules live beside it, one file
//! per family, each with its command structs: `users` (create, profile and
//! checked edits), `sessions` (start, revoke), `refresh` (rotation), `codes`
//! (email-code tries), `lockout` (failed-login counting) and `api_keys`.
//!
//! A shard runs one command at a time, to completion, including its store
//! calls: that is what serializes a user's refresh rotation, session
//! revocation, profile change and failed-login counting without locks.
//! Password hashing never runs inside a shard (it would stall every user of
//! the shard); callers hash first, then send the result.
//!
//! Every mailbox is bounded: a command to a shard with `capacity` commands
//! already waiting is refused at once with [`ShardError::Overloaded`].

mod api_keys;
mod codes;
mod lockout;
mod refresh;
mod sessions;
mod users;

pub use api_keys::{CreateApiKey, MAX_API_KEYS_PER_USER, RevokeApiKey, RevokeApiKeys};
pub use codes::{ConsumeCode, IssueCode, Issued};
pub use lockout::{LockKey, LockRules, Lockout, RecordFailure, RecordSuccess, ReleaseAttempt, ReserveAttempt};
pub use refresh::{RefreshExchange, RotateRefresh};
pub use sessions::{RevokeSession, RevokeSessions, StartSession};
pub use users::{CreateUser, Declined, EditUser, UpdateUser, UserChange, UserEdit};

use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix::{Actor, ActorFutureExt, Addr, Arbiter, AtomicResponse, Context, Handler, Message, WrapFuture};
use tokio::sync::oneshot;

use crate::clock::{SharedClock, Timestamp};
use crate::store::{Store, StoreError};
use crate::telemetry::names;

#[derive(Debug, thiserror::Error)]
pub enum ShardError {
    /// The shard's mailbox is full.
    #[error("shard mailbox full")]
    Overloaded,
    /// The shard did not answer within the deadline, or has stopped.
    #[error("shard did not answer")]
    Timeout,
    /// Too many failed logins; try again after the duration.
    #[error("locked for {0:?}")]
    Locked(Duration),
    /// The refresh token is unknown, expired, or its session is gone.
    #[error("refresh token invalid")]
    InvalidRefresh,
    /// A rotated refresh token was presented after the grace window; its
    /// session has been revoked.
    #[error("refresh token reused")]
    RefreshReused(crate::account::SessionId),
    /// A per-user bound is reached.
    #[error("limit reached: {0}")]
    LimitReached(&'static str),
    /// A `UserEdit` found the user in a state it does not apply to.
    #[error("declined: {0:?}")]
    Declined(Declined),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The store work a command leaves after its synchronous part, run to
/// completion before the shard takes its next command.
pub type Work<T> = Pin<Box<dyn Future<Output = Result<T, ShardError>>>>;

/// A command for a user shard: one documented struct per command, in the
/// file of its rule family.
pub trait ShardCommand: Send + 'static {
    /// What the caller gets back.
    type Output: Send + 'static;

    /// Runs inside the shard. The synchronous part may read and change the
    /// shard's own state (its lockout table); the returned work does the
    /// store calls.
    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<Self::Output>;
}

/// Finished work with nothing left to do in the store.
fn done<T: 'static>(result: Result<T, ShardError>) -> Work<T> {
    Box::pin(std::future::ready(result))
}

/// A command on its way, with the channel its answer goes to.
struct Envelope<C: ShardCommand> {
    command: C,
    reply: oneshot::Sender<Result<C::Output, ShardError>>,
}

impl<C: ShardCommand> Message for Envelope<C> {
    type Result = ();
}

/// Failed-login keys one shard remembers at least, however many shards
/// share the node's `lockout_max_entries`.
const MIN_LOCKOUT_ENTRIES_PER_SHARD: usize = 64;

/// One shard: the single owner, on this node, of its users' mutable state.
///
/// Invariant: its state (the lockout table) is touched only by its own
/// handler, and a command's store calls finish before the next command
/// starts (`AtomicResponse`).
pub struct UserShard {
    index: usize,
    store: Arc<dyn Store>,
    lockout: Lockout,
    clock: SharedClock,
    depth: Arc<Depth>,
}

impl UserShard {
    fn new(
        index: usize,
        store: Arc<dyn Store>,
        clock: SharedClock,
        policy: ShardPolicy,
        depth: Arc<Depth>,
        shards: usize,
    ) -> Self {
        let entries = (policy.lockout_max_entries / shards.max(1)).max(MIN_LOCKOUT_ENTRIES_PER_SHARD);
        let lockout = Lockout::new(policy.lockout_threshold, policy.lockout_base, entries, policy.attempt_deadline);
        UserShard { index, store, lockout, clock, depth }
    }
}

impl Actor for UserShard {
    type Context = Context<Self>;
}

/// Lowers the shard's depth when a command is finished, however it ends.
struct DepthGuard(Arc<Depth>);

impl Drop for DepthGuard {
    fn drop(&mut self) {
        self.0.leave();
    }
}

impl<C: ShardCommand> Handler<Envelope<C>> for UserShard {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, envelope: Envelope<C>, _ctx: &mut Context<Self>) -> Self::Result {
        let guard = DepthGuard(Arc::clone(&self.depth));
        let Envelope { command, reply } = envelope;
        let now = self.clock.now();
        let work = command.run(self, now);
        AtomicResponse::new(Box::pin(
            async move {
                // A caller that timed out dropped its receiver; nothing to tell.
                let _ = reply.send(work.await);
                drop(guard);
            }
            .into_actor(self)
            .map(|(), _, _| ()),
        ))
    }
}

/// Settings the shards act on.
#[derive(Debug, Clone, Copy)]
pub struct ShardPolicy {
    pub lockout_threshold: u32,
    pub lockout_base: Duration,
    /// How long a reserved attempt at a secret stays reserved if its
    /// request never ends it (the request deadline).
    pub attempt_deadline: Duration,
    /// Failed-attempt keys the node's shards remember at most, shared out
    /// evenly (`lockout_max_entries`).
    pub lockout_max_entries: usize,
}

struct ShardHandle {
    addr: Addr<UserShard>,
    /// Commands sent and not yet finished: the mailbox depth we bound.
    depth: Arc<Depth>,
}

/// A shard's depth and its `portcullis_actor_mailbox_depth{shard}` gauge,
/// which moves both when a command arrives and when one finishes.
pub struct Depth {
    count: AtomicUsize,
    gauge: metrics::Gauge,
}

impl Depth {
    fn new(shard: usize) -> Self {
        Depth {
            count: AtomicUsize::new(0),
            gauge: metrics::gauge!(names::ACTOR_MAILBOX_DEPTH, "shard" => shard.to_string()),
        }
    }

    /// Counts a command in, unless `capacity` are already in.
    fn enter(&self, capacity: usize) -> bool {
        let before = self.count.fetch_add(1, Ordering::AcqRel);
        if before >= capacity {
            self.count.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        self.gauge.set((before + 1) as f64);
        true
    }

    /// Counts a command out (finished, or never delivered).
    fn leave(&self) {
        let before = self.count.fetch_sub(1, Ordering::AcqRel);
        self.gauge.set(before.saturating_sub(1) as f64);
    }

    #[cfg(test)]
    fn load(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

/// Picks the shard for a key and delivers commands to it.
pub struct ShardRouter {
    shards: Vec<ShardHandle>,
    capacity: usize,
    deadline: Duration,
    /// The threads the shards run on (one per core); kept to stop them.
    arbiters: Vec<Arbiter>,
}

impl ShardRouter {
    /// Starts `count` shards spread over one arbiter per core. Must run
    /// inside an actix `System`.
    pub fn start(
        count: usize,
        capacity: usize,
        deadline: Duration,
        store: Arc<dyn Store>,
        clock: SharedClock,
        policy: ShardPolicy,
    ) -> Self {
        let mut shards = Vec::with_capacity(count);
        // Shards are cheap; threads are not. Many shards share a few arbiters:
        // a shard waiting on a store write holds up only its own users, while
        // the other shards on its arbiter run on.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(count).max(1);
        let arbiters: Vec<Arbiter> = (0..threads).map(|_| Arbiter::new()).collect();
        for index in 0..count {
            let arbiter = &arbiters[index % threads];
            let depth = Arc::new(Depth::new(index));
            let shard =
                UserShard::new(index, Arc::clone(&store), Arc::clone(&clock), policy, Arc::clone(&depth), count);
            // Slack over our own bound so actix's parking never refuses first.
            let mailbox = capacity + 16;
            let addr = UserShard::start_in_arbiter(&arbiter.handle(), move |ctx| {
                ctx.set_mailbox_capacity(mailbox);
                shard
            });
            shards.push(ShardHandle { addr, depth });
        }
        ShardRouter { shards, capacity, deadline, arbiters }
    }

    /// The shard index that owns `key`.
    pub fn shard_for(&self, key: &impl Hash) -> usize {
        let mut hasher = std::hash::DefaultHasher::new();
        key.hash(&mut hasher);
        (hasher.finish() % self.shards.len() as u64) as usize
    }

    /// Sends `command` to the shard owning `key` and waits for its answer.
    pub async fn ask<C: ShardCommand>(&self, key: &impl Hash, command: C) -> Result<C::Output, ShardError> {
        let shard = &self.shards[self.shard_for(key)];
        if !shard.depth.enter(self.capacity) {
            return Err(ShardError::Overloaded);
        }
        let (reply, answer) = oneshot::channel();
        if shard.addr.try_send(Envelope { command, reply }).is_err() {
            shard.depth.leave();
            return Err(ShardError::Overloaded);
        }
        match tokio::time::timeout(self.deadline, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) | Err(_) => Err(ShardError::Timeout),
        }
    }

    /// Stops every shard's arbiter after the commands already queued.
    pub fn stop(&self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }

    pub fn len(&self) -> usize {
        self.shards.len()
    }

    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::account::UserId;
    use crate::clock::ManualClock;

    #[test]
    fn depth_admits_up_to_capacity_and_falls_as_commands_finish() {
        let depth = Depth::new(0);
        assert!(depth.enter(2) && depth.enter(2));
        assert!(!depth.enter(2), "a third command over a capacity of two");
        assert_eq!(depth.load(), 2);
        depth.leave();
        assert_eq!(depth.load(), 1);
        assert!(depth.enter(2));
        depth.leave();
        depth.leave();
        assert_eq!(depth.load(), 0);
    }
    use crate::store::embedded::EmbeddedStore;
    use crate::store::fault::FaultyStore;

    const POLICY: ShardPolicy = ShardPolicy {
        lockout_threshold: 10,
        lockout_base: Duration::from_secs(60),
        attempt_deadline: Duration::from_secs(10),
        lockout_max_entries: 100_000,
    };

    #[actix_rt::test]
    async fn full_mailbox_is_refused_at_once_and_drains_after() {
        let dir = tempfile::tempdir().unwrap();
        let store = FaultyStore::new(Arc::new(EmbeddedStore::open(dir.path()).unwrap()));
        store.pause();
        let router = Arc::new(ShardRouter::start(
            1,
            2,
            Duration::from_secs(10),
            store.clone(),
            ManualClock::starting_now(),
            POLICY,
        ));
        let create = |email: &'static str| {
            let router = Arc::clone(&router);
            actix_rt::spawn(async move {
                let user = crate::store::contract::user(email, None);
                router.ask(&email, CreateUser { user }).await
            })
        };
        let (first, second) = (create("a@x.io"), create("b@x.io"));
        // Both are in the shard's mailbox (one running and stalled); the third must not wait.
        for _ in 0..500 {
            if router.shards[0].depth.load() == 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let user = crate::store::contract::user("c@x.io", None);
        let third = router.ask(&"c@x.io", CreateUser { user }).await;
        assert!(matches!(third, Err(ShardError::Overloaded)), "{third:?}");
        store.resume();
        assert!(first.await.unwrap().is_ok());
        assert!(second.await.unwrap().is_ok());
        // The answer can arrive a moment before the shard lets go of the command.
        for _ in 0..500 {
            if router.shards[0].depth.load() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        assert_eq!(router.shards[0].depth.load(), 0);
        router.stop();
    }

    #[actix_rt::test]
    async fn keys_spread_over_shards_and_stay_put() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let router = ShardRouter::start(4, 8, Duration::from_secs(1), store, ManualClock::starting_now(), POLICY);
        let ids: Vec<UserId> = (0..64).map(|_| UserId::generate()).collect();
        let used: std::collections::HashSet<usize> = ids.iter().map(|id| router.shard_for(id)).collect();
        assert_eq!(used.len(), 4);
        assert!(ids.iter().all(|id| router.shard_for(id) == router.shard_for(id)));
        router.stop();
    }
}
