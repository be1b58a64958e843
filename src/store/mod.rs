//! Persistence: the [`Store`] trait every backend implements, and its errors.
//!
//! Owns the durable truth about users, sessions, refresh tokens, API keys,
//! codes, the audit log and the change feed. Who writes through it:
//! - the shards: every change of a user's own state (accounts, sessions,
//!   refresh rotation, API keys, email-code tries), serialized per user;
//! - the flows in `auth`, for records no other request races on: single-use
//!   claims (`claim_once`, itself atomic), fresh email codes and audit events;
//! - the feed (its events), the API-key usage flusher (`touch_api_keys`) and
//!   the app's sweeper (`sweep_expired`), off the request path.
//!
//! Everything else only reads. A backend converts its driver's
//! errors into [`StoreError`] at its boundary and nowhere else. Every
//! conditional write (unique email, single-use refresh token) is decided by
//! the backend atomically, never by the caller's reading first.

#[cfg(test)]
pub(crate) mod contract;
pub mod cql;
pub mod embedded;
#[cfg(any(test, feature = "fault-injection"))]
pub mod fault;
mod layer;
pub mod metered;

use async_trait::async_trait;

use crate::account::{
    ApiKey, ApiKeyId, AuditEvent, CodePurpose, Identity, OneTimeCode, PasskeyId, PasskeyRecord, ProjectId,
    RefreshRecord, Role, Rotation, Session, SessionId, User, UserId,
};
use crate::clock::Timestamp;
use crate::projects::Project;

/// The most projects one install keeps (a list of them is read whole).
pub const MAX_PROJECTS: usize = 10_000;

/// Which unique field a conflicting write collided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UniqueField {
    Email,
    Username,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique field is taken by another record.
    #[error("{0:?} already exists")]
    AlreadyExists(UniqueField),
    /// A conditional write found the record changed since it was read.
    #[error("the record changed concurrently")]
    Conflict,
    /// The record to change does not exist.
    #[error("not found")]
    NotFound,
    /// The backend cannot take requests now (down, full, timed out).
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The backend returned something it should never return.
    #[error("store corrupt: {0}")]
    Corrupt(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A driver or engine failure, as the backends report it to callers.
pub(crate) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

/// Records (users, sessions, refresh tokens, API keys) are kept as JSON by
/// every backend: readable when debugging, and new optional fields need no
/// migration.
pub(crate) fn encode<T: serde::Serialize>(value: &T) -> StoreResult<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> StoreResult<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// What the change feed tells other nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedKind {
    SessionRevoked,
    ApiKeyRevoked,
    /// Disabled, role changed: every cached credential of the user is re-checked.
    UserChanged,
    /// A project was created, changed or deleted: every node reloads its
    /// directory (the subject is the nil id).
    ProjectChanged,
}

impl FeedKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FeedKind::SessionRevoked => "session_revoked",
            FeedKind::ApiKeyRevoked => "api_key_revoked",
            FeedKind::UserChanged => "user_changed",
            FeedKind::ProjectChanged => "project_changed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "session_revoked" => Some(FeedKind::SessionRevoked),
            "api_key_revoked" => Some(FeedKind::ApiKeyRevoked),
            "user_changed" => Some(FeedKind::UserChanged),
            "project_changed" => Some(FeedKind::ProjectChanged),
            _ => None,
        }
    }
}

/// One change-feed event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedEvent {
    pub id: uuid::Uuid,
    pub at: Timestamp,
    pub kind: FeedKind,
    /// The session, API key or user concerned.
    pub subject: uuid::Uuid,
    /// The node that wrote it.
    pub node: String,
}

/// A page of a project's audit log, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditQuery {
    pub project: ProjectId,
    /// Only the events of this user.
    pub user: Option<UserId>,
    /// Only events before this one (its `at` and `id`): the page after a cursor.
    pub before: Option<(Timestamp, uuid::Uuid)>,
    /// No event older than this is looked for (the retention's start).
    pub since: Timestamp,
    pub limit: usize,
}

/// Sign-ins of one project, counted (the admin overview's figures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoginCounts {
    pub succeeded: u64,
    pub failed: u64,
}

impl LoginCounts {
    pub fn add(&mut self, other: LoginCounts) {
        self.succeeded = self.succeeded.saturating_add(other.succeeded);
        self.failed = self.failed.saturating_add(other.failed);
    }
}

/// One node's sign-ins of one project in one minute, so far: each node
/// writes its own totals (a rewrite replaces them), and readers sum the
/// nodes. Kept two hours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginTally {
    pub project: ProjectId,
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub node: String,
    pub counts: LoginCounts,
}

/// How long a login tally is kept: the overview reads the last hour.
pub const LOGIN_TALLY_KEPT_MINUTES: i64 = 120;

/// The outcome of trying to exchange a refresh token.
#[derive(Debug, Clone, PartialEq)]
pub enum RotateOutcome {
    /// This call rotated it; the successor record was written.
    Rotated,
    /// Another call rotated it first; here is what it recorded.
    AlreadyRotated(Rotation),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The backend's label in metrics (`embedded`, `cql`).
    fn backend(&self) -> &'static str;

