//! A store wrapper that fails or stalls on command: fault injection for
//! tests and drills, never used by `serve`.
//!
//! `fail(true)` makes every call answer `Unavailable` (a database that is
//! down); `fail_op("append_feed", true)` fails one operation only, by its
//! `Store` method name; `pause()` makes every call wait until `resume()` (a
//! database that hangs). Otherwise calls pass through to the wrapped store.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;

use super::{FeedEvent, RotateOutcome, Store, StoreError, StoreResult};
use crate::account::{
    ApiKey, ApiKeyId, AuditEvent, CodePurpose, OneTimeCode, ProjectId, RefreshRecord, Rotation, Session, SessionId,
    User, UserId,
};
use crate::clock::Timestamp;

pub struct FaultyStore {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    failing_ops: Mutex<HashSet<&'static str>>,
    open: watch::Sender<bool>,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(FaultyStore {
            inner,
            failing: AtomicBool::new(false),
            failing_ops: Mutex::default(),
            open: watch::Sender::new(true),
        })
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
}

#[async_trait]
impl Store for FaultyStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ping(&self) -> StoreResult<()> {
        self.enter("ping").await?;
        self.inner.ping().await
    }
    async fn has_users(&self, project: &ProjectId) -> StoreResult<bool> {
        self.enter("has_users").await?;
        self.inner.has_users(project).await
    }
    async fn create_user(&self, user: User) -> StoreResult<User> {
        self.enter("create_user").await?;
        self.inner.create_user(user).await
    }
    async fn find_user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.enter("find_user").await?;
        self.inner.find_user(id).await
    }
    async fn find_user_by_email(&self, project: &ProjectId, email: &str) -> StoreResult<Option<User>> {
        self.enter("find_user_by_email").await?;
        self.inner.find_user_by_email(project, email).await
    }
    async fn find_user_by_username(&self, project: &ProjectId, username: &str) -> StoreResult<Option<User>> {
        self.enter("find_user_by_username").await?;
        self.inner.find_user_by_username(project, username).await
    }
    async fn update_user(&self, user: User) -> StoreResult<User> {
        self.enter("update_user").await?;
        self.inner.update_user(user).await
    }
    async fn create_session(&self, session: Session, refresh: RefreshRecord) -> StoreResult<()> {
        self.enter("create_session").await?;
        self.inner.create_session(session, refresh).await
    }
    async fn find_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        self.enter("find_session").await?;
        self.inner.find_session(id).await
    }
    async fn list_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        self.enter("list_sessions").await?;
        self.inner.list_sessions(user, now).await
    }
    async fn delete_session(&self, id: SessionId) -> StoreResult<bool> {
        self.enter("delete_session").await?;
        self.inner.delete_session(id).await
    }
    async fn delete_user_sessions(&self, user: UserId, keep: Option<SessionId>) -> StoreResult<Vec<SessionId>> {
        self.enter("delete_user_sessions").await?;
        self.inner.delete_user_sessions(user, keep).await
    }
    async fn find_refresh_token(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshRecord>> {
        self.enter("find_refresh_token").await?;
        self.inner.find_refresh_token(digest).await
    }
    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        rotation: Rotation,
        successor: RefreshRecord,
        session_touch: (Timestamp, Timestamp),
    ) -> StoreResult<RotateOutcome> {
        self.enter("rotate_refresh_token").await?;
        self.inner.rotate_refresh_token(old, rotation, successor, session_touch).await
    }
    async fn create_api_key(&self, key: ApiKey) -> StoreResult<()> {
        self.enter("create_api_key").await?;
        self.inner.create_api_key(key).await
    }
    async fn find_api_key(&self, digest: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
        self.enter("find_api_key").await?;
        self.inner.find_api_key(digest).await
    }
    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>> {
        self.enter("list_api_keys").await?;
        self.inner.list_api_keys(user).await
    }
    async fn delete_api_key(&self, user: UserId, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
        self.enter("delete_api_key").await?;
        self.inner.delete_api_key(user, id).await
    }
    async fn touch_api_keys(&self, used: Vec<(ApiKeyId, Timestamp)>) -> StoreResult<()> {
        self.enter("touch_api_keys").await?;
        self.inner.touch_api_keys(used).await
    }
    async fn claim_once(&self, key: [u8; 32], expires_at: Timestamp) -> StoreResult<bool> {
        self.enter("claim_once").await?;
        self.inner.claim_once(key, expires_at).await
    }
    async fn put_code(&self, code: OneTimeCode) -> StoreResult<()> {
        self.enter("put_code").await?;
        self.inner.put_code(code).await
    }
    async fn find_code(
        &self,
        project: &ProjectId,
        purpose: CodePurpose,
        subject: &str,
    ) -> StoreResult<Option<OneTimeCode>> {
        self.enter("find_code").await?;
        self.inner.find_code(project, purpose, subject).await
    }
    async fn delete_code(&self, project: &ProjectId, purpose: CodePurpose, subject: &str) -> StoreResult<()> {
        self.enter("delete_code").await?;
        self.inner.delete_code(project, purpose, subject).await
    }
    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()> {
        self.enter("append_audit").await?;
        self.inner.append_audit(event).await
    }
    async fn list_audit(&self, project: &ProjectId, limit: usize) -> StoreResult<Vec<AuditEvent>> {
        self.enter("list_audit").await?;
        self.inner.list_audit(project, limit).await
    }
    async fn count_active_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        self.enter("count_active_sessions").await?;
        self.inner.count_active_sessions(now).await
    }
    async fn append_feed(&self, event: FeedEvent) -> StoreResult<()> {
        self.enter("append_feed").await?;
        self.inner.append_feed(event).await
    }
    async fn read_feed(&self, after: Timestamp, now: Timestamp) -> StoreResult<Vec<FeedEvent>> {
        self.enter("read_feed").await?;
        self.inner.read_feed(after, now).await
    }
    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<usize> {
        self.enter("sweep_expired").await?;
        self.inner.sweep_expired(now).await
    }
    async fn flush(&self) -> StoreResult<()> {
        self.enter("flush").await?;
        self.inner.flush().await
    }
}
