//! The embedded store: a single redb file under the data directory.
//!
//! Why redb: it is pure Rust, ACID with MVCC (readers never block the
//! writer), and its copy-on-write B-trees commit with a checksummed root, so
//! a commit with `Durability::Immediate` has been fsynced before it returns and
//! survives `kill -9` or power loss. Its file format is stable since 1.0.
//! fjall (an LSM tree) would write faster at sizes far beyond one gateway
//! node's accounts, at the cost of compaction and more tuning; we need
//! point reads and small transactions, where a B-tree is the simpler fit.
//!
//! Owns: the database file and its one writer thread. Every write is a job
//! sent to that thread, which runs the jobs waiting in its queue in one
//! transaction and commits once (group commit: one fsync serves a batch).
//! Reads run on the caller's thread in their own read transaction; they take
//! microseconds and never wait on the writer. The writer thread, and how it
//! keeps the file whole when the disk fills, is `writer`'s.
//!
//! Invariant: a write job that fails (a conflict, a missing record) fails
//! before its first write, so the batch it shares is never half-applied. A
//! failed commit fails every job of the batch, and nothing of it is kept.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

mod counts;
pub mod stats;
mod sweep;
mod writer;

use async_trait::async_trait;
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};
use tokio::sync::{mpsc, oneshot};
pub use writer::EmbeddedOptions;
use writer::{Handle, Job, WriteJob};

use super::{
    AuditQuery, LoginCounts, LoginTally, RotateOutcome, Store, StoreError, StoreResult, UniqueField, decode, encode,
    unavailable,
};
use crate::account::{
    ApiKey, ApiKeyId, AuditEvent, CodePurpose, Identity, OneTimeCode, PasskeyId, PasskeyRecord, ProjectId,
    RefreshRecord, Rotation, Session, SessionId, User, UserId,
};
use crate::clock::Timestamp;
use crate::projects::Project;

/// user id → User (JSON).
const USERS: TableDefinition<u128, &[u8]> = TableDefinition::new("users");
/// "project\0email" → user id.
const USERS_BY_EMAIL: TableDefinition<&str, u128> = TableDefinition::new("users_by_email");
/// "project\0username" → user id.
const USERS_BY_USERNAME: TableDefinition<&str, u128> = TableDefinition::new("users_by_username");
/// project → the id of its first user (the setup claim).
const SETUP: TableDefinition<&str, u128> = TableDefinition::new("setup");
/// session id → Session (JSON).
const SESSIONS: TableDefinition<u128, &[u8]> = TableDefinition::new("sessions");
/// user id (16 bytes BE) ++ session id (16 bytes BE) → ().
const USER_SESSIONS: TableDefinition<&[u8], ()> = TableDefinition::new("user_sessions");
/// BLAKE3 digest of a refresh token → RefreshRecord (JSON).
const REFRESH_TOKENS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("refresh_tokens");
/// session id (16 bytes BE) ++ digest (32 bytes) → ().
const SESSION_REFRESH: TableDefinition<&[u8], ()> = TableDefinition::new("session_refresh");

/// API key id → ApiKey (JSON).
const API_KEYS: TableDefinition<u128, &[u8]> = TableDefinition::new("api_keys");
/// keyed digest of the key → API key id.
const API_KEYS_BY_DIGEST: TableDefinition<&[u8], u128> = TableDefinition::new("api_keys_by_digest");
/// user id (16 bytes BE) ++ API key id (16 bytes BE) → ().
const USER_API_KEYS: TableDefinition<&[u8], ()> = TableDefinition::new("user_api_keys");

/// Single-use claim key → when the claim may be forgotten (ms).
const USED_ONCE: TableDefinition<&[u8], i64> = TableDefinition::new("used_once");
/// "project\0purpose\0email" → OneTimeCode (JSON).
const CODES: TableDefinition<&str, &[u8]> = TableDefinition::new("one_time_codes");
/// "project\0" ++ event id (16 bytes BE, time-ordered) → AuditEvent (JSON).
const AUDIT: TableDefinition<&[u8], &[u8]> = TableDefinition::new("audit_events");
/// "project\0" ++ user id (16 bytes) ++ event id (16 bytes) → nothing: one user's events.
const AUDIT_BY_USER: TableDefinition<&[u8], ()> = TableDefinition::new("audit_by_user");
/// `keep_until` (big-endian ms) ++ the audit key → nothing: what the sweep forgets, in order.
const AUDIT_EXPIRY: TableDefinition<&[u8], ()> = TableDefinition::new("audit_expiry");
/// "project\0" ++ user id (16 bytes BE) → nothing: a project's users in id order.
const USERS_BY_PROJECT: TableDefinition<&[u8], ()> = TableDefinition::new("users_by_project");
/// Credential id → PasskeyRecord (JSON): the one place a credential id is unique.
const PASSKEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("passkeys");
/// User id (16 bytes) ++ passkey id (16 bytes) → credential id: a user's passkeys.
const USER_PASSKEYS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("user_passkeys");
/// Identity key (see `identity_key`) → Identity (JSON): one account per
/// (project, provider, subject).
const IDENTITIES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("identities");
/// User id (16 bytes) ++ identity key → nothing: a user's identities.
const USER_IDENTITIES: TableDefinition<&[u8], ()> = TableDefinition::new("user_identities");
/// Ceremony id → expiry (ms, 8 bytes BE) ++ state.
const CHALLENGES: TableDefinition<u128, &[u8]> = TableDefinition::new("challenges");
/// Project id → Project (JSON).
const PROJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("projects");

/// How many writes may wait for the writer thread; past it, callers wait up
/// to `ENQUEUE_TIMEOUT` and then get `Unavailable`, so a stalled disk turns
/// into 503s instead of unbounded memory.
const QUEUE_CAPACITY: usize = 4096;
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(2);

fn unique_key(project: &ProjectId, value: &str) -> String {
    format!("{}\0{value}", project.as_str())
}