    /// Succeeds when the store can serve reads and writes.
    async fn ping(&self) -> StoreResult<()>;

    /// Whether any user exists in `project`.
    async fn has_users(&self, project: &ProjectId) -> StoreResult<bool>;

    /// Creates `user` if its email and username are free in its project.
    /// The first user ever created in the `default` project is stored as
    /// `superadmin`, decided atomically with the creation; the stored user is
    /// returned.
    async fn create_user(&self, user: User) -> StoreResult<User>;

    async fn find_user(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn find_user_by_email(&self, project: &ProjectId, email: &str) -> StoreResult<Option<User>>;
    async fn find_user_by_username(&self, project: &ProjectId, username: &str) -> StoreResult<Option<User>>;

    /// Replaces the stored user with `user` (same id). A changed username
    /// must be free in the project.
    async fn update_user(&self, user: User) -> StoreResult<User>;

    /// Users of `project` in id order (so, creation order: ids are UUIDv7)
    /// after `after`, at most `limit`. Users created while a listing pages
    /// come after every user it has seen.
    async fn list_users(&self, project: &ProjectId, after: Option<UserId>, limit: usize) -> StoreResult<Vec<User>>;

    /// The enabled superadmins of `project`, read page by page from its
    /// users (for a record that has not kept them yet).
    async fn enabled_superadmins(&self, project: &ProjectId) -> StoreResult<Vec<UserId>> {
        const PAGE: usize = 500;
        let (mut found, mut after) = (Vec::new(), None);
        loop {
            let page = self.list_users(project, after, PAGE).await?;
            found.extend(page.iter().filter(|u| u.role == Role::Superadmin && !u.disabled).map(|u| u.id));
            match page.last() {
                Some(last) if page.len() == PAGE => after = Some(last.id),
                _ => return Ok(found),
            }
        }
    }

    /// Deletes the user record, its email and username claims and its
    /// place in its project's list; `false` when there was none. Its
    /// sessions, keys and codes are the caller's to delete first.
    async fn delete_user(&self, id: UserId) -> StoreResult<bool>;

    /// Creates a session and its first refresh token together.
    async fn create_session(&self, session: Session, refresh: RefreshRecord) -> StoreResult<()>;

    async fn find_session(&self, id: SessionId) -> StoreResult<Option<Session>>;

    /// Sessions of a user, oldest first; expired ones are left out.
    async fn list_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>>;

    /// Deletes a session and every refresh token of it. `false` when it did not exist.
    async fn delete_session(&self, id: SessionId) -> StoreResult<bool>;

    /// Deletes every session of `user` but `keep`; returns the deleted ids.
    async fn delete_user_sessions(&self, user: UserId, keep: Option<SessionId>) -> StoreResult<Vec<SessionId>>;

    async fn find_refresh_token(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshRecord>>;

    /// Marks `old` rotated with `rotation` and stores `successor`, only if
    /// `old` is not rotated yet; moves the session's `last_seen_at` and
    /// `expires_at` to `session_touch`. Otherwise nothing is written and the
    /// recorded rotation is returned.
    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        rotation: Rotation,
        successor: RefreshRecord,
        session_touch: (Timestamp, Timestamp),
    ) -> StoreResult<RotateOutcome>;

    /// Stores a new API key.
    async fn create_api_key(&self, key: ApiKey) -> StoreResult<()>;

    /// The key whose keyed digest is `digest`, if it exists (expired or not).
    async fn find_api_key(&self, digest: &[u8; 32]) -> StoreResult<Option<ApiKey>>;

    /// A user's keys, oldest first.
    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>>;

    /// Deletes `user`'s key `id`; `None` if the user has no such key.
    async fn delete_api_key(&self, user: UserId, id: ApiKeyId) -> StoreResult<Option<ApiKey>>;

    /// Records when keys were last used (a batch; missing keys are skipped).
    async fn touch_api_keys(&self, used: Vec<(ApiKeyId, Timestamp)>) -> StoreResult<()>;

    /// Appends to the change feed other nodes poll. A single-node store has
    /// no other nodes and keeps nothing.
    async fn append_feed(&self, _event: FeedEvent) -> StoreResult<()> {
        Ok(())
    }

    /// Feed events written after `after`, oldest first, up to `now`.
    async fn read_feed(&self, _after: Timestamp, _now: Timestamp) -> StoreResult<Vec<FeedEvent>> {
        Ok(Vec::new())
    }

    /// Marks `key` used until `expires_at`. `true` for the first caller
    /// only, across every node: what makes TOTP steps, backup codes, email
    /// codes and 2FA challenges single use.
    async fn claim_once(&self, key: [u8; 32], expires_at: Timestamp) -> StoreResult<bool>;

    /// Stores `code`, replacing the live code of the same project, purpose
    /// and address; it expires at `code.expires_at`.
    async fn put_code(&self, code: OneTimeCode) -> StoreResult<()>;

    /// The live code of this project, purpose and address (expired ones may
    /// still be returned until swept: callers check `expires_at`).
    async fn find_code(
        &self,
        project: &ProjectId,
        purpose: CodePurpose,
        subject: &str,
    ) -> StoreResult<Option<OneTimeCode>>;

    async fn delete_code(&self, project: &ProjectId, purpose: CodePurpose, subject: &str) -> StoreResult<()>;

    /// Appends to the audit log.
    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()>;

    /// A page of the audit log, newest first (by `at`, then id): stable
    /// while events are appended, since they are newer than any cursor.
    async fn list_audit_page(&self, query: AuditQuery) -> StoreResult<Vec<AuditEvent>>;

    /// The project's newest audit events, at most `limit`.
    async fn list_audit(&self, project: &ProjectId, limit: usize) -> StoreResult<Vec<AuditEvent>> {
        let since = Timestamp(0);
        let query = AuditQuery { project: project.clone(), user: None, before: None, since, limit };
        self.list_audit_page(query).await
    }

    /// Stores a new passkey if its credential id is not anyone's yet;
    /// `false` (nothing written) if it is.
    async fn create_passkey(&self, passkey: PasskeyRecord) -> StoreResult<bool>;

    /// The passkey with this credential id, of whichever account.
    async fn find_passkey(&self, credential_id: &[u8]) -> StoreResult<Option<PasskeyRecord>>;

    /// A user's passkeys, oldest first.
    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyRecord>>;

    /// Replaces a stored passkey (its name, credential or last use);
    /// `NotFound` if it is gone.
    async fn update_passkey(&self, passkey: PasskeyRecord) -> StoreResult<()>;

    /// Deletes `user`'s passkey `id`; `None` if the user has no such passkey.
    async fn delete_passkey(&self, user: UserId, id: PasskeyId) -> StoreResult<Option<PasskeyRecord>>;

    /// Links an identity to its account if (project, provider, subject) is
    /// not linked yet; `false` (nothing written) if it is.
    async fn create_identity(&self, identity: Identity) -> StoreResult<bool>;

    /// The identity of `subject` at `provider` in `project`.
    async fn find_identity(&self, project: &ProjectId, provider: &str, subject: &str) -> StoreResult<Option<Identity>>;

    /// A user's identities, oldest first.
    async fn list_identities(&self, user: UserId) -> StoreResult<Vec<Identity>>;

    /// Unlinks `identity` if it is still `identity.user_id`'s; `false` if it was not linked to them.
    async fn delete_identity(&self, identity: &Identity) -> StoreResult<bool>;

    /// Keeps a ceremony's state until `expires_at`, under `id`.
    async fn put_challenge(&self, id: uuid::Uuid, state: Vec<u8>, expires_at: Timestamp) -> StoreResult<()>;

    /// The state kept under `id`, once: the first caller across every node
    /// gets it, any later one (or one at `now` past its expiry) `None`.
    async fn take_challenge(&self, id: uuid::Uuid, now: Timestamp) -> StoreResult<Option<Vec<u8>>>;

    /// Creates `project` if its id is free; `false` (and nothing written) if it is taken.
    async fn create_project(&self, project: Project) -> StoreResult<bool>;

    async fn find_project(&self, id: &ProjectId) -> StoreResult<Option<Project>>;

    /// Every project, deleted ones included, at most `MAX_PROJECTS`.
    async fn list_projects(&self) -> StoreResult<Vec<Project>>;

    /// Replaces the stored project with `project` if the stored one is still
    /// at `read_version` (`Conflict` otherwise, `NotFound` if there is none):
    /// concurrent changes each read, merge and retry, and none is lost.
    async fn replace_project(&self, project: Project, read_version: u64) -> StoreResult<()>;

    /// How many sessions are live: exact where counting is cheap (embedded),
    /// the database's own estimate where it would scan a cluster (CQL).
    async fn count_active_sessions(&self, now: Timestamp) -> StoreResult<u64>;

    /// Whether `count_active_sessions` counts (`true`) or estimates.
    fn counts_sessions_exactly(&self) -> bool;

    /// How many accounts `project` has: kept with every create and delete
    /// (in the same transaction on the embedded store; a counter on CQL,
    /// which a timed-out write can leave off by one).
    async fn count_users(&self, project: &ProjectId) -> StoreResult<u64>;

    /// Writes one node's login tally (replacing that node's earlier one of
    /// the same project and minute); forgotten after `LOGIN_TALLY_KEPT_MINUTES`.
    async fn put_login_tally(&self, tally: LoginTally) -> StoreResult<()>;

    /// Every node's tallies of `project` in the minutes `from..=to`, summed.
    async fn sum_login_tallies(&self, project: &ProjectId, from: i64, to: i64) -> StoreResult<LoginCounts>;

    /// Removes expired sessions and refresh tokens; returns how many rows went.
    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<usize>;

    /// Makes every acknowledged write durable before shutdown.
    async fn flush(&self) -> StoreResult<()>;
}
