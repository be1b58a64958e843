//! A store wrapper that fails or stalls on command: fault injection for
//! tests and drills, never used by `serve`.
//!
//! `fail(true)` makes every call answer `Unavailable` (a database that is
//! down); `fail_op("append_feed", true)` fails one operation only, by its
//! `Store` method name; `pause()` makes every call wait until `resume()` (a
//! database that hangs); `hold_next("put_code")` holds only the next call of
//! one operation until `release_held()` (to force an interleaving). Otherwise
//! calls pass through to the wrapped store.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use super::{Store, StoreError, StoreResult};

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    failing_ops: Mutex<HashSet<&'static str>>,
    open: watch::Sender<bool>,
    /// The operation whose next call is held, and whether the hold is released.
    hold: Mutex<Option<&'static str>>,
    held_open: watch::Sender<bool>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            failing: AtomicBool::new(false),
            failing_ops: Mutex::default(),
            open: watch::Sender::new(true),
            hold: Mutex::default(),
            held_open: watch::Sender::new(true),
        })
    }

    /// Holds the next call of `op` (only that one) until `release_held`.
    pub fn hold_next(&self, op: &'static str) {
        self.held_open.send_replace(false);
        *lock(&self.hold) = Some(op);
    }

    /// Lets the held call go on.
    pub fn release_held(&self) {
        self.held_open.send_replace(true);
    }

    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Fails (or stops failing) the one operation named like its `Store` method.
    pub fn fail_op(&self, op: &'static str, failing: bool) {
        let mut ops = match self.failing_ops.lock() {
            Ok(ops) => ops,
            Err(poisoned) => poisoned.into_inner(),
        };
        if failing {
            ops.insert(op);
        } else {
            ops.remove(op);
        }
    }

    pub fn pause(&self) {
        self.open.send_replace(false);
    }

    pub fn resume(&self) {
        self.open.send_replace(true);
    }

    /// Waits while paused, then fails if failing (all calls or `op`).
    async fn enter(&self, op: &'static str) -> StoreResult<()> {
        let held = {
            let mut hold = lock(&self.hold);
            (*hold == Some(op)).then(|| hold.take()).is_some()
        };
        if held {
            let _ = self.held_open.subscribe().wait_for(|open| *open).await;
        }
        let mut open = self.open.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let _ = open.wait_for(|is_open| *is_open).await;
        let op_failing = match self.failing_ops.lock() {
            Ok(ops) => ops.contains(op),
            Err(poisoned) => poisoned.into_inner().contains(op),
        };
        if op_failing || self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("injected fault".into()));
        }
        Ok(())
    }

    /// Passes one call through, unless paused (waits) or failing (refuses).
    async fn around<T>(&self, op: &'static str, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        self.enter(op).await?;
        call.await
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

super::layer::forward_store!(FaultyStore);