/// Each part length-prefixed, so no two (project, provider, subject) meet.
fn identity_key(project: &ProjectId, provider: &str, subject: &str) -> Vec<u8> {
    let mut key = Vec::new();
    for part in [project.as_str(), provider, subject] {
        key.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    key
}

fn code_key(project: &ProjectId, purpose: CodePurpose, subject: &str) -> String {
    format!("{}\0{}\0{subject}", project.as_str(), purpose.as_str())
}

fn audit_prefix(project: &ProjectId) -> Vec<u8> {
    let mut key = project.as_str().as_bytes().to_vec();
    key.push(0);
    key
}

fn pair_key(a: u128, b: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(16 + b.len());
    key.extend_from_slice(&a.to_be_bytes());
    key.extend_from_slice(b);
    key
}

/// The key of `user` in `USERS_BY_PROJECT`: "project\0" ++ its id.
fn project_user_key(project: &ProjectId, user: UserId) -> Vec<u8> {
    let mut key = audit_prefix(project);
    key.extend_from_slice(&user.as_u128().to_be_bytes());
    key
}

/// The key of an event in `AUDIT_BY_USER`.
fn audit_user_key(project: &ProjectId, user: UserId, event: uuid::Uuid) -> Vec<u8> {
    let mut key = audit_prefix(project);
    key.extend_from_slice(&user.as_u128().to_be_bytes());
    key.extend_from_slice(event.as_bytes());
    key
}

/// The id in the last 16 bytes of a key.
fn last_id(key: &[u8]) -> StoreResult<u128> {
    let at = key.len().checked_sub(16).ok_or_else(|| StoreError::Corrupt("index key".into()))?;
    let bytes: [u8; 16] = key[at..].try_into().map_err(|_| StoreError::Corrupt("index key".into()))?;
    Ok(u128::from_be_bytes(bytes))
}

/// Fills `USERS_BY_PROJECT` from the users table when it is empty and
/// users exist (a data directory from before the index): once, at open.
fn index_users_by_project(txn: &WriteTransaction) -> StoreResult<()> {
    let mut index = txn.open_table(USERS_BY_PROJECT).map_err(unavailable)?;
    if !index.is_empty().map_err(unavailable)? {
        return Ok(());
    }
    let users = txn.open_table(USERS).map_err(unavailable)?;
    for entry in users.iter().map_err(unavailable)? {
        let (_, bytes) = entry.map_err(unavailable)?;
        let user: User = decode(bytes.value())?;
        index.insert(project_user_key(&user.project, user.id).as_slice(), ()).map_err(unavailable)?;
    }
    Ok(())
}

/// The `[start, end]` key range of every composite key beginning with `a`.
fn prefix_range(a: u128, rest_len: usize) -> (Vec<u8>, Vec<u8>) {
    (pair_key(a, &vec![0; rest_len]), pair_key(a, &vec![0xff; rest_len]))
}

/// The id in the last 16 bytes of a composite index key.
fn suffix_id(key: &[u8]) -> StoreResult<u128> {
    let bytes: [u8; 16] =
        key.get(16..32).and_then(|b| b.try_into().ok()).ok_or_else(|| StoreError::Corrupt("index key".into()))?;
    Ok(u128::from_be_bytes(bytes))
}

pub struct EmbeddedStore {
    db: Arc<Handle>,
    writes: mpsc::Sender<Box<dyn WriteJob>>,
    /// Sessions stored (live, or expired and not swept yet): counted at open,
    /// then kept as sessions are created, deleted and swept.
    sessions: AtomicI64,
    /// Accounts per project and login tallies (see `counts`).
    counts: counts::Counts,
}

impl EmbeddedStore {
    /// Opens (or creates) `portcullis.redb` in `dir` and starts its writer
    /// thread, with no free-space reserve (tests and tools).
    pub fn open(dir: &Path) -> StoreResult<Self> {
        Self::open_with(dir, EmbeddedOptions { min_free: 0, cache_bytes: 64 << 20 })
    }

    /// [`open`](Self::open) with `options`: writes are refused while fewer
    /// than `min_free` bytes are free on the directory's disk (see
    /// `writer`), and redb's page cache holds `cache_bytes` at most.
    pub fn open_with(dir: &Path, options: EmbeddedOptions) -> StoreResult<Self> {
        let file = dir.join("portcullis.redb");
        crate::data_dir::private_dir(dir).map_err(unavailable)?;
        crate::data_dir::private_file(&file).map_err(unavailable)?;
        let db = writer::open_file(&file, options.cache_bytes).map_err(unavailable)?;
        let txn = db.begin_write().map_err(unavailable)?;
        {
            txn.open_table(USERS).map_err(unavailable)?;
            txn.open_table(USERS_BY_EMAIL).map_err(unavailable)?;
            txn.open_table(USERS_BY_USERNAME).map_err(unavailable)?;
            txn.open_table(SETUP).map_err(unavailable)?;
            txn.open_table(SESSIONS).map_err(unavailable)?;
            txn.open_table(USER_SESSIONS).map_err(unavailable)?;
            txn.open_table(REFRESH_TOKENS).map_err(unavailable)?;
            txn.open_table(SESSION_REFRESH).map_err(unavailable)?;
            txn.open_table(API_KEYS).map_err(unavailable)?;
            txn.open_table(API_KEYS_BY_DIGEST).map_err(unavailable)?;
            txn.open_table(USER_API_KEYS).map_err(unavailable)?;
            txn.open_table(USED_ONCE).map_err(unavailable)?;
            txn.open_table(CODES).map_err(unavailable)?;
            txn.open_table(AUDIT).map_err(unavailable)?;
            txn.open_table(AUDIT_EXPIRY).map_err(unavailable)?;
            txn.open_table(AUDIT_BY_USER).map_err(unavailable)?;
            txn.open_table(PROJECTS).map_err(unavailable)?;
            txn.open_table(PASSKEYS).map_err(unavailable)?;
            txn.open_table(USER_PASSKEYS).map_err(unavailable)?;
            txn.open_table(CHALLENGES).map_err(unavailable)?;
            txn.open_table(IDENTITIES).map_err(unavailable)?;
            txn.open_table(USER_IDENTITIES).map_err(unavailable)?;
            index_users_by_project(&txn)?;
        }
        txn.commit().map_err(unavailable)?;
        let stored = db.begin_read().map_err(unavailable)?.open_table(SESSIONS).map_err(unavailable)?.len();
        let sessions = AtomicI64::new(i64::try_from(stored.map_err(unavailable)?).unwrap_or(i64::MAX));
        let counts = {
            let txn = db.begin_read().map_err(unavailable)?;
            let index = txn.open_table(USERS_BY_PROJECT).map_err(unavailable)?;
            let counts = counts::Counts::default();
            for entry in index.iter().map_err(unavailable)? {
                counts.count_index_key(entry.map_err(unavailable)?.0.value());
            }
            counts
        };
        let db = Arc::new(Handle::new(db, file, options));
        let (writes, queue) = mpsc::channel(QUEUE_CAPACITY);
        let writer_db = Arc::clone(&db);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer::run(&writer_db, queue))
            .map_err(unavailable)?;
        Ok(EmbeddedStore { db, writes, sessions, counts })
    }

    fn sessions_gone(&self, count: usize) {
        self.sessions.fetch_sub(i64::try_from(count).unwrap_or(i64::MAX), Ordering::Relaxed);
    }

    async fn write<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(Job { op, reply });
        self.writes
            .send_timeout(job, ENQUEUE_TIMEOUT)
            .await
            .map_err(|_| StoreError::Unavailable("write queue full or writer stopped".into()))?;
        answer.await.map_err(|_| StoreError::Unavailable("writer stopped".into()))?
    }

    fn read<T>(&self, op: impl FnOnce(&redb::ReadTransaction) -> StoreResult<T>) -> StoreResult<T> {
        let txn = self.db.begin_read()?;
        op(&txn)
    }

    fn read_user_by_index(
        &self,
        index: TableDefinition<'static, &'static str, u128>,
        key: String,
    ) -> StoreResult<Option<User>> {
        self.read(|txn| {
            let ids = txn.open_table(index).map_err(unavailable)?;
            let Some(id) = ids.get(key.as_str()).map_err(unavailable)?.map(|g| g.value()) else {
                return Ok(None);
            };
            let users = txn.open_table(USERS).map_err(unavailable)?;
            let user = users.get(id).map_err(unavailable)?;
            user.map(|bytes| decode(bytes.value())).transpose()
        })
    }
}

