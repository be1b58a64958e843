//! A store wrapper that measures every operation: its latency into
//! `portcullis_store_op_duration_seconds{op,backend}` and its failures into
//! `portcullis_store_errors_total{op,backend}`. The app wraps whatever store
//! it is given in one, so both backends (and the test wrappers) are measured
//! the same way. Outcomes a caller expects (not found, already exists, a lost
//! race) are not errors; an unavailable or corrupt store is.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use super::{FeedEvent, RotateOutcome, Store, StoreError, StoreResult};
use crate::account::{
    ApiKey, ApiKeyId, AuditEvent, CodePurpose, OneTimeCode, ProjectId, RefreshRecord, Rotation, Session, SessionId,
    User, UserId,
};
use crate::clock::Timestamp;
use crate::telemetry::names;

pub struct MeteredStore {
    inner: Arc<dyn Store>,
}

impl MeteredStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<Self> {
        Arc::new(MeteredStore { inner })
    }

    async fn timed<T>(&self, op: &'static str, call: impl Future<Output = StoreResult<T>>) -> StoreResult<T> {
        let started = Instant::now();
        let result = call.await;
        let backend = self.inner.backend();
        metrics::histogram!(names::STORE_OP_DURATION, "op" => op, "backend" => backend)
            .record(started.elapsed().as_secs_f64());
        if let Err(StoreError::Unavailable(_) | StoreError::Corrupt(_)) = &result {
            metrics::counter!(names::STORE_ERRORS, "op" => op, "backend" => backend).increment(1);
        }
        result
    }
}

#[async_trait]
impl Store for MeteredStore {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    async fn ping(&self) -> StoreResult<()> {
        self.timed("ping", self.inner.ping()).await
    }
    async fn has_users(&self, project: &ProjectId) -> StoreResult<bool> {
        self.timed("has_users", self.inner.has_users(project)).await
    }
    async fn create_user(&self, user: User) -> StoreResult<User> {
        self.timed("create_user", self.inner.create_user(user)).await
    }
    async fn find_user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.timed("find_user", self.inner.find_user(id)).await
    }
    async fn find_user_by_email(&self, project: &ProjectId, email: &str) -> StoreResult<Option<User>> {
        self.timed("find_user_by_email", self.inner.find_user_by_email(project, email)).await
    }
    async fn find_user_by_username(&self, project: &ProjectId, username: &str) -> StoreResult<Option<User>> {
        self.timed("find_user_by_username", self.inner.find_user_by_username(project, username)).await
    }
    async fn update_user(&self, user: User) -> StoreResult<User> {
        self.timed("update_user", self.inner.update_user(user)).await
    }
    async fn create_session(&self, session: Session, refresh: RefreshRecord) -> StoreResult<()> {
        self.timed("create_session", self.inner.create_session(session, refresh)).await
    }
    async fn find_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        self.timed("find_session", self.inner.find_session(id)).await
    }
    async fn list_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        self.timed("list_sessions", self.inner.list_sessions(user, now)).await
    }
    async fn delete_session(&self, id: SessionId) -> StoreResult<bool> {
        self.timed("delete_session", self.inner.delete_session(id)).await
    }
    async fn delete_user_sessions(&self, user: UserId, keep: Option<SessionId>) -> StoreResult<Vec<SessionId>> {
        self.timed("delete_user_sessions", self.inner.delete_user_sessions(user, keep)).await
    }
    async fn find_refresh_token(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshRecord>> {
        self.timed("find_refresh_token", self.inner.find_refresh_token(digest)).await
    }
    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        rotation: Rotation,
        successor: RefreshRecord,
        session_touch: (Timestamp, Timestamp),
    ) -> StoreResult<RotateOutcome> {
        self.timed("rotate_refresh_token", self.inner.rotate_refresh_token(old, rotation, successor, session_touch))
            .await
    }
    async fn create_api_key(&self, key: ApiKey) -> StoreResult<()> {
        self.timed("create_api_key", self.inner.create_api_key(key)).await
    }
    async fn find_api_key(&self, digest: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
        self.timed("find_api_key", self.inner.find_api_key(digest)).await
    }
    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>> {
        self.timed("list_api_keys", self.inner.list_api_keys(user)).await
    }
    async fn delete_api_key(&self, user: UserId, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
        self.timed("delete_api_key", self.inner.delete_api_key(user, id)).await
    }
    async fn touch_api_keys(&self, used: Vec<(ApiKeyId, Timestamp)>) -> StoreResult<()> {
        self.timed("touch_api_keys", self.inner.touch_api_keys(used)).await
    }
    async fn claim_once(&self, key: [u8; 32], expires_at: Timestamp) -> StoreResult<bool> {
        self.timed("claim_once", self.inner.claim_once(key, expires_at)).await
    }
    async fn put_code(&self, code: OneTimeCode) -> StoreResult<()> {
        self.timed("put_code", self.inner.put_code(code)).await
    }
    async fn find_code(
        &self,
        project: &ProjectId,
        purpose: CodePurpose,
        subject: &str,
    ) -> StoreResult<Option<OneTimeCode>> {
        self.timed("find_code", self.inner.find_code(project, purpose, subject)).await
    }
    async fn delete_code(&self, project: &ProjectId, purpose: CodePurpose, subject: &str) -> StoreResult<()> {
        self.timed("delete_code", self.inner.delete_code(project, purpose, subject)).await
    }
    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()> {
        self.timed("append_audit", self.inner.append_audit(event)).await
    }
    async fn list_audit(&self, project: &ProjectId, limit: usize) -> StoreResult<Vec<AuditEvent>> {
        self.timed("list_audit", self.inner.list_audit(project, limit)).await
    }
    async fn count_active_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        self.timed("count_active_sessions", self.inner.count_active_sessions(now)).await
    }
    async fn append_feed(&self, event: FeedEvent) -> StoreResult<()> {
        self.timed("append_feed", self.inner.append_feed(event)).await
    }
    async fn read_feed(&self, after: Timestamp, now: Timestamp) -> StoreResult<Vec<FeedEvent>> {
        self.timed("read_feed", self.inner.read_feed(after, now)).await
    }
    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<usize> {
        self.timed("sweep_expired", self.inner.sweep_expired(now)).await
    }
    async fn flush(&self) -> StoreResult<()> {
        self.timed("flush", self.inner.flush()).await
    }
}
