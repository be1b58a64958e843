//! The change feed: how a revocation on one node reaches every other node.
//!
//! Owns this node's id, revocation (`revoke_session`, `revoke_api_key`,
//! `revoke_user`: the local token cache at once, then an event in the
//! store's feed table), project changes (`project_changed`: every node
//! reloads its project directory), and the poller that applies other
//! nodes' events to the local token cache (`AccessGate::invalidate_*`) and
//! directory. Revoking anything is
//! one call here; no flow invalidates or publishes by itself.
//!
//! Invariants: the poller looks back `LOOK_BACK` behind the newest event it
//! has seen (clocks of nodes differ a little) and skips events it already
//! applied. While the feed cannot be read (the database is down or out of
//! reach) the cursor stays put and cached tokens keep verifying, as the
//! store outage rules require; the first poll that succeeds again reads
//! everything published meanwhile. A gap longer than `MAX_CATCH_UP` is not
//! replayed: the whole token cache is dropped instead (the store is the
//! truth, and the next check of each token consults it).
//!
//! A revocation that could not be published is kept (at most
//! `MAX_PENDING`, oldest dropped first, counted) and published again,
//! stamped with the time of the retry, before each poll. Never blocks a
//! request: the poll and the retries run on their own timer.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::account::{ApiKeyId, SessionId, UserId};
use crate::clock::{SharedClock, Timestamp};
use crate::projects::Directory;
use crate::store::{FeedEvent, FeedKind, Store};
use crate::telemetry::names;
use crate::token::AccessGate;

/// How far behind the newest seen event each poll looks again.
const LOOK_BACK: Duration = Duration::from_secs(3);
/// The longest unread stretch of feed replayed after an outage (one read per
/// minute bucket); a longer one drops the token cache instead.
const MAX_CATCH_UP: Duration = Duration::from_secs(15 * 60);
/// Unpublished revocations kept for retry.
const MAX_PENDING: usize = 10_000;

struct Cursor {
    /// The newest event time applied (or the start).
    newest: Timestamp,
    /// When a poll last succeeded.
    last_ok: Timestamp,
    /// Ids applied within the look-back window, with their times.
    seen: HashMap<Uuid, Timestamp>,
}

pub struct Feed {
    node: String,
    store: Arc<dyn Store>,
    gate: Arc<AccessGate>,
    projects: Arc<Directory>,
    clock: SharedClock,
    cursor: Mutex<Cursor>,
    pending: Mutex<VecDeque<FeedEvent>>,
    /// A project changed elsewhere and the directory is not reloaded yet.
    reload_projects: AtomicBool,
}

impl Feed {
    pub fn new(store: Arc<dyn Store>, gate: Arc<AccessGate>, projects: Arc<Directory>, clock: SharedClock) -> Self {
        let now = clock.now();
        let node = crate::token::b64url(&crate::token::random_bytes::<9>());
        let cursor = Cursor { newest: Timestamp(now.0 - 1000), last_ok: now, seen: HashMap::new() };
        // Exported from the start, so dashboards and alerts see the series.
        metrics::gauge!(names::FEED_LAG).set(0.0);
        Feed {
            node,
            store,
            gate,
            projects,
            clock,
            cursor: Mutex::new(cursor),
            pending: Mutex::new(VecDeque::new()),
            reload_projects: AtomicBool::new(false),
        }
    }

    /// Tells the other nodes; a failure is logged and the event kept for
    /// retry, never returned to the caller.
    async fn publish(&self, kind: FeedKind, subject: Uuid) {
        let event = FeedEvent { id: Uuid::now_v7(), at: self.clock.now(), kind, subject, node: self.node.clone() };
        if let Err(e) = self.store.append_feed(event.clone()).await {
            self.publish_failed(&event, &e);
            let mut pending = lock(&self.pending);
            if pending.len() >= MAX_PENDING {
                pending.pop_front();
                tracing::error!(target: "security", event = "feed_event_dropped",
                    "retry queue full; the oldest unpublished revocation reaches other nodes only when their cached entry expires");
            }
            pending.push_back(event);
        }
    }

    /// (The store wrapper counts the error itself.)
    fn publish_failed(&self, event: &FeedEvent, error: &crate::store::StoreError) {
        tracing::warn!(target: "security", event = "feed_publish_failed", kind = event.kind.as_str(), error = %error,
            "revocation not published yet; retried before the next feed poll");
    }