/// Deletes a session, its user index entry and all its refresh tokens.
/// Returns whether the session existed.
fn delete_session_in(txn: &WriteTransaction, id: SessionId) -> StoreResult<bool> {
    let mut sessions = txn.open_table(SESSIONS).map_err(unavailable)?;
    let Some(session) = sessions.remove(id.as_u128()).map_err(unavailable)?.map(|g| decode::<Session>(g.value()))
    else {
        return Ok(false);
    };
    let session = session?;
    let mut user_sessions = txn.open_table(USER_SESSIONS).map_err(unavailable)?;
    user_sessions
        .remove(pair_key(session.user_id.as_u128(), &id.as_u128().to_be_bytes()).as_slice())
        .map_err(unavailable)?;
    let mut index = txn.open_table(SESSION_REFRESH).map_err(unavailable)?;
    let (start, end) = prefix_range(id.as_u128(), 32);
    let keys: Vec<Vec<u8>> = index
        .range(start.as_slice()..=end.as_slice())
        .map_err(unavailable)?
        .map(|entry| entry.map(|(k, _)| k.value().to_vec()).map_err(unavailable))
        .collect::<StoreResult<_>>()?;
    let mut tokens = txn.open_table(REFRESH_TOKENS).map_err(unavailable)?;
    for key in keys {
        tokens.remove(&key[16..]).map_err(unavailable)?;
        index.remove(key.as_slice()).map_err(unavailable)?;
    }
    Ok(true)
}

fn insert_refresh_in(txn: &WriteTransaction, record: &RefreshRecord) -> StoreResult<()> {
    let bytes = encode(record)?;
    txn.open_table(REFRESH_TOKENS)
        .map_err(unavailable)?
        .insert(record.digest.as_slice(), bytes.as_slice())
        .map_err(unavailable)?;
    txn.open_table(SESSION_REFRESH)
        .map_err(unavailable)?
        .insert(pair_key(record.session_id.as_u128(), &record.digest).as_slice(), ())
        .map_err(unavailable)?;
    Ok(())
}

/// Checks that `value` is free in `index` (or already `owner`'s).
fn check_free(
    txn: &WriteTransaction,
    index: TableDefinition<'static, &'static str, u128>,
    key: &str,
    owner: UserId,
    field: UniqueField,
) -> StoreResult<()> {
    let table = txn.open_table(index).map_err(unavailable)?;
    match table.get(key).map_err(unavailable)?.map(|g| g.value()) {
        Some(id) if id != owner.as_u128() => Err(StoreError::AlreadyExists(field)),
        _ => Ok(()),
    }
}

