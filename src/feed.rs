//! The change feed: how a revocation on one node reaches every other node.
//!
//! Owns this node's id, the publishing of revocations and account changes
//! to the store's feed table, and the poller that applies other nodes'
//! events to the local token cache (`AccessGate::invalidate_*`).
//!
//! Invariants: the poller looks back `LOOK_BACK` behind the newest event it
//! has seen (clocks of nodes differ a little) and skips events it already
//! applied; if polling fails for longer than that window, events may have
//! been missed, so the whole token cache is dropped (the store is the truth
//! and the next check of each token consults it). Never blocks a request:
//! publishing failures are logged and counted, and the poll runs on its own
//! timer.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use uuid::Uuid;

use crate::account::{ApiKeyId, SessionId, UserId};
use crate::clock::{SharedClock, Timestamp};
use crate::store::{FeedEvent, FeedKind, Store};
use crate::telemetry::names;
use crate::token::AccessGate;

/// How far behind the newest seen event each poll looks again.
const LOOK_BACK: Duration = Duration::from_secs(3);

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
    clock: SharedClock,
    cursor: Mutex<Cursor>,
}

impl Feed {
    pub fn new(store: Arc<dyn Store>, gate: Arc<AccessGate>, clock: SharedClock) -> Self {
        let now = clock.now();
        let node = crate::token::b64url(&crate::token::random_bytes::<9>());
        let cursor = Cursor { newest: Timestamp(now.0 - 1000), last_ok: now, seen: HashMap::new() };
        Feed { node, store, gate, clock, cursor: Mutex::new(cursor) }
    }

    /// Tells the other nodes; failures are logged, never returned to the caller.
    pub async fn publish(&self, kind: FeedKind, subject: Uuid) {
        let event = FeedEvent { id: Uuid::now_v7(), at: self.clock.now(), kind, subject, node: self.node.clone() };
        if let Err(e) = self.store.append_feed(event).await {
            metrics::counter!(names::STORE_ERRORS, "op" => "append_feed", "backend" => self.store.backend())
                .increment(1);
            tracing::error!(target: "security", event = "feed_publish_failed", kind = kind.as_str(), error = %e,
                "revocation not published; other nodes honour it when their cached entry expires");
        }
    }

    pub async fn publish_session(&self, session: SessionId) {
        self.publish(FeedKind::SessionRevoked, session.0).await;
    }

    pub async fn publish_api_key(&self, key: ApiKeyId) {
        self.publish(FeedKind::ApiKeyRevoked, key.0).await;
    }

    pub async fn publish_user(&self, user: UserId) {
        self.publish(FeedKind::UserChanged, user.0).await;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cursor> {
        match self.cursor.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Reads and applies what other nodes published since the last poll.
    pub async fn poll(&self) {
        let now = self.clock.now();
        let after = {
            let cursor = self.lock();
            Timestamp(cursor.newest.0 - i64::try_from(LOOK_BACK.as_millis()).unwrap_or(i64::MAX))
        };
        let events = match self.store.read_feed(after, now).await {
            Ok(events) => events,
            Err(e) => {
                let mut cursor = self.lock();
                if cursor.last_ok.plus(LOOK_BACK) <= now {
                    tracing::warn!(error = %e, "change feed unreadable past the look-back window; dropping the token cache");
                    self.gate.cache().clear();
                    cursor.last_ok = now;
                }
                return;
            }
        };
        let mut lag = 0.0_f64;
        let mut cursor = self.lock();
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

    pub fn node(&self) -> &str {
        &self.node
    }
}