    /// Publishes the kept events again, oldest first, stopping at the first
    /// failure (before each poll, and once more at shutdown).
    pub async fn publish_pending(&self) {
        loop {
            let Some(mut event) = lock(&self.pending).pop_front() else { return };
            // Other nodes' cursors have moved on: stamp it with now.
            event.at = self.clock.now();
            if let Err(e) = self.store.append_feed(event.clone()).await {
                self.publish_failed(&event, &e);
                lock(&self.pending).push_front(event);
                return;
            }
        }
    }

    /// Revokes a session everywhere: at once on this node, through the feed
    /// on the others.
    pub async fn revoke_session(&self, session: SessionId) {
        self.gate.invalidate_session(session, self.clock.now());
        self.publish(FeedKind::SessionRevoked, session.0).await;
    }

    /// Revokes an API key everywhere.
    pub async fn revoke_api_key(&self, key: ApiKeyId) {
        self.gate.invalidate_api_key(key, self.clock.now());
        self.publish(FeedKind::ApiKeyRevoked, key.0).await;
    }

    /// Makes every cached credential of `user` be checked again, everywhere
    /// (the account was disabled or changed role).
    pub async fn revoke_user(&self, user: UserId) {
        self.gate.invalidate_user(user, self.clock.now());
        self.publish(FeedKind::UserChanged, user.0).await;
    }

    /// Tells every other node to reload its project directory (this node's
    /// is up to date: the writer put the record in).
    pub async fn project_changed(&self) {
        self.publish(FeedKind::ProjectChanged, Uuid::nil()).await;
    }

    /// Publishes pending events, then reads and applies what other nodes
    /// published since the last successful poll.
    pub async fn poll(&self) {
        self.publish_pending().await;
        self.apply_events().await;
        if self.reload_projects.swap(false, Ordering::AcqRel)
            && let Err(e) = self.projects.reload().await
        {
            tracing::warn!(error = %e, "reloading the project directory failed; retried at the next poll");
            self.reload_projects.store(true, Ordering::Release);
        }
    }

    async fn apply_events(&self) {
        let now = self.clock.now();
        let after = {
            let mut cursor = lock(&self.cursor);
            if cursor.newest.plus(MAX_CATCH_UP) < now {
                tracing::warn!(
                    unread_secs = cursor.newest.until(now).as_secs(),
                    "change feed unread for too long to replay; dropping the token cache"
                );
                self.gate.cache().clear();
                cursor.newest = Timestamp(now.0 - 1000);
            }
            Timestamp(cursor.newest.0 - i64::try_from(LOOK_BACK.as_millis()).unwrap_or(i64::MAX))
        };
        let events = match self.store.read_feed(after, now).await {
            Ok(events) => events,
            Err(e) => {
                let mut cursor = lock(&self.cursor);
                if cursor.last_ok.plus(LOOK_BACK) <= now {
                    // Once per window: cached tokens keep verifying meanwhile.
                    tracing::warn!(error = %e, "change feed unreadable; replaying it when the store answers again");
                    cursor.last_ok = now;
                }
                return;
            }
        };
        let mut lag = 0.0_f64;
        let mut cursor = lock(&self.cursor);
        cursor.last_ok = now;
        for event in events {
            if cursor.seen.contains_key(&event.id) {
                continue;
            }
            cursor.seen.insert(event.id, event.at);
            cursor.newest = cursor.newest.max(event.at);
            if event.node == self.node {
                continue;
            }
            lag = lag.max(event.at.until(now).as_secs_f64());
            match event.kind {
                FeedKind::SessionRevoked => self.gate.invalidate_session(SessionId(event.subject), now),
                FeedKind::ApiKeyRevoked => self.gate.invalidate_api_key(ApiKeyId(event.subject), now),
                FeedKind::UserChanged => self.gate.invalidate_user(UserId(event.subject), now),
                FeedKind::ProjectChanged => self.reload_projects.store(true, Ordering::Release),
            }
        }
        let horizon = Timestamp(cursor.newest.0 - 2 * i64::try_from(LOOK_BACK.as_millis()).unwrap_or(i64::MAX));
        cursor.seen.retain(|_, at| *at > horizon);
        // With nothing new, the newest event moves no further: keep the
        // window near now so a quiet feed is not re-read from far back.
        let floor = Timestamp(now.0 - 1000);
        cursor.newest = cursor.newest.max(floor);
        metrics::gauge!(names::FEED_LAG).set(lag);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