#[async_trait]
impl Store for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.read(|txn| txn.open_table(USERS).map(|_| ()).map_err(unavailable))?;
        if self.writes.is_closed() {
            return Err(StoreError::Unavailable("writer stopped".into()));
        }
        Ok(())
    }

    async fn has_users(&self, project: &ProjectId) -> StoreResult<bool> {
        let prefix = unique_key(project, "");
        self.read(|txn| {
            let emails = txn.open_table(USERS_BY_EMAIL).map_err(unavailable)?;
            let mut range = emails.range(prefix.as_str()..).map_err(unavailable)?;
            match range.next() {
                Some(entry) => Ok(entry.map_err(unavailable)?.0.value().starts_with(&prefix)),
                None => Ok(false),
            }
        })
    }

    async fn create_user(&self, mut user: User) -> StoreResult<User> {
        let user = self
            .write(move |txn| {
                let email_key = unique_key(&user.project, &user.email);
                check_free(txn, USERS_BY_EMAIL, &email_key, user.id, UniqueField::Email)?;
                let username_key = user.username.as_ref().map(|u| unique_key(&user.project, u));
                if let Some(key) = &username_key {
                    check_free(txn, USERS_BY_USERNAME, key, user.id, UniqueField::Username)?;
                }
                let mut setup = txn.open_table(SETUP).map_err(unavailable)?;
                if user.project.as_str() == ProjectId::DEFAULT
                    && setup.get(ProjectId::DEFAULT).map_err(unavailable)?.is_none()
                {
                    setup.insert(ProjectId::DEFAULT, user.id.as_u128()).map_err(unavailable)?;
                    user.role = crate::account::Role::Superadmin;
                }
                let bytes = encode(&user)?;
                txn.open_table(USERS)
                    .map_err(unavailable)?
                    .insert(user.id.as_u128(), bytes.as_slice())
                    .map_err(unavailable)?;
                txn.open_table(USERS_BY_PROJECT)
                    .map_err(unavailable)?
                    .insert(project_user_key(&user.project, user.id).as_slice(), ())
                    .map_err(unavailable)?;
                txn.open_table(USERS_BY_EMAIL)
                    .map_err(unavailable)?
                    .insert(email_key.as_str(), user.id.as_u128())
                    .map_err(unavailable)?;
                if let Some(key) = username_key {
                    txn.open_table(USERS_BY_USERNAME)
                        .map_err(unavailable)?
                        .insert(key.as_str(), user.id.as_u128())
                        .map_err(unavailable)?;
                }
                Ok(user)
            })
            .await?;
        self.counts.account_created(&user.project);
        Ok(user)
    }

    async fn find_user(&self, id: UserId) -> StoreResult<Option<User>> {
        self.read(|txn| {
            let users = txn.open_table(USERS).map_err(unavailable)?;
            let user = users.get(id.as_u128()).map_err(unavailable)?;
            user.map(|bytes| decode(bytes.value())).transpose()
        })
    }

    async fn find_user_by_email(&self, project: &ProjectId, email: &str) -> StoreResult<Option<User>> {
        self.read_user_by_index(USERS_BY_EMAIL, unique_key(project, email))
    }

    async fn find_user_by_username(&self, project: &ProjectId, username: &str) -> StoreResult<Option<User>> {
        self.read_user_by_index(USERS_BY_USERNAME, unique_key(project, username))
    }

    async fn update_user(&self, user: User) -> StoreResult<User> {
        self.write(move |txn| {
            let old: User = {
                let users = txn.open_table(USERS).map_err(unavailable)?;
                let bytes = users.get(user.id.as_u128()).map_err(unavailable)?.ok_or(StoreError::NotFound)?;
                decode(bytes.value())?
            };
            let new_email = unique_key(&user.project, &user.email);
            check_free(txn, USERS_BY_EMAIL, &new_email, user.id, UniqueField::Email)?;
            let new_username = user.username.as_ref().map(|u| unique_key(&user.project, u));
            if let Some(key) = &new_username {
                check_free(txn, USERS_BY_USERNAME, key, user.id, UniqueField::Username)?;
            }
            if old.email != user.email {
                let mut emails = txn.open_table(USERS_BY_EMAIL).map_err(unavailable)?;
                emails.remove(unique_key(&old.project, &old.email).as_str()).map_err(unavailable)?;
                emails.insert(new_email.as_str(), user.id.as_u128()).map_err(unavailable)?;
            }
            if old.username != user.username {
                let mut usernames = txn.open_table(USERS_BY_USERNAME).map_err(unavailable)?;
                if let Some(old_name) = &old.username {
                    usernames.remove(unique_key(&old.project, old_name).as_str()).map_err(unavailable)?;
                }
                if let Some(key) = &new_username {
                    usernames.insert(key.as_str(), user.id.as_u128()).map_err(unavailable)?;
                }
            }
            let bytes = encode(&user)?;
            txn.open_table(USERS)
                .map_err(unavailable)?
                .insert(user.id.as_u128(), bytes.as_slice())
                .map_err(unavailable)?;
            Ok(user)
        })
        .await
    }

    async fn list_users(&self, project: &ProjectId, after: Option<UserId>, limit: usize) -> StoreResult<Vec<User>> {
        let start = match after {
            Some(id) => Bound::Excluded(project_user_key(project, id)),
            None => Bound::Included(audit_prefix(project)),
        };
        let end = Bound::Included(project_user_key(project, UserId(uuid::Uuid::max())));
        self.read(|txn| {
            let index = txn.open_table(USERS_BY_PROJECT).map_err(unavailable)?;
            let users = txn.open_table(USERS).map_err(unavailable)?;
            let range = (start.as_ref().map(Vec::as_slice), end.as_ref().map(Vec::as_slice));
            let mut listed = Vec::new();
            for entry in index.range::<&[u8]>(range).map_err(unavailable)?.take(limit) {
                let (key, _) = entry.map_err(unavailable)?;
                let id = last_id(key.value())?;
                if let Some(bytes) = users.get(id).map_err(unavailable)? {
                    listed.push(decode(bytes.value())?);
                }
            }
            Ok(listed)
        })
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<bool> {
        let deleted = self
            .write(move |txn| {
                let Some(user) = txn
                    .open_table(USERS)
                    .map_err(unavailable)?
                    .remove(id.as_u128())
                    .map_err(unavailable)?
                    .map(|g| decode::<User>(g.value()))
                else {
                    return Ok(None);
                };
                let user = user?;
                txn.open_table(USERS_BY_EMAIL)
                    .map_err(unavailable)?
                    .remove(unique_key(&user.project, &user.email).as_str())
                    .map_err(unavailable)?;
                if let Some(name) = &user.username {
                    txn.open_table(USERS_BY_USERNAME)
                        .map_err(unavailable)?
                        .remove(unique_key(&user.project, name).as_str())
                        .map_err(unavailable)?;
                }
                txn.open_table(USERS_BY_PROJECT)
                    .map_err(unavailable)?
                    .remove(project_user_key(&user.project, id).as_slice())
                    .map_err(unavailable)?;
                Ok(Some(user.project))
            })
            .await?;
        if let Some(project) = &deleted {
            self.counts.account_deleted(project);
        }
        Ok(deleted.is_some())
    }

    async fn create_session(&self, session: Session, refresh: RefreshRecord) -> StoreResult<()> {
        self.write(move |txn| {
            let bytes = encode(&session)?;
            txn.open_table(SESSIONS)
                .map_err(unavailable)?
                .insert(session.id.as_u128(), bytes.as_slice())
                .map_err(unavailable)?;
            txn.open_table(USER_SESSIONS)
                .map_err(unavailable)?
                .insert(pair_key(session.user_id.as_u128(), &session.id.as_u128().to_be_bytes()).as_slice(), ())
                .map_err(unavailable)?;
            insert_refresh_in(txn, &refresh)
        })
        .await?;
        self.sessions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn find_session(&self, id: SessionId) -> StoreResult<Option<Session>> {
        self.read(|txn| {
            let sessions = txn.open_table(SESSIONS).map_err(unavailable)?;
            let session = sessions.get(id.as_u128()).map_err(unavailable)?;
            session.map(|bytes| decode(bytes.value())).transpose()
        })
    }

    async fn list_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        self.read(|txn| {
            let index = txn.open_table(USER_SESSIONS).map_err(unavailable)?;
            let sessions = txn.open_table(SESSIONS).map_err(unavailable)?;
            let (start, end) = prefix_range(user.as_u128(), 16);
            let mut found = Vec::new();
            for entry in index.range(start.as_slice()..=end.as_slice()).map_err(unavailable)? {
                let (key, _) = entry.map_err(unavailable)?;
                if let Some(bytes) = sessions.get(suffix_id(key.value())?).map_err(unavailable)? {
                    let session: Session = decode(bytes.value())?;
                    if session.expires_at > now {
                        found.push(session);
                    }
                }
            }
            found.sort_by_key(|s| s.created_at);
            Ok(found)
        })
    }

    async fn delete_session(&self, id: SessionId) -> StoreResult<bool> {
        let deleted = self.write(move |txn| delete_session_in(txn, id)).await?;
        self.sessions_gone(usize::from(deleted));
        Ok(deleted)
    }

    async fn delete_user_sessions(&self, user: UserId, keep: Option<SessionId>) -> StoreResult<Vec<SessionId>> {
        let deleted = self
            .write(move |txn| {
                let (start, end) = prefix_range(user.as_u128(), 16);
                let ids: Vec<SessionId> = txn
                    .open_table(USER_SESSIONS)
                    .map_err(unavailable)?
                    .range(start.as_slice()..=end.as_slice())
                    .map_err(unavailable)?
                    .map(|entry| {
                        let (key, _) = entry.map_err(unavailable)?;
                        Ok(SessionId(uuid::Uuid::from_u128(suffix_id(key.value())?)))
                    })
                    .collect::<StoreResult<_>>()?;
                let mut deleted = Vec::new();
                for id in ids.into_iter().filter(|id| Some(*id) != keep) {
                    if delete_session_in(txn, id)? {
                        deleted.push(id);
                    }
                }
                Ok(deleted)
            })
            .await?;
        self.sessions_gone(deleted.len());
        Ok(deleted)
    }

    async fn find_refresh_token(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshRecord>> {
        self.read(|txn| {
            let tokens = txn.open_table(REFRESH_TOKENS).map_err(unavailable)?;
            let record = tokens.get(digest.as_slice()).map_err(unavailable)?;
            record.map(|bytes| decode(bytes.value())).transpose()
        })
    }

    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        rotation: Rotation,
        successor: RefreshRecord,
        session_touch: (Timestamp, Timestamp),
    ) -> StoreResult<RotateOutcome> {
        let old = *old;
        self.write(move |txn| {
            let mut record: RefreshRecord = {
                let tokens = txn.open_table(REFRESH_TOKENS).map_err(unavailable)?;
                let bytes = tokens.get(old.as_slice()).map_err(unavailable)?.ok_or(StoreError::NotFound)?;
                decode(bytes.value())?
            };
            if let Some(done) = record.rotated {
                return Ok(RotateOutcome::AlreadyRotated(done));
            }
            let mut session: Session = {
                let sessions = txn.open_table(SESSIONS).map_err(unavailable)?;
                let bytes =
                    sessions.get(record.session_id.as_u128()).map_err(unavailable)?.ok_or(StoreError::NotFound)?;
                decode(bytes.value())?
            };
            (session.last_seen_at, session.expires_at) = session_touch;
            record.rotated = Some(rotation);
            let session_bytes = encode(&session)?;
            txn.open_table(SESSIONS)
                .map_err(unavailable)?
                .insert(session.id.as_u128(), session_bytes.as_slice())
                .map_err(unavailable)?;
            insert_refresh_in(txn, &record)?;
            insert_refresh_in(txn, &successor)?;
            Ok(RotateOutcome::Rotated)
        })
        .await
    }

    async fn create_api_key(&self, key: ApiKey) -> StoreResult<()> {
        self.write(move |txn| {
            let bytes = encode(&key)?;
            txn.open_table(API_KEYS)
                .map_err(unavailable)?
                .insert(key.id.as_u128(), bytes.as_slice())
                .map_err(unavailable)?;
            txn.open_table(API_KEYS_BY_DIGEST)
                .map_err(unavailable)?
                .insert(key.digest.as_slice(), key.id.as_u128())
                .map_err(unavailable)?;
            txn.open_table(USER_API_KEYS)
                .map_err(unavailable)?
                .insert(pair_key(key.user_id.as_u128(), &key.id.as_u128().to_be_bytes()).as_slice(), ())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn find_api_key(&self, digest: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
        self.read(|txn| {
            let ids = txn.open_table(API_KEYS_BY_DIGEST).map_err(unavailable)?;
            let Some(id) = ids.get(digest.as_slice()).map_err(unavailable)?.map(|g| g.value()) else {
                return Ok(None);
            };
            let keys = txn.open_table(API_KEYS).map_err(unavailable)?;
            let key = keys.get(id).map_err(unavailable)?;
            key.map(|bytes| decode(bytes.value())).transpose()
        })
    }

    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>> {
        self.read(|txn| {
            let index = txn.open_table(USER_API_KEYS).map_err(unavailable)?;
            let keys = txn.open_table(API_KEYS).map_err(unavailable)?;
            let (start, end) = prefix_range(user.as_u128(), 16);
            let mut found = Vec::new();
            for entry in index.range(start.as_slice()..=end.as_slice()).map_err(unavailable)? {
                let (index_key, _) = entry.map_err(unavailable)?;
                if let Some(bytes) = keys.get(suffix_id(index_key.value())?).map_err(unavailable)? {
                    found.push(decode::<ApiKey>(bytes.value())?);
                }
            }
            found.sort_by_key(|k| k.created_at);
            Ok(found)
        })
    }

    async fn delete_api_key(&self, user: UserId, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
        self.write(move |txn| {
            let mut keys = txn.open_table(API_KEYS).map_err(unavailable)?;
            let key: ApiKey = match keys.get(id.as_u128()).map_err(unavailable)? {
                Some(bytes) => decode(bytes.value())?,
                None => return Ok(None),
            };
            if key.user_id != user {
                return Ok(None);
            }
            keys.remove(id.as_u128()).map_err(unavailable)?;
            txn.open_table(API_KEYS_BY_DIGEST)
                .map_err(unavailable)?
                .remove(key.digest.as_slice())
                .map_err(unavailable)?;
            txn.open_table(USER_API_KEYS)
                .map_err(unavailable)?
                .remove(pair_key(user.as_u128(), &id.as_u128().to_be_bytes()).as_slice())
                .map_err(unavailable)?;
            Ok(Some(key))
        })
        .await
    }

    async fn touch_api_keys(&self, used: Vec<(ApiKeyId, Timestamp)>) -> StoreResult<()> {
        self.write(move |txn| {
            let mut keys = txn.open_table(API_KEYS).map_err(unavailable)?;
            for (id, at) in used {
                let key: Option<ApiKey> =
                    keys.get(id.as_u128()).map_err(unavailable)?.map(|b| decode(b.value())).transpose()?;
                if let Some(mut key) = key.filter(|k| k.last_used_at.is_none_or(|last| last < at)) {
                    key.last_used_at = Some(at);
                    keys.insert(id.as_u128(), encode(&key)?.as_slice()).map_err(unavailable)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn claim_once(&self, key: [u8; 32], expires_at: Timestamp) -> StoreResult<bool> {
        self.write(move |txn| {
            let mut claims = txn.open_table(USED_ONCE).map_err(unavailable)?;
            if claims.get(key.as_slice()).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            claims.insert(key.as_slice(), expires_at.0).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn put_code(&self, code: OneTimeCode) -> StoreResult<()> {
        let bytes = encode(&code)?;
        self.write(move |txn| {
            let mut codes = txn.open_table(CODES).map_err(unavailable)?;
            codes
                .insert(code_key(&code.project, code.purpose, &code.subject).as_str(), bytes.as_slice())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn find_code(
        &self,
        project: &ProjectId,
        purpose: CodePurpose,
        subject: &str,
    ) -> StoreResult<Option<OneTimeCode>> {
        self.read(|txn| {
            let codes = txn.open_table(CODES).map_err(unavailable)?;
            let code = codes.get(code_key(project, purpose, subject).as_str()).map_err(unavailable)?;
            code.map(|bytes| decode(bytes.value())).transpose()
        })
    }

    async fn delete_code(&self, project: &ProjectId, purpose: CodePurpose, subject: &str) -> StoreResult<()> {
        let key = code_key(project, purpose, subject);
        self.write(move |txn| {
            txn.open_table(CODES).map_err(unavailable)?.remove(key.as_str()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()> {
        let bytes = encode(&event)?;
        let mut key = audit_prefix(&event.project);
        key.extend_from_slice(event.id.as_bytes());
        let mut expiry = event.keep_until.0.to_be_bytes().to_vec();
        expiry.extend_from_slice(&key);
        self.write(move |txn| {
            txn.open_table(AUDIT)
                .map_err(unavailable)?
                .insert(key.as_slice(), bytes.as_slice())
                .map_err(unavailable)?;
            txn.open_table(AUDIT_EXPIRY).map_err(unavailable)?.insert(expiry.as_slice(), ()).map_err(unavailable)?;
            if let Some(user) = event.user_id {
                let key = audit_user_key(&event.project, user, event.id);
                txn.open_table(AUDIT_BY_USER).map_err(unavailable)?.insert(key.as_slice(), ()).map_err(unavailable)?;
            }
            Ok(())
        })
        .await
    }

    async fn list_audit_page(&self, query: AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let prefix = match query.user {
            Some(user) => audit_user_key(&query.project, user, uuid::Uuid::nil()),
            None => {
                let mut prefix = audit_prefix(&query.project);
                prefix.extend_from_slice(uuid::Uuid::nil().as_bytes());
                prefix
            }
        };
        let start = prefix.clone();
        let mut end = prefix[..prefix.len() - 16].to_vec();
        end.extend_from_slice(query.before.map_or([0xff; 16], |(_, id)| *id.as_bytes()).as_slice());
        let end = if query.before.is_some() { Bound::Excluded(end) } else { Bound::Included(end) };
        self.read(|txn| {
            let audit = txn.open_table(AUDIT).map_err(unavailable)?;
            let by_user = txn.open_table(AUDIT_BY_USER).map_err(unavailable)?;
            let range = (Bound::Included(start.as_slice()), end.as_ref().map(Vec::as_slice));
            let mut events = Vec::new();
            let mut add = |id: u128| -> StoreResult<bool> {
                let mut key = audit_prefix(&query.project);
                key.extend_from_slice(&id.to_be_bytes());
                if let Some(bytes) = audit.get(key.as_slice()).map_err(unavailable)? {
                    let event: AuditEvent = decode(bytes.value())?;
                    if event.at < query.since {
                        return Ok(false);
                    }
                    events.push(event);
                }
                Ok(events.len() < query.limit)
            };
            if query.limit == 0 {
                return Ok(Vec::new());
            }
            let keys: Box<dyn Iterator<Item = _>> = if query.user.is_some() {
                Box::new(
                    by_user
                        .range::<&[u8]>(range)
                        .map_err(unavailable)?
                        .rev()
                        .map(|e| e.map(|(k, _)| k.value().to_vec())),
                )
            } else {
                Box::new(
                    audit.range::<&[u8]>(range).map_err(unavailable)?.rev().map(|e| e.map(|(k, _)| k.value().to_vec())),
                )
            };
            for key in keys {
                if !add(last_id(&key.map_err(unavailable)?)?)? {
                    break;
                }
            }
            Ok(events)
        })
    }

    async fn create_passkey(&self, passkey: PasskeyRecord) -> StoreResult<bool> {
        let bytes = encode(&passkey)?;
        self.write(move |txn| {
            let mut passkeys = txn.open_table(PASSKEYS).map_err(unavailable)?;
            if passkeys.get(passkey.credential_id.as_slice()).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            passkeys.insert(passkey.credential_id.as_slice(), bytes.as_slice()).map_err(unavailable)?;
            let key = pair_key(passkey.user_id.as_u128(), &passkey.id.as_u128().to_be_bytes());
            txn.open_table(USER_PASSKEYS)
                .map_err(unavailable)?
                .insert(key.as_slice(), passkey.credential_id.as_slice())
                .map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn find_passkey(&self, credential_id: &[u8]) -> StoreResult<Option<PasskeyRecord>> {
        self.read(|txn| {
            let passkeys = txn.open_table(PASSKEYS).map_err(unavailable)?;
            let found = passkeys.get(credential_id).map_err(unavailable)?;
            found.map(|bytes| decode(bytes.value())).transpose()
        })
    }

    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyRecord>> {
        self.read(|txn| {
            let index = txn.open_table(USER_PASSKEYS).map_err(unavailable)?;
            let passkeys = txn.open_table(PASSKEYS).map_err(unavailable)?;
            let (start, end) = prefix_range(user.as_u128(), 16);
            let mut listed: Vec<PasskeyRecord> = Vec::new();
            for entry in index.range(start.as_slice()..=end.as_slice()).map_err(unavailable)? {
                let (_, credential) = entry.map_err(unavailable)?;
                if let Some(bytes) = passkeys.get(credential.value()).map_err(unavailable)? {
                    listed.push(decode(bytes.value())?);
                }
            }
            listed.sort_by_key(|p| p.created_at);
            Ok(listed)
        })
    }

    async fn update_passkey(&self, passkey: PasskeyRecord) -> StoreResult<()> {
        let bytes = encode(&passkey)?;
        self.write(move |txn| {
            let mut passkeys = txn.open_table(PASSKEYS).map_err(unavailable)?;
            let stored: PasskeyRecord = {
                let found = passkeys.get(passkey.credential_id.as_slice()).map_err(unavailable)?;
                decode(found.ok_or(StoreError::NotFound)?.value())?
            };
            if stored.id != passkey.id || stored.user_id != passkey.user_id {
                return Err(StoreError::NotFound);
            }
            passkeys.insert(passkey.credential_id.as_slice(), bytes.as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn delete_passkey(&self, user: UserId, id: PasskeyId) -> StoreResult<Option<PasskeyRecord>> {
        self.write(move |txn| {
            let key = pair_key(user.as_u128(), &id.as_u128().to_be_bytes());
            let credential = {
                let mut index = txn.open_table(USER_PASSKEYS).map_err(unavailable)?;
                let removed = index.remove(key.as_slice()).map_err(unavailable)?;
                removed.map(|c| c.value().to_vec())
            };
            let Some(credential) = credential else { return Ok(None) };
            let mut passkeys = txn.open_table(PASSKEYS).map_err(unavailable)?;
            let removed = passkeys.remove(credential.as_slice()).map_err(unavailable)?;
            removed.map(|bytes| decode(bytes.value())).transpose()
        })
        .await
    }

    async fn create_identity(&self, identity: Identity) -> StoreResult<bool> {
        let bytes = encode(&identity)?;
        self.write(move |txn| {
            let key = identity_key(&identity.project, &identity.provider, &identity.subject);
            let mut identities = txn.open_table(IDENTITIES).map_err(unavailable)?;
            if identities.get(key.as_slice()).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            identities.insert(key.as_slice(), bytes.as_slice()).map_err(unavailable)?;
            let listed = pair_key(identity.user_id.as_u128(), &key);
            txn.open_table(USER_IDENTITIES).map_err(unavailable)?.insert(listed.as_slice(), ()).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn find_identity(&self, project: &ProjectId, provider: &str, subject: &str) -> StoreResult<Option<Identity>> {
        let key = identity_key(project, provider, subject);
        self.read(|txn| {
            let identities = txn.open_table(IDENTITIES).map_err(unavailable)?;
            let found = identities.get(key.as_slice()).map_err(unavailable)?;
            found.map(|bytes| decode(bytes.value())).transpose()
        })
    }

    async fn list_identities(&self, user: UserId) -> StoreResult<Vec<Identity>> {
        self.read(|txn| {
            let index = txn.open_table(USER_IDENTITIES).map_err(unavailable)?;
            let identities = txn.open_table(IDENTITIES).map_err(unavailable)?;
            let prefix = user.as_u128().to_be_bytes();
            let mut listed: Vec<Identity> = Vec::new();
            for entry in index.range(prefix.as_slice()..).map_err(unavailable)? {
                let (listed_key, _) = entry.map_err(unavailable)?;
                let Some(key) = listed_key.value().strip_prefix(prefix.as_slice()) else { break };
                if let Some(bytes) = identities.get(key).map_err(unavailable)? {
                    let identity: Identity = decode(bytes.value())?;
                    if identity.user_id == user {
                        listed.push(identity);
                    }
                }
            }
            listed.sort_by_key(|i| i.created_at);
            Ok(listed)
        })
    }

    async fn delete_identity(&self, identity: &Identity) -> StoreResult<bool> {
        let (user, key) = (identity.user_id, identity_key(&identity.project, &identity.provider, &identity.subject));
        self.write(move |txn| {
            txn.open_table(USER_IDENTITIES)
                .map_err(unavailable)?
                .remove(pair_key(user.as_u128(), &key).as_slice())
                .map_err(unavailable)?;
            let mut identities = txn.open_table(IDENTITIES).map_err(unavailable)?;
            let owner = {
                let found = identities.get(key.as_slice()).map_err(unavailable)?;
                found.map(|bytes| decode::<Identity>(bytes.value())).transpose()?.map(|i| i.user_id)
            };
            if owner != Some(user) {
                return Ok(false);
            }
            identities.remove(key.as_slice()).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn put_challenge(&self, id: uuid::Uuid, state: Vec<u8>, expires_at: Timestamp) -> StoreResult<()> {
        let mut value = expires_at.0.to_be_bytes().to_vec();
        value.extend_from_slice(&state);
        self.write(move |txn| {
            txn.open_table(CHALLENGES)
                .map_err(unavailable)?
                .insert(id.as_u128(), value.as_slice())
                .map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    async fn take_challenge(&self, id: uuid::Uuid, now: Timestamp) -> StoreResult<Option<Vec<u8>>> {
        // Removed by the one write that finds it: single use.
        let value = self
            .write(move |txn| {
                let mut challenges = txn.open_table(CHALLENGES).map_err(unavailable)?;
                let removed = challenges.remove(id.as_u128()).map_err(unavailable)?;
                Ok(removed.map(|v| v.value().to_vec()))
            })
            .await?;
        let Some(value) = value else { return Ok(None) };
        let (expiry, state) = value.split_at_checked(8).ok_or_else(|| StoreError::Corrupt("challenge".into()))?;
        let expires_at = i64::from_be_bytes(expiry.try_into().map_err(|_| StoreError::Corrupt("challenge".into()))?);
        Ok((now.0 < expires_at).then(|| state.to_vec()))
    }

    async fn create_project(&self, project: Project) -> StoreResult<bool> {
        let bytes = encode(&project)?;
        self.write(move |txn| {
            let mut projects = txn.open_table(PROJECTS).map_err(unavailable)?;
            if projects.get(project.id.as_str()).map_err(unavailable)?.is_some() {
                return Ok(false);
            }
            projects.insert(project.id.as_str(), bytes.as_slice()).map_err(unavailable)?;
            Ok(true)
        })
        .await
    }

    async fn find_project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        self.read(|txn| {
            let projects = txn.open_table(PROJECTS).map_err(unavailable)?;
            let found = projects.get(id.as_str()).map_err(unavailable)?;
            found.map(|bytes| decode(bytes.value())).transpose()
        })
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        self.read(|txn| {
            let projects = txn.open_table(PROJECTS).map_err(unavailable)?;
            let mut all = Vec::new();
            for entry in projects.iter().map_err(unavailable)?.take(super::MAX_PROJECTS) {
                let (_, bytes) = entry.map_err(unavailable)?;
                all.push(decode(bytes.value())?);
            }
            Ok(all)
        })
    }

    async fn replace_project(&self, project: Project, read_version: u64) -> StoreResult<()> {
        let bytes = encode(&project)?;
        self.write(move |txn| {
            let mut projects = txn.open_table(PROJECTS).map_err(unavailable)?;
            let stored: Project = {
                let found = projects.get(project.id.as_str()).map_err(unavailable)?.ok_or(StoreError::NotFound)?;
                decode(found.value())?
            };
            if stored.version != read_version {
                return Err(StoreError::Conflict);
            }
            projects.insert(project.id.as_str(), bytes.as_slice()).map_err(unavailable)?;
            Ok(())
        })
        .await
    }

    /// Kept as sessions come and go, never counted by a scan: it includes
    /// sessions that expired since the last sweep (at most its period).
    async fn count_active_sessions(&self, _now: Timestamp) -> StoreResult<u64> {
        Ok(u64::try_from(self.sessions.load(Ordering::Relaxed)).unwrap_or(0))
    }

    fn counts_sessions_exactly(&self) -> bool {
        true
    }

    async fn count_users(&self, project: &ProjectId) -> StoreResult<u64> {
        Ok(self.counts.accounts(project))
    }

    async fn put_login_tally(&self, tally: LoginTally) -> StoreResult<()> {
        self.counts.put_tally(tally);
        Ok(())
    }

    async fn sum_login_tallies(&self, project: &ProjectId, from: i64, to: i64) -> StoreResult<LoginCounts> {
        Ok(self.counts.sum_tallies(project, from, to))
    }

    /// In bounded batches, the writer free between them (see `sweep`).
    async fn sweep_expired(&self, now: Timestamp) -> StoreResult<usize> {
        self.sweep(now).await
    }

    async fn flush(&self) -> StoreResult<()> {
        // Every write is durable when acknowledged; an empty job returns once
        // everything queued before it has committed.
        self.write(|_| Ok(())).await
    }
}

impl EmbeddedStore {
    /// Rows in the users table; for tests and diagnostics.
    pub fn count_user_rows(&self) -> StoreResult<u64> {
        self.read(|txn| txn.open_table(USERS).map_err(unavailable)?.len().map_err(unavailable))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::EmbeddedStore;
    use crate::store::Store;

    async fn fresh() -> Option<(Arc<dyn Store>, tempfile::TempDir)> {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        Some((Arc::new(store), dir))
    }

    crate::contract_tests!(fresh);

    #[tokio::test]
    async fn sweep_removes_only_what_expired() {
        let (store, _dir) = fresh().await.unwrap();
        crate::store::contract::sweep_removes_only_what_expired(store).await;
    }

    #[tokio::test]
    async fn sweep_forgets_expired_claims_and_codes() {
        use crate::account::{CodePurpose, ProjectId};
        use crate::clock::Timestamp;
        use std::time::Duration;
        let (store, _dir) = fresh().await.unwrap();
        let t0 = Timestamp(1_800_000_000_000);
        let later = t0.plus(Duration::from_secs(3600));
        assert!(store.claim_once([1; 32], t0).await.unwrap());
        assert!(store.claim_once([2; 32], later).await.unwrap());
        let code =
            |subject: &str, at: Timestamp| crate::store::contract::code(CodePurpose::Login, subject, [0; 32], at);
        store.put_code(code("old@x.io", t0)).await.unwrap();
        store.put_code(code("new@x.io", later)).await.unwrap();
        // t0's claim and code (expiring at t0 + 10 min) are past; the later ones are not.
        assert_eq!(store.sweep_expired(t0.plus(Duration::from_secs(601))).await.unwrap(), 2);
        assert!(store.claim_once([1; 32], later).await.unwrap(), "a forgotten claim can be made again");
        assert!(!store.claim_once([2; 32], later).await.unwrap());
        let project = ProjectId::default_project();
        assert!(store.find_code(&project, CodePurpose::Login, "old@x.io").await.unwrap().is_none());
        assert!(store.find_code(&project, CodePurpose::Login, "new@x.io").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn writes_are_durable_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let created = {
            let store = EmbeddedStore::open(dir.path()).unwrap();
            let other = crate::account::User {
                project: crate::account::ProjectId("other".into()),
                ..crate::store::contract::user("b@x.io", None)
            };
            store.create_user(other).await.unwrap();
            store.create_user(crate::store::contract::user("a@x.io", None)).await.unwrap()
        };
        // The writer thread lets go of the file once its queue closes.
        let mut reopened = None;
        for _ in 0..200 {
            match EmbeddedStore::open(dir.path()) {
                Ok(store) => {
                    reopened = Some(store);
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            }
        }
        let store = reopened.expect("store reopens");
        assert_eq!(store.find_user(created.id).await.unwrap().unwrap(), created);
        assert_eq!(store.count_user_rows().unwrap(), 2);
        // The account counts are made again from the file.
        assert_eq!(Store::count_users(&store, &crate::account::ProjectId::default_project()).await.unwrap(), 1);
        assert_eq!(Store::count_users(&store, &crate::account::ProjectId("other".into())).await.unwrap(), 1);
    }
}
