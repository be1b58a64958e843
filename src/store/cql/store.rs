//! `CqlStore`: the `Store` trait on ScyllaDB or Cassandra.
//!
//! Every statement is prepared once, at start. Uniqueness and single use
//! rest on lightweight transactions, each on one partition:
//! - registration claims the email (and username) rows with `IF NOT EXISTS`,
//!   then writes the `users` row. If a later step fails, the claims made so
//!   far are released (`DELETE ... IF user_id = ?`). A claim left behind by a
//!   crash (no `users` row after `CLAIM_GRACE`) is taken over by the next
//!   registration with `UPDATE ... IF user_id = <old>`, so no address is
//!   blocked for ever and no account is half-written. A claim whose LWT
//!   fails without an answer (a Paxos timeout under contention or a node
//!   lost) may still have been applied, so it is asked again
//!   (`CLAIM_ATTEMPTS`): a claim is idempotent for its user, and asking
//!   again finds it ours or someone else's.
//! - a refresh token's successor is inserted first, then the old token is
//!   marked rotated with `IF rotated_at = null AND session_id = ?`: exactly
//!   one rotation wins across the cluster; a loser removes its successor and
//!   reads the winner's rotation at SERIAL consistency.
//!
//! Claim, setup and refresh-token rows are written only with LWTs; all other
//! tables only with plain writes (mixing the two on the same rows can lose
//! writes). Expiring rows carry TTLs, so `sweep_expired` has nothing to do.
//! LWT answers are read by the `[applied]` column alone: Cassandra and
//! ScyllaDB return different extra columns.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::TryStreamExt;
use scylla::client::session::Session;
use scylla::statement::Consistency;
use scylla::statement::prepared::PreparedStatement;

use scylla::value::{CqlTimestamp, CqlValue, Row};
use uuid::Uuid;

use super::CqlTarget;
use crate::account::{
    ApiKey, ApiKeyId, AuditEvent, CodePurpose, Identity, OneTimeCode, PasskeyId, PasskeyRecord, ProjectId,
    RefreshRecord, Role, Rotation, Session as UserSession, SessionId, User, UserId,
};
use crate::clock::{SharedClock, Timestamp};
use crate::projects::Project;
use crate::settings::CqlSerialConsistency;
use crate::store::{
    AuditQuery, FeedEvent, FeedKind, LoginCounts, LoginTally, RotateOutcome, Store, StoreError, StoreResult,
    UniqueField, decode, encode, unavailable,
};

/// How old an unfinished registration claim must be before another
/// registration may take it over.
const CLAIM_GRACE: Duration = Duration::from_secs(60);
/// How many times a claim is asked when its LWT ends without an answer.
const CLAIM_ATTEMPTS: u32 = 3;

fn ts(at: Timestamp) -> CqlTimestamp {
    CqlTimestamp(at.0)
}

/// Seconds until `expires_at`, at least 1 (a TTL of 0 would mean "never").
fn ttl(now: Timestamp, expires_at: Timestamp) -> i32 {
    i32::try_from(now.until(expires_at).as_secs().max(1)).unwrap_or(i32::MAX)
}

/// The statements, prepared once.
struct Statements {
    ping: PreparedStatement,
    insert_user: PreparedStatement,
    select_user: PreparedStatement,
    claim_email: PreparedStatement,
    select_email: PreparedStatement,
    take_email: PreparedStatement,
    release_email: PreparedStatement,
    claim_username: PreparedStatement,
    select_username: PreparedStatement,
    take_username: PreparedStatement,
    release_username: PreparedStatement,
    select_setup: PreparedStatement,
    claim_setup: PreparedStatement,
    insert_session: PreparedStatement,
    select_session: PreparedStatement,
    delete_session: PreparedStatement,
    insert_user_session: PreparedStatement,
    select_user_sessions: PreparedStatement,
    delete_user_session: PreparedStatement,
    insert_token: PreparedStatement,
    select_token: PreparedStatement,
    rotate_token: PreparedStatement,
    delete_token: PreparedStatement,
    /// `select_token` at the serial consistency: it finishes a Paxos round
    /// in flight, so it tells whether an unanswered rotation was applied.
    select_token_serial: PreparedStatement,
    insert_key_by_hash: PreparedStatement,
    insert_key_by_user: PreparedStatement,
    select_key_by_hash: PreparedStatement,
    select_keys_by_user: PreparedStatement,
    select_key_by_user: PreparedStatement,
    delete_key_by_hash: PreparedStatement,
    delete_key_by_user: PreparedStatement,
    touch_key: PreparedStatement,
    select_key_used: PreparedStatement,
    append_feed: PreparedStatement,
    read_feed: PreparedStatement,
    claim_once: PreparedStatement,
    put_code: PreparedStatement,
    select_code: PreparedStatement,
    delete_code: PreparedStatement,
    append_audit: PreparedStatement,
    select_audit: PreparedStatement,
    select_audit_before: PreparedStatement,
    append_user_audit: PreparedStatement,
    select_user_audit: PreparedStatement,
    select_user_audit_before: PreparedStatement,
    session_estimate: PreparedStatement,
    claim_passkey: PreparedStatement,
    insert_user_passkey: PreparedStatement,
    select_passkey: PreparedStatement,
    select_user_passkeys: PreparedStatement,
    select_user_passkey: PreparedStatement,
    update_passkey: PreparedStatement,
    delete_passkey: PreparedStatement,
    delete_user_passkey: PreparedStatement,
    put_ceremony: PreparedStatement,
    claim_identity: PreparedStatement,
    insert_user_identity: PreparedStatement,
    select_identity: PreparedStatement,
    select_user_identities: PreparedStatement,
    delete_identity: PreparedStatement,
    delete_user_identity: PreparedStatement,
    select_ceremony: PreparedStatement,
    create_project: PreparedStatement,
    insert_project_user: PreparedStatement,
    select_project_users: PreparedStatement,
    delete_project_user: PreparedStatement,
    delete_user: PreparedStatement,
    select_project: PreparedStatement,
    select_projects: PreparedStatement,
    replace_project: PreparedStatement,
    add_accounts: PreparedStatement,
    select_accounts: PreparedStatement,
    put_login_tally: PreparedStatement,
    select_login_tallies: PreparedStatement,
}

pub struct CqlStore {
    session: Arc<Session>,
    statements: Statements,
    clock: SharedClock,
    keyspace: String,
}

async fn prepare(session: &Session, keyspace: &str, cql: &str) -> StoreResult<PreparedStatement> {
    let text = cql.replace("{ks}", keyspace);
    let mut prepared = session.prepare(text.as_str()).await.map_err(unavailable)?;
    // Consistency comes from the session's profile (`cql_consistency`,
    // `cql_serial_consistency`).
    // Plain statements write fixed values, so a retry is harmless; a
    // lightweight transaction retried could report its own first write
    // as a lost race, and a counter's addition retried could count twice.
    prepared.set_is_idempotent(!is_conditional(&text) && !is_counter_update(&text));
    Ok(prepared)
}

const SELECT_TOKEN: &str = "SELECT session_id, user_id, project_id, created_at, expires_at, rotated_at, \
    sealed_successor FROM {ks}.refresh_tokens WHERE token_hash = ?";

/// Whether a statement is a lightweight transaction (`IF ...`).
fn is_conditional(cql: &str) -> bool {
    cql.contains(" IF ")
}

/// Whether a statement adds to a counter (`SET n = n + ?`).
fn is_counter_update(cql: &str) -> bool {
    let words: Vec<&str> = cql.split_whitespace().collect();
    words.windows(4).any(|w| w[1] == "=" && w[0] == w[2] && matches!(w[3], "+" | "-"))
}

impl CqlStore {
    /// Prepares every statement against `target`'s keyspace (already migrated).
    pub async fn open(session: Session, target: &CqlTarget, clock: SharedClock) -> StoreResult<Self> {
        let ks = target.keyspace.as_str();
        let s = &session;
        let statements = Statements {
            ping: prepare(s, ks, "SELECT release_version FROM system.local").await?,
            insert_user: prepare(s, ks, "INSERT INTO {ks}.users (user_id, project_id, record, updated_at) VALUES (?, ?, ?, ?)").await?,
            select_user: prepare(s, ks, "SELECT record FROM {ks}.users WHERE user_id = ?").await?,
            claim_email: prepare(s, ks, "INSERT INTO {ks}.users_by_email (project_id, email, user_id, state, claimed_at) VALUES (?, ?, ?, 'claimed', ?) IF NOT EXISTS").await?,
            select_email: prepare(s, ks, "SELECT user_id, claimed_at FROM {ks}.users_by_email WHERE project_id = ? AND email = ?").await?,
            take_email: prepare(s, ks, "UPDATE {ks}.users_by_email SET user_id = ?, claimed_at = ? WHERE project_id = ? AND email = ? IF user_id = ?").await?,
            release_email: prepare(s, ks, "DELETE FROM {ks}.users_by_email WHERE project_id = ? AND email = ? IF user_id = ?").await?,
            claim_username: prepare(s, ks, "INSERT INTO {ks}.users_by_username (project_id, username, user_id, state, claimed_at) VALUES (?, ?, ?, 'claimed', ?) IF NOT EXISTS").await?,
            select_username: prepare(s, ks, "SELECT user_id, claimed_at FROM {ks}.users_by_username WHERE project_id = ? AND username = ?").await?,
            take_username: prepare(s, ks, "UPDATE {ks}.users_by_username SET user_id = ?, claimed_at = ? WHERE project_id = ? AND username = ? IF user_id = ?").await?,
            release_username: prepare(s, ks, "DELETE FROM {ks}.users_by_username WHERE project_id = ? AND username = ? IF user_id = ?").await?,
            select_setup: prepare(s, ks, "SELECT first_user_id FROM {ks}.setup WHERE project_id = ?").await?,
            claim_setup: prepare(s, ks, "INSERT INTO {ks}.setup (project_id, first_user_id, claimed_at) VALUES (?, ?, ?) IF NOT EXISTS").await?,
            insert_session: prepare(s, ks, "INSERT INTO {ks}.sessions (session_id, user_id, record, current_token) VALUES (?, ?, ?, ?) USING TTL ?").await?,
            select_session: prepare(s, ks, "SELECT record, current_token FROM {ks}.sessions WHERE session_id = ?").await?,
            delete_session: prepare(s, ks, "DELETE FROM {ks}.sessions WHERE session_id = ?").await?,
            insert_user_session: prepare(s, ks, "INSERT INTO {ks}.sessions_by_user (user_id, session_id, created_at) VALUES (?, ?, ?) USING TTL ?").await?,
            select_user_sessions: prepare(s, ks, "SELECT session_id FROM {ks}.sessions_by_user WHERE user_id = ?").await?,
            delete_user_session: prepare(s, ks, "DELETE FROM {ks}.sessions_by_user WHERE user_id = ? AND session_id = ?").await?,
            insert_token: prepare(s, ks, "INSERT INTO {ks}.refresh_tokens (token_hash, session_id, user_id, project_id, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?) IF NOT EXISTS USING TTL ?").await?,
            select_token: prepare(s, ks, SELECT_TOKEN).await?,
            rotate_token: prepare(s, ks, "UPDATE {ks}.refresh_tokens USING TTL ? SET rotated_at = ?, sealed_successor = ? WHERE token_hash = ? IF rotated_at = null AND session_id = ?").await?,
            delete_token: prepare(s, ks, "DELETE FROM {ks}.refresh_tokens WHERE token_hash = ? IF EXISTS").await?,
            select_token_serial: {
                let mut serial = prepare(s, ks, SELECT_TOKEN).await?;
                serial.set_consistency(match target.serial_consistency {
                    CqlSerialConsistency::Serial => Consistency::Serial,
                    CqlSerialConsistency::LocalSerial => Consistency::LocalSerial,
                });
                serial
            },
            insert_key_by_hash: prepare(s, ks, "INSERT INTO {ks}.api_keys_by_hash (key_hash, key_id, user_id, record) VALUES (?, ?, ?, ?)").await?,
            insert_key_by_user: prepare(s, ks, "INSERT INTO {ks}.api_keys_by_user (user_id, key_id, key_hash, record) VALUES (?, ?, ?, ?)").await?,
            select_key_by_hash: prepare(s, ks, "SELECT record FROM {ks}.api_keys_by_hash WHERE key_hash = ?").await?,
            select_keys_by_user: prepare(s, ks, "SELECT record FROM {ks}.api_keys_by_user WHERE user_id = ?").await?,
            select_key_by_user: prepare(s, ks, "SELECT record FROM {ks}.api_keys_by_user WHERE user_id = ? AND key_id = ?").await?,
            delete_key_by_hash: prepare(s, ks, "DELETE FROM {ks}.api_keys_by_hash WHERE key_hash = ?").await?,
            delete_key_by_user: prepare(s, ks, "DELETE FROM {ks}.api_keys_by_user WHERE user_id = ? AND key_id = ?").await?,
            // The use time is the write time: an older touch can never overwrite a newer one.
            touch_key: prepare(s, ks, "INSERT INTO {ks}.api_key_last_used (key_id, last_used_at) VALUES (?, ?) USING TIMESTAMP ?").await?,
            select_key_used: prepare(s, ks, "SELECT last_used_at FROM {ks}.api_key_last_used WHERE key_id = ?").await?,
            append_feed: prepare(s, ks, "INSERT INTO {ks}.change_feed (bucket, event_at, event_id, kind, subject, node) VALUES (?, ?, ?, ?, ?, ?)").await?,
            read_feed: prepare(s, ks, "SELECT event_at, event_id, kind, subject, node FROM {ks}.change_feed WHERE bucket = ? AND event_at > ?").await?,
            claim_once: prepare(s, ks, "INSERT INTO {ks}.used_once (claim, claimed_at) VALUES (?, ?) IF NOT EXISTS USING TTL ?").await?,
            put_code: prepare(s, ks, "INSERT INTO {ks}.email_codes (project_id, purpose, subject, record) VALUES (?, ?, ?, ?) USING TTL ?").await?,
            select_code: prepare(s, ks, "SELECT record FROM {ks}.email_codes WHERE project_id = ? AND purpose = ? AND subject = ?").await?,
            delete_code: prepare(s, ks, "DELETE FROM {ks}.email_codes WHERE project_id = ? AND purpose = ? AND subject = ?").await?,
            append_audit: prepare(s, ks, "INSERT INTO {ks}.audit_log (project_id, day, event_at, event_id, record) VALUES (?, ?, ?, ?, ?) USING TTL ?").await?,
            select_audit: prepare(s, ks, "SELECT record FROM {ks}.audit_log WHERE project_id = ? AND day = ? LIMIT ?").await?,
            select_audit_before: prepare(s, ks, "SELECT record FROM {ks}.audit_log WHERE project_id = ? AND day = ? AND (event_at, event_id) < (?, ?) LIMIT ?").await?,
            append_user_audit: prepare(s, ks, "INSERT INTO {ks}.audit_by_user (project_id, user_id, month, event_at, event_id, record) VALUES (?, ?, ?, ?, ?, ?) USING TTL ?").await?,
            select_user_audit: prepare(s, ks, "SELECT record FROM {ks}.audit_by_user WHERE project_id = ? AND user_id = ? AND month = ? LIMIT ?").await?,
            select_user_audit_before: prepare(s, ks, "SELECT record FROM {ks}.audit_by_user WHERE project_id = ? AND user_id = ? AND month = ? AND (event_at, event_id) < (?, ?) LIMIT ?").await?,
            session_estimate: prepare(s, ks, "SELECT partitions_count FROM system.size_estimates WHERE keyspace_name = ? AND table_name = 'sessions'").await?,
            claim_passkey: prepare(s, ks, "INSERT INTO {ks}.passkeys_by_credential (credential_id, user_id, passkey_id, record) VALUES (?, ?, ?, ?) IF NOT EXISTS").await?,
            insert_user_passkey: prepare(s, ks, "INSERT INTO {ks}.passkeys_by_user (user_id, passkey_id, credential_id) VALUES (?, ?, ?)").await?,
            select_passkey: prepare(s, ks, "SELECT record FROM {ks}.passkeys_by_credential WHERE credential_id = ?").await?,
            select_user_passkeys: prepare(s, ks, "SELECT credential_id FROM {ks}.passkeys_by_user WHERE user_id = ?").await?,
            select_user_passkey: prepare(s, ks, "SELECT credential_id FROM {ks}.passkeys_by_user WHERE user_id = ? AND passkey_id = ?").await?,
            update_passkey: prepare(s, ks, "UPDATE {ks}.passkeys_by_credential SET record = ? WHERE credential_id = ? IF user_id = ? AND passkey_id = ?").await?,
            delete_passkey: prepare(s, ks, "DELETE FROM {ks}.passkeys_by_credential WHERE credential_id = ? IF passkey_id = ?").await?,
            delete_user_passkey: prepare(s, ks, "DELETE FROM {ks}.passkeys_by_user WHERE user_id = ? AND passkey_id = ?").await?,
            claim_identity: prepare(s, ks, "INSERT INTO {ks}.identities_by_subject (project, provider, subject, user_id, record) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS").await?,
            insert_user_identity: prepare(s, ks, "INSERT INTO {ks}.identities_by_user (user_id, project, provider, subject) VALUES (?, ?, ?, ?)").await?,
            select_identity: prepare(s, ks, "SELECT record FROM {ks}.identities_by_subject WHERE project = ? AND provider = ? AND subject = ?").await?,
            select_user_identities: prepare(s, ks, "SELECT project, provider, subject FROM {ks}.identities_by_user WHERE user_id = ?").await?,
            delete_identity: prepare(s, ks, "DELETE FROM {ks}.identities_by_subject WHERE project = ? AND provider = ? AND subject = ? IF user_id = ?").await?,
            delete_user_identity: prepare(s, ks, "DELETE FROM {ks}.identities_by_user WHERE user_id = ? AND project = ? AND provider = ? AND subject = ?").await?,
            put_ceremony: prepare(s, ks, "INSERT INTO {ks}.ceremonies (ceremony_id, state, expires_at) VALUES (?, ?, ?) USING TTL ?").await?,
            select_ceremony: prepare(s, ks, "SELECT state, expires_at FROM {ks}.ceremonies WHERE ceremony_id = ?").await?,
            insert_project_user: prepare(s, ks, "INSERT INTO {ks}.users_by_project (project_id, bucket, user_id) VALUES (?, ?, ?)").await?,
            select_project_users: prepare(s, ks, "SELECT user_id FROM {ks}.users_by_project WHERE project_id = ? AND bucket = ? AND user_id > ? LIMIT ?").await?,
            delete_project_user: prepare(s, ks, "DELETE FROM {ks}.users_by_project WHERE project_id = ? AND bucket = ? AND user_id = ?").await?,
            delete_user: prepare(s, ks, "DELETE FROM {ks}.users WHERE user_id = ?").await?,
            create_project: prepare(s, ks, "INSERT INTO {ks}.projects (project_id, record, version) VALUES (?, ?, ?) IF NOT EXISTS").await?,
            select_project: prepare(s, ks, "SELECT record FROM {ks}.projects WHERE project_id = ?").await?,
            select_projects: prepare(s, ks, "SELECT record FROM {ks}.projects LIMIT ?").await?,
            replace_project: prepare(s, ks, "UPDATE {ks}.projects SET record = ?, version = ? WHERE project_id = ? IF version = ?").await?,
            add_accounts: prepare(s, ks, "UPDATE {ks}.account_counts SET accounts = accounts + ? WHERE project_id = ?").await?,
            select_accounts: prepare(s, ks, "SELECT accounts FROM {ks}.account_counts WHERE project_id = ?").await?,
            put_login_tally: prepare(s, ks, "INSERT INTO {ks}.login_tallies (project_id, hour, minute, node, succeeded, failed) VALUES (?, ?, ?, ?, ?, ?)").await?,
            select_login_tallies: prepare(s, ks, "SELECT succeeded, failed FROM {ks}.login_tallies WHERE project_id = ? AND hour = ? AND minute >= ? AND minute <= ?").await?,
        };
        Ok(CqlStore { session: Arc::new(session), statements, clock, keyspace: ks.to_owned() })
    }

    async fn exec(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> StoreResult<scylla::response::query_result::QueryResult> {
        self.session.execute_unpaged(statement, values).await.map_err(unavailable)
    }

    /// The first row of a read, typed.
    async fn first<R>(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> StoreResult<Option<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let rows = self.exec(statement, values).await?.into_rows_result().map_err(unavailable)?;
        rows.maybe_first_row::<R>().map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// Runs a lightweight transaction; whether it applied.
    async fn lwt(
        &self,
        statement: &PreparedStatement,
        values: impl scylla::serialize::row::SerializeRow,
    ) -> StoreResult<bool> {
        let rows = self.exec(statement, values).await?.into_rows_result().map_err(unavailable)?;
        let row = rows.maybe_first_row::<Row>().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        match row.and_then(|r| r.columns.into_iter().next().flatten()) {
            Some(CqlValue::Boolean(applied)) => Ok(applied),
            other => Err(StoreError::Corrupt(format!("LWT answer without [applied]: {other:?}"))),
        }
    }

    /// Claims a unique value for `user`: a fresh claim, or the take-over of
    /// a claim whose registration never finished. An attempt that ends
    /// without an answer is made again, after a pause that differs from one
    /// racing user to the next.
    async fn claim(
        &self,
        field: UniqueField,
        project: &ProjectId,
        value: &str,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let mut attempt = 1;
        loop {
            match self.claim_attempt(field, project, value, user, now).await {
                Err(StoreError::Unavailable(cause)) if attempt < CLAIM_ATTEMPTS => {
                    tracing::debug!(%cause, attempt, "a claim ended without an answer; asking again");
                    let spread = u64::try_from(user.0.as_u128() % 50).unwrap_or(0);
                    tokio::time::sleep(Duration::from_millis(20 + spread) * attempt).await;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    async fn claim_attempt(
        &self,
        field: UniqueField,
        project: &ProjectId,
        value: &str,
        user: UserId,
        now: Timestamp,
    ) -> StoreResult<()> {
        let (claim, select, take) = match field {
            UniqueField::Email => {
                (&self.statements.claim_email, &self.statements.select_email, &self.statements.take_email)
            }
            UniqueField::Username => {
                (&self.statements.claim_username, &self.statements.select_username, &self.statements.take_username)
            }
        };
        if self.lwt(claim, (project.as_str(), value, user.0, ts(now))).await? {
            return Ok(());
        }
        let Some((holder, claimed_at)) = self.first::<(Uuid, CqlTimestamp)>(select, (project.as_str(), value)).await?
        else {
            return Err(StoreError::AlreadyExists(field));
        };
        let stale = Timestamp(claimed_at.0).plus(CLAIM_GRACE) <= now;
        if (holder == user.0 || (stale && self.find_user(UserId(holder)).await?.is_none()))
            && self.lwt(take, (user.0, ts(now), project.as_str(), value, holder)).await?
        {
            return Ok(());
        }
        Err(StoreError::AlreadyExists(field))
    }

    /// A refresh token's record as `select` reads it (plain or serial).
    async fn refresh_token_by(
        &self,
        select: &PreparedStatement,
        digest: &[u8; 32],
    ) -> StoreResult<Option<RefreshRecord>> {
        let Some((session, user, project, created, expires, rotated_at, sealed)) =
            self.first::<TokenRow>(select, (digest.as_slice(),)).await?
        else {
            return Ok(None);
        };
        Ok(Some(RefreshRecord {
            digest: *digest,
            session_id: SessionId(session),
            user_id: UserId(user),
            project: ProjectId(project),
            created_at: Timestamp(created.0),
            expires_at: Timestamp(expires.0),
            rotated: rotated_at
                .map(|at| Rotation { at: Timestamp(at.0), sealed_successor: sealed.unwrap_or_default() }),
        }))
    }

    /// Releases `user`'s claim of `value`; whether this call released it.
    async fn release(&self, field: UniqueField, project: &ProjectId, value: &str, user: UserId) -> bool {
        let release = match field {
            UniqueField::Email => &self.statements.release_email,
            UniqueField::Username => &self.statements.release_username,
        };
        match self.lwt(release, (project.as_str(), value, user.0)).await {
            Ok(released) => released,
            Err(e) => {
                tracing::warn!(error = %e, "releasing a claim failed; it will be taken over after the grace period");
                false
            }
        }
    }

    /// Moves `project`'s account counter by `by`. A failure is logged, not
    /// returned: the account change it counts has happened.
    async fn count_accounts(&self, project: &ProjectId, by: i64) {
        let by = scylla::value::Counter(by);
        if let Err(e) = self.exec(&self.statements.add_accounts, (by, project.as_str())).await {
            tracing::warn!(error = %e, project = %project, "counting an account failed; the overview's count is off by one");
        }
    }

    async fn write_user(&self, user: &User) -> StoreResult<()> {
        let record = encode(user)?;
        self.exec(&self.statements.insert_user, (user.id.0, user.project.as_str(), record, ts(user.updated_at)))
            .await?;
        let listed = (user.project.as_str(), user_bucket(user.id), user.id.0);
        self.exec(&self.statements.insert_project_user, listed).await.map(|_| ())
    }

    async fn user_by_claim(
        &self,
        select: &PreparedStatement,
        project: &ProjectId,
        value: &str,
    ) -> StoreResult<Option<User>> {
        match self.first::<(Uuid, CqlTimestamp)>(select, (project.as_str(), value)).await? {
            // A claim without a users row is an unfinished registration: no user.
            Some((id, _)) => self.find_user(UserId(id)).await,
            None => Ok(None),
        }
    }

    async fn session_ids(&self, user: UserId) -> StoreResult<Vec<SessionId>> {
        let pager = self
            .session
            .execute_iter(self.statements.select_user_sessions.clone(), (user.0,))
            .await
            .map_err(unavailable)?;
        let mut rows = pager.rows_stream::<(Uuid,)>().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut ids = Vec::new();
        while let Some((id,)) = rows.try_next().await.map_err(unavailable)? {
            ids.push(SessionId(id));
        }
        Ok(ids)
    }

    async fn insert_token(&self, record: &RefreshRecord, now: Timestamp) -> StoreResult<()> {
        let values = (
            record.digest.as_slice(),
            record.session_id.0,
            record.user_id.0,
            record.project.as_str(),
            ts(record.created_at),
            ts(record.expires_at),
            ttl(now, record.expires_at),
        );
        if self.lwt(&self.statements.insert_token, values).await? { Ok(()) } else { Err(StoreError::Conflict) }
    }

    async fn write_session(&self, session: &UserSession, current: &[u8; 32], now: Timestamp) -> StoreResult<()> {
        let record = encode(session)?;
        let ttl = ttl(now, session.expires_at);
        self.exec(&self.statements.insert_user_session, (session.user_id.0, session.id.0, ts(session.created_at), ttl))
            .await?;
        self.exec(&self.statements.insert_session, (session.id.0, session.user_id.0, record, current.as_slice(), ttl))
            .await?;
        Ok(())
    }
}

/// The audit log's partition within a project: one per UTC day.
fn audit_day(at: Timestamp) -> i32 {
    i32::try_from(at.0.div_euclid(86_400_000)).unwrap_or(i32::MAX)
}

/// The audit partition of one user's events: one per 30 days.
fn audit_month(at: Timestamp) -> i32 {
    audit_day(at).div_euclid(30)
}

/// The farthest back an audit page looks (the longest retention: the
/// table's TTL of 400 days).
const AUDIT_LOOK_BACK_DAYS: i32 = 400;

/// The feed's partition: one per minute.
fn feed_bucket(at: Timestamp) -> i64 {
    at.0.div_euclid(60_000)
}

type TokenRow = (Uuid, Uuid, String, CqlTimestamp, CqlTimestamp, Option<CqlTimestamp>, Option<Vec<u8>>);

#[async_trait]
impl Store for CqlStore {
    fn backend(&self) -> &'static str {
        "cql"
    }

    async fn ping(&self) -> StoreResult<()> {
        self.first::<(String,)>(&self.statements.ping, ()).await.map(|_| ())
    }

    async fn has_users(&self, project: &ProjectId) -> StoreResult<bool> {
        Ok(self.first::<(Option<Uuid>,)>(&self.statements.select_setup, (project.as_str(),)).await?.is_some())
    }

    async fn create_user(&self, mut user: User) -> StoreResult<User> {
        let now = self.clock.now();
        self.claim(UniqueField::Email, &user.project, &user.email, user.id, now).await?;
        if let Some(username) = user.username.clone()
            && let Err(e) = self.claim(UniqueField::Username, &user.project, &username, user.id, now).await
        {
            self.release(UniqueField::Email, &user.project, &user.email, user.id).await;
            return Err(e);
        }
        let first = self.first::<(Option<Uuid>,)>(&self.statements.select_setup, (user.project.as_str(),)).await;
        let outcome = async {
            if first?.is_none()
                && self.lwt(&self.statements.claim_setup, (user.project.as_str(), user.id.0, ts(now))).await?
                && user.project.as_str() == ProjectId::DEFAULT
            {
                user.role = Role::Superadmin;
            }
            self.write_user(&user).await
        }
        .await;
        if let Err(e) = outcome {
            self.release(UniqueField::Email, &user.project, &user.email, user.id).await;
            if let Some(username) = &user.username {
                self.release(UniqueField::Username, &user.project, username, user.id).await;
            }
            return Err(e);
        }
        self.count_accounts(&user.project, 1).await;
        Ok(user)
    }

    async fn find_user(&self, id: UserId) -> StoreResult<Option<User>> {
        match self.first::<(Vec<u8>,)>(&self.statements.select_user, (id.0,)).await? {
            Some((record,)) => decode(&record).map(Some),
            None => Ok(None),
        }
    }

    async fn find_user_by_email(&self, project: &ProjectId, email: &str) -> StoreResult<Option<User>> {
        self.user_by_claim(&self.statements.select_email, project, email).await
    }

    async fn find_user_by_username(&self, project: &ProjectId, username: &str) -> StoreResult<Option<User>> {
        self.user_by_claim(&self.statements.select_username, project, username).await
    }

    async fn update_user(&self, user: User) -> StoreResult<User> {
        let old = self.find_user(user.id).await?.ok_or(StoreError::NotFound)?;
        let now = self.clock.now();
        if old.email != user.email {
            self.claim(UniqueField::Email, &user.project, &user.email, user.id, now).await?;
        }
        if old.username != user.username
            && let Some(username) = &user.username
            && let Err(e) = self.claim(UniqueField::Username, &user.project, username, user.id, now).await
        {
            if old.email != user.email {
                self.release(UniqueField::Email, &user.project, &user.email, user.id).await;
            }
            return Err(e);
        }
        self.write_user(&user).await?;
        if old.email != user.email {
            self.release(UniqueField::Email, &old.project, &old.email, old.id).await;
        }
        if old.username != user.username
            && let Some(name) = &old.username
        {
            self.release(UniqueField::Username, &old.project, name, old.id).await;
        }
        Ok(user)
    }

    async fn list_users(&self, project: &ProjectId, after: Option<UserId>, limit: usize) -> StoreResult<Vec<User>> {
        let after = after.map_or(Uuid::nil(), |id| id.0);
        let wanted = i32::try_from(limit).unwrap_or(i32::MAX);
        // Each bucket's next ids after the cursor, merged in id order.
        let mut ids = Vec::new();
        for bucket in 0..USER_BUCKETS {
            let rows = self
                .exec(&self.statements.select_project_users, (project.as_str(), bucket, after, wanted))
                .await?
                .into_rows_result()
                .map_err(unavailable)?;
            for row in rows.rows::<(Uuid,)>().map_err(|e| StoreError::Corrupt(e.to_string()))? {
                ids.push(row.map_err(|e| StoreError::Corrupt(e.to_string()))?.0);
            }
        }
        ids.sort_unstable();
        let mut users = Vec::new();
        for id in ids.into_iter().take(limit) {
            if let Some(user) = self.find_user(UserId(id)).await? {
                users.push(user);
            }
        }
        Ok(users)
    }

    async fn delete_user(&self, id: UserId) -> StoreResult<bool> {
        let Some(user) = self.find_user(id).await? else { return Ok(false) };
        self.exec(&self.statements.delete_user, (id.0,)).await?;
        self.exec(&self.statements.delete_project_user, (user.project.as_str(), user_bucket(id), id.0)).await?;
        // Of two racing deletes, the one that released the address counts.
        if self.release(UniqueField::Email, &user.project, &user.email, id).await {
            self.count_accounts(&user.project, -1).await;
        }
        if let Some(name) = &user.username {
            self.release(UniqueField::Username, &user.project, name, id).await;
        }
        Ok(true)
    }

    async fn create_session(&self, session: UserSession, refresh: RefreshRecord) -> StoreResult<()> {
        let now = self.clock.now();
        // The token first: a session row is what makes its tokens usable.
        self.insert_token(&refresh, now).await?;
        self.write_session(&session, &refresh.digest, now).await
    }

    async fn find_session(&self, id: SessionId) -> StoreResult<Option<UserSession>> {
        match self.first::<(Vec<u8>, Option<Vec<u8>>)>(&self.statements.select_session, (id.0,)).await? {
            Some((record, _)) => decode(&record).map(Some),
            None => Ok(None),
        }
    }

    async fn list_sessions(&self, user: UserId, now: Timestamp) -> StoreResult<Vec<UserSession>> {
        let mut sessions = Vec::new();
        for id in self.session_ids(user).await? {
            if let Some(session) = self.find_session(id).await?.filter(|s| s.expires_at > now) {
                sessions.push(session);
            }
        }
        sessions.sort_by_key(|s| s.created_at);
        Ok(sessions)
    }

    async fn delete_session(&self, id: SessionId) -> StoreResult<bool> {
        let Some((record, current)) =
            self.first::<(Vec<u8>, Option<Vec<u8>>)>(&self.statements.select_session, (id.0,)).await?
        else {
            return Ok(false);
        };
        let session: UserSession = decode(&record)?;
        self.exec(&self.statements.delete_session, (id.0,)).await?;
        self.exec(&self.statements.delete_user_session, (session.user_id.0, id.0)).await?;
        // The live token goes at once; rotated ones are useless without the
        // session and expire with their TTL.
        if let Some(current) = current {
            self.lwt(&self.statements.delete_token, (current,)).await?;
        }
        Ok(true)
    }

    async fn delete_user_sessions(&self, user: UserId, keep: Option<SessionId>) -> StoreResult<Vec<SessionId>> {
        let mut deleted = Vec::new();
        for id in self.session_ids(user).await?.into_iter().filter(|id| Some(*id) != keep) {
            if self.delete_session(id).await? {
                deleted.push(id);
            }
        }
        Ok(deleted)
    }

    async fn find_refresh_token(&self, digest: &[u8; 32]) -> StoreResult<Option<RefreshRecord>> {
        self.refresh_token_by(&self.statements.select_token, digest).await
    }

    async fn rotate_refresh_token(
        &self,
        old: &[u8; 32],
        rotation: Rotation,
        successor: RefreshRecord,
        session_touch: (Timestamp, Timestamp),
    ) -> StoreResult<RotateOutcome> {
        let now = self.clock.now();
        let record = self.find_refresh_token(old).await?.ok_or(StoreError::NotFound)?;
        if let Some(done) = record.rotated {
            return Ok(RotateOutcome::AlreadyRotated(done));
        }
        let mut session = self.find_session(record.session_id).await?.ok_or(StoreError::NotFound)?;
        self.insert_token(&successor, now).await?;
        let values = (
            ttl(now, record.expires_at),
            ts(rotation.at),
            rotation.sealed_successor.as_slice(),
            old.as_slice(),
            record.session_id.0,
        );
        let applied = match self.lwt(&self.statements.rotate_token, values).await {
            Ok(applied) => applied,
            // Unanswered (a Paxos timeout, a node lost): it may have been
            // applied. A serial read finishes the round and shows whose it is.
            Err(StoreError::Unavailable(cause)) => {
                tracing::debug!(%cause, "a rotation ended without an answer; reading it back");
                match self.refresh_token_by(&self.statements.select_token_serial, old).await?.and_then(|r| r.rotated) {
                    Some(done) => done.sealed_successor == rotation.sealed_successor,
                    None => self.lwt(&self.statements.rotate_token, values).await?,
                }
            }
            Err(e) => return Err(e),
        };
        if !applied {
            // Another node rotated it first: drop our successor (nobody holds
            // it; left behind, it only waits for its TTL), report theirs.
            if let Err(e) = self.lwt(&self.statements.delete_token, (successor.digest.as_slice(),)).await {
                tracing::warn!(error = %e, "an unused successor token was not deleted; it expires by TTL");
            }
            let theirs = self.refresh_token_by(&self.statements.select_token_serial, old).await?;
            return theirs.and_then(|r| r.rotated).map(RotateOutcome::AlreadyRotated).ok_or(StoreError::Conflict);
        }
        (session.last_seen_at, session.expires_at) = session_touch;
        self.write_session(&session, &successor.digest, now).await?;
        Ok(RotateOutcome::Rotated)
    }

    async fn create_api_key(&self, key: ApiKey) -> StoreResult<()> {
        let record = encode(&key)?;
        self.exec(
            &self.statements.insert_key_by_user,
            (key.user_id.0, key.id.0, key.digest.as_slice(), record.as_slice()),
        )
        .await?;
        self.exec(
            &self.statements.insert_key_by_hash,
            (key.digest.as_slice(), key.id.0, key.user_id.0, record.as_slice()),
        )
        .await?;
        Ok(())
    }

    async fn find_api_key(&self, digest: &[u8; 32]) -> StoreResult<Option<ApiKey>> {
        let Some((record,)) =
            self.first::<(Vec<u8>,)>(&self.statements.select_key_by_hash, (digest.as_slice(),)).await?
        else {
            return Ok(None);
        };
        let mut key: ApiKey = decode(&record)?;
        key.last_used_at = self.key_last_used(key.id).await?;
        Ok(Some(key))
    }

    async fn list_api_keys(&self, user: UserId) -> StoreResult<Vec<ApiKey>> {
        let pager = self
            .session
            .execute_iter(self.statements.select_keys_by_user.clone(), (user.0,))
            .await
            .map_err(unavailable)?;
        let mut rows = pager.rows_stream::<(Vec<u8>,)>().map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut keys = Vec::new();
        while let Some((record,)) = rows.try_next().await.map_err(unavailable)? {
            let mut key: ApiKey = decode(&record)?;
            key.last_used_at = self.key_last_used(key.id).await?;
            keys.push(key);
        }
        keys.sort_by_key(|k| k.created_at);
        Ok(keys)
    }

    async fn delete_api_key(&self, user: UserId, id: ApiKeyId) -> StoreResult<Option<ApiKey>> {
        let Some((record,)) = self.first::<(Vec<u8>,)>(&self.statements.select_key_by_user, (user.0, id.0)).await?
        else {
            return Ok(None);
        };
        let key: ApiKey = decode(&record)?;
        self.exec(&self.statements.delete_key_by_hash, (key.digest.as_slice(),)).await?;
        self.exec(&self.statements.delete_key_by_user, (user.0, id.0)).await?;
        Ok(Some(key))
    }

    async fn touch_api_keys(&self, used: Vec<(ApiKeyId, Timestamp)>) -> StoreResult<()> {
        for (id, at) in used {
            self.exec(&self.statements.touch_key, (id.0, ts(at), at.0.saturating_mul(1000))).await?;
        }
        Ok(())
    }

    async fn claim_once(&self, key: [u8; 32], expires_at: Timestamp) -> StoreResult<bool> {
        let now = self.clock.now();
        self.lwt(&self.statements.claim_once, (key.as_slice(), ts(now), ttl(now, expires_at))).await
    }

    async fn put_code(&self, code: OneTimeCode) -> StoreResult<()> {
        let record = encode(&code)?;
        let ttl = ttl(self.clock.now(), code.expires_at);
        let values = (code.project.as_str(), code.purpose.as_str(), code.subject.as_str(), record, ttl);
        self.exec(&self.statements.put_code, values).await.map(|_| ())
    }

    async fn find_code(
        &self,
        project: &ProjectId,
        purpose: CodePurpose,
        subject: &str,
    ) -> StoreResult<Option<OneTimeCode>> {
        let values = (project.as_str(), purpose.as_str(), subject);
        match self.first::<(Vec<u8>,)>(&self.statements.select_code, values).await? {
            Some((record,)) => decode(&record).map(Some),
            None => Ok(None),
        }
    }

    async fn delete_code(&self, project: &ProjectId, purpose: CodePurpose, subject: &str) -> StoreResult<()> {
        self.exec(&self.statements.delete_code, (project.as_str(), purpose.as_str(), subject)).await.map(|_| ())
    }

    async fn append_audit(&self, event: AuditEvent) -> StoreResult<()> {
        let record = encode(&event)?;
        // Kept until `keep_until` (the retention), at least a second.
        let ttl = i32::try_from(self.clock.now().until(event.keep_until).as_secs()).unwrap_or(i32::MAX).max(1);
        if let Some(user) = event.user_id {
            let values = (event.project.as_str(), user.0, audit_month(event.at), ts(event.at), event.id, &record, ttl);
            self.exec(&self.statements.append_user_audit, values).await?;
        }
        let values = (event.project.as_str(), audit_day(event.at), ts(event.at), event.id, record, ttl);
        self.exec(&self.statements.append_audit, values).await.map(|_| ())
    }

    async fn list_audit_page(&self, query: AuditQuery) -> StoreResult<Vec<AuditEvent>> {
        let mut events = Vec::new();
        let newest = query.before.map_or(self.clock.now(), |(at, _)| at);
        let oldest = query.since.max(Timestamp(newest.0 - i64::from(AUDIT_LOOK_BACK_DAYS) * 86_400_000));
        // Partitions newest first: days of the project's log, or 30-day
        // spans of one user's.
        let (first, last) = match query.user {
            Some(_) => (audit_month(newest), audit_month(oldest)),
            None => (audit_day(newest), audit_day(oldest)),
        };
        for partition in (last..=first).rev() {
            if events.len() >= query.limit {
                break;
            }
            let wanted = i32::try_from(query.limit - events.len()).unwrap_or(i32::MAX);
            let project = query.project.as_str();
            let result = match (query.user, query.before) {
                (None, None) => self.exec(&self.statements.select_audit, (project, partition, wanted)).await?,
                (None, Some((at, id))) => {
                    let values = (project, partition, ts(at), id, wanted);
                    self.exec(&self.statements.select_audit_before, values).await?
                }
                (Some(user), None) => {
                    self.exec(&self.statements.select_user_audit, (project, user.0, partition, wanted)).await?
                }
                (Some(user), Some((at, id))) => {
                    let values = (project, user.0, partition, ts(at), id, wanted);
                    self.exec(&self.statements.select_user_audit_before, values).await?
                }
            };
            let rows = result.into_rows_result().map_err(unavailable)?;
            for row in rows.rows::<(Vec<u8>,)>().map_err(|e| StoreError::Corrupt(e.to_string()))? {
                let (record,) = row.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let event: AuditEvent = decode(&record)?;
                if event.at < query.since {
                    return Ok(events);
                }
                events.push(event);
            }
        }
        Ok(events)
    }

    async fn create_passkey(&self, passkey: PasskeyRecord) -> StoreResult<bool> {
        let record = encode(&passkey)?;
        let claim = (passkey.credential_id.as_slice(), passkey.user_id.0, passkey.id.0, record);
        if !self.lwt(&self.statements.claim_passkey, claim).await? {
            return Ok(false);
        }
        let listed = (passkey.user_id.0, passkey.id.0, passkey.credential_id.as_slice());
        self.exec(&self.statements.insert_user_passkey, listed).await?;
        Ok(true)
    }

    async fn find_passkey(&self, credential_id: &[u8]) -> StoreResult<Option<PasskeyRecord>> {
        match self.first::<(Vec<u8>,)>(&self.statements.select_passkey, (credential_id,)).await? {
            Some((record,)) => decode(&record).map(Some),
            None => Ok(None),
        }
    }

    async fn list_passkeys(&self, user: UserId) -> StoreResult<Vec<PasskeyRecord>> {
        let rows = self
            .exec(&self.statements.select_user_passkeys, (user.0,))
            .await?
            .into_rows_result()
            .map_err(unavailable)?;
        let mut listed = Vec::new();
        for row in rows.rows::<(Vec<u8>,)>().map_err(|e| StoreError::Corrupt(e.to_string()))? {
            let (credential,) = row.map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if let Some(passkey) = self.find_passkey(&credential).await? {
                listed.push(passkey);
            }
        }
        listed.sort_by_key(|p: &PasskeyRecord| p.created_at);
        Ok(listed)
    }

    async fn update_passkey(&self, passkey: PasskeyRecord) -> StoreResult<()> {
        let record = encode(&passkey)?;
        let values = (record, passkey.credential_id.as_slice(), passkey.user_id.0, passkey.id.0);
        if self.lwt(&self.statements.update_passkey, values).await? { Ok(()) } else { Err(StoreError::NotFound) }
    }

    async fn delete_passkey(&self, user: UserId, id: PasskeyId) -> StoreResult<Option<PasskeyRecord>> {
        let Some((credential,)) =
            self.first::<(Vec<u8>,)>(&self.statements.select_user_passkey, (user.0, id.0)).await?
        else {
            return Ok(None);
        };
        let found = self.find_passkey(&credential).await?;
        self.lwt(&self.statements.delete_passkey, (credential.as_slice(), id.0)).await?;
        self.exec(&self.statements.delete_user_passkey, (user.0, id.0)).await?;
        Ok(found.filter(|p| p.id == id && p.user_id == user))
    }

    async fn create_identity(&self, identity: Identity) -> StoreResult<bool> {
        let record = encode(&identity)?;
        let (project, provider, subject) =
            (identity.project.as_str(), identity.provider.as_str(), identity.subject.as_str());
        if !self.lwt(&self.statements.claim_identity, (project, provider, subject, identity.user_id.0, record)).await? {
            return Ok(false);
        }
        self.exec(&self.statements.insert_user_identity, (identity.user_id.0, project, provider, subject)).await?;
        Ok(true)
    }

    async fn find_identity(&self, project: &ProjectId, provider: &str, subject: &str) -> StoreResult<Option<Identity>> {
        match self.first::<(Vec<u8>,)>(&self.statements.select_identity, (project.as_str(), provider, subject)).await? {
            Some((record,)) => decode(&record).map(Some),
            None => Ok(None),
        }
    }

    async fn list_identities(&self, user: UserId) -> StoreResult<Vec<Identity>> {
        let rows = self
            .exec(&self.statements.select_user_identities, (user.0,))
            .await?
            .into_rows_result()
            .map_err(unavailable)?;
        let mut listed = Vec::new();
        for row in rows.rows::<(String, String, String)>().map_err(|e| StoreError::Corrupt(e.to_string()))? {
            let (project, provider, subject) = row.map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if let Some(identity) = self.find_identity(&ProjectId(project), &provider, &subject).await?
                && identity.user_id == user
            {
                listed.push(identity);
            }
        }
        listed.sort_by_key(|i: &Identity| i.created_at);
        Ok(listed)
    }

    async fn delete_identity(&self, identity: &Identity) -> StoreResult<bool> {
        let (project, provider, subject) =
            (identity.project.as_str(), identity.provider.as_str(), identity.subject.as_str());
        let user = identity.user_id.0;
        let deleted = self.lwt(&self.statements.delete_identity, (project, provider, subject, user)).await?;
        self.exec(&self.statements.delete_user_identity, (user, project, provider, subject)).await?;
        Ok(deleted)
    }

    async fn put_challenge(&self, id: Uuid, state: Vec<u8>, expires_at: Timestamp) -> StoreResult<()> {
        let ttl = ttl(self.clock.now(), expires_at);
        self.exec(&self.statements.put_ceremony, (id, state, ts(expires_at), ttl)).await.map(|_| ())
    }

    async fn take_challenge(&self, id: Uuid, now: Timestamp) -> StoreResult<Option<Vec<u8>>> {
        let Some((state, expires_at)) =
            self.first::<(Vec<u8>, CqlTimestamp)>(&self.statements.select_ceremony, (id,)).await?
        else {
            return Ok(None);
        };
        if expires_at.0 <= now.0 {
            return Ok(None);
        }
        // Single use across the cluster: the first claim of this ceremony wins.
        let mut claim = b"ceremony ".to_vec();
        claim.extend_from_slice(id.as_bytes());
        let won = self.claim_once(*blake3::hash(&claim).as_bytes(), Timestamp(expires_at.0)).await?;
        Ok(won.then_some(state))
    }

    async fn create_project(&self, project: Project) -> StoreResult<bool> {
        let record = encode(&project)?;
        let values = (project.id.as_str(), record, version(project.version)?);
        self.lwt(&self.statements.create_project, values).await
    }

    async fn find_project(&self, id: &ProjectId) -> StoreResult<Option<Project>> {
        match self.first::<(Vec<u8>,)>(&self.statements.select_project, (id.as_str(),)).await? {
            Some((record,)) => decode(&record).map(Some),
            None => Ok(None),
        }
    }

    async fn list_projects(&self) -> StoreResult<Vec<Project>> {
        let limit = i32::try_from(crate::store::MAX_PROJECTS).unwrap_or(i32::MAX);
        let rows =
            self.exec(&self.statements.select_projects, (limit,)).await?.into_rows_result().map_err(unavailable)?;
        let mut projects = Vec::new();
        for row in rows.rows::<(Vec<u8>,)>().map_err(|e| StoreError::Corrupt(e.to_string()))? {
            let (record,) = row.map_err(|e| StoreError::Corrupt(e.to_string()))?;
            projects.push(decode(&record)?);
        }
        Ok(projects)
    }

    async fn replace_project(&self, project: Project, read_version: u64) -> StoreResult<()> {
        let record = encode(&project)?;
        let values = (record, version(project.version)?, project.id.as_str(), version(read_version)?);
        if self.lwt(&self.statements.replace_project, values).await? {
            return Ok(());
        }
        match self.find_project(&project.id).await? {
            Some(_) => Err(StoreError::Conflict),
            None => Err(StoreError::NotFound),
        }
    }

    async fn count_active_sessions(&self, _now: Timestamp) -> StoreResult<u64> {
        // Counting a table would scan the cluster: the node's own estimate
        // (refreshed every few minutes; sessions expire by TTL) will do.
        let rows = self
            .exec(&self.statements.session_estimate, (self.keyspace.as_str(),))
            .await?
            .into_rows_result()
            .map_err(unavailable)?;
        let mut total: u64 = 0;
        for row in rows.rows::<(Option<i64>,)>().map_err(|e| StoreError::Corrupt(e.to_string()))? {
            let (count,) = row.map_err(|e| StoreError::Corrupt(e.to_string()))?;
            total = total.saturating_add(u64::try_from(count.unwrap_or(0)).unwrap_or(0));
        }
        Ok(total)
    }

    fn counts_sessions_exactly(&self) -> bool {
        false
    }

    async fn count_users(&self, project: &ProjectId) -> StoreResult<u64> {
        let count = self
            .first::<(Option<scylla::value::Counter>,)>(&self.statements.select_accounts, (project.as_str(),))
            .await?;
        Ok(count.and_then(|(c,)| c).map_or(0, |c| u64::try_from(c.0).unwrap_or(0)))
    }

    async fn put_login_tally(&self, tally: LoginTally) -> StoreResult<()> {
        let LoginTally { project, minute, node, counts } = tally;
        let (succeeded, failed) =
            (i64::try_from(counts.succeeded).unwrap_or(i64::MAX), i64::try_from(counts.failed).unwrap_or(i64::MAX));
        let values = (project.as_str(), minute.div_euclid(60), minute, node, succeeded, failed);
        self.exec(&self.statements.put_login_tally, values).await.map(|_| ())
    }

    async fn sum_login_tallies(&self, project: &ProjectId, from: i64, to: i64) -> StoreResult<LoginCounts> {
        let mut sum = LoginCounts::default();
        for hour in from.div_euclid(60)..=to.div_euclid(60) {
            let rows = self
                .exec(&self.statements.select_login_tallies, (project.as_str(), hour, from, to))
                .await?
                .into_rows_result()
                .map_err(unavailable)?;
            for row in rows.rows::<(Option<i64>, Option<i64>)>().map_err(|e| StoreError::Corrupt(e.to_string()))? {
                let (succeeded, failed) = row.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let count = |n: Option<i64>| u64::try_from(n.unwrap_or(0)).unwrap_or(0);
                sum.add(LoginCounts { succeeded: count(succeeded), failed: count(failed) });
            }
        }
        Ok(sum)
    }

    async fn append_feed(&self, event: FeedEvent) -> StoreResult<()> {
        let values =
            (feed_bucket(event.at), ts(event.at), event.id, event.kind.as_str(), event.subject, event.node.as_str());
        self.exec(&self.statements.append_feed, values).await.map(|_| ())
    }

    async fn read_feed(&self, after: Timestamp, now: Timestamp) -> StoreResult<Vec<FeedEvent>> {
        let mut events = Vec::new();
        for bucket in feed_bucket(after)..=feed_bucket(now) {
            let pager = self
                .session
                .execute_iter(self.statements.read_feed.clone(), (bucket, ts(after)))
                .await
                .map_err(unavailable)?;
            let mut rows = pager
                .rows_stream::<(CqlTimestamp, Uuid, String, Uuid, String)>()
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            while let Some((at, id, kind, subject, node)) = rows.try_next().await.map_err(unavailable)? {
                if let Some(kind) = FeedKind::parse(&kind) {
                    events.push(FeedEvent { id, at: Timestamp(at.0), kind, subject, node });
                }
            }
        }
        Ok(events)
    }

    async fn sweep_expired(&self, _now: Timestamp) -> StoreResult<usize> {
        // Expiring rows carry TTLs: the database removes them.
        Ok(0)
    }

    async fn flush(&self) -> StoreResult<()> {
        // Every acknowledged write is already with the replicas.
        Ok(())
    }
}

impl CqlStore {
    async fn key_last_used(&self, id: ApiKeyId) -> StoreResult<Option<Timestamp>> {
        Ok(self
            .first::<(Option<CqlTimestamp>,)>(&self.statements.select_key_used, (id.0,))
            .await?
            .and_then(|(at,)| at)
            .map(|at| Timestamp(at.0)))
    }
}

/// The partitions one project's user list is spread over.
const USER_BUCKETS: i32 = 16;

/// The `users_by_project` partition of a user: its id's last (random) byte.
pub(super) fn user_bucket(id: UserId) -> i32 {
    i32::from(id.0.as_bytes()[15]) % USER_BUCKETS
}

/// A project version as CQL's `bigint`.
fn version(v: u64) -> StoreResult<i64> {
    i64::try_from(v).map_err(|_| StoreError::Corrupt(format!("project version {v}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::clock::{Clock, SystemClock};

    static NEXT: AtomicU32 = AtomicU32::new(0);

    #[test]
    fn only_lightweight_transactions_and_counter_additions_are_left_non_idempotent() {
        assert!(is_conditional("INSERT INTO t (a) VALUES (?) IF NOT EXISTS"));
        assert!(is_conditional("UPDATE t USING TTL ? SET a = ? WHERE k = ? IF a = null AND b = ?"));
        assert!(is_conditional("DELETE FROM t WHERE k = ? IF EXISTS"));
        assert!(!is_conditional("INSERT INTO t (a) VALUES (?) USING TTL ?"));
        assert!(!is_conditional("SELECT record FROM t WHERE k = ?"));
        assert!(!is_conditional("DELETE FROM t WHERE k = ?"));
        assert!(is_counter_update("UPDATE t SET n = n + ? WHERE k = ?"));
        assert!(is_counter_update("UPDATE t SET a = ?, n = n - ? WHERE k = ?"));
        assert!(!is_counter_update("UPDATE t SET n = ? WHERE k = ?"));
        assert!(!is_counter_update("UPDATE t SET record = ?, version = ? WHERE k = ? IF version = ?"));
    }

    /// Drops its keyspace when the test ends.
    struct Keyspace {
        name: String,
        session: Arc<Session>,
    }

    impl Drop for Keyspace {
        fn drop(&mut self) {
            let (session, name) = (Arc::clone(&self.session), self.name.clone());
            // Best effort, off the test's runtime: a leftover keyspace only costs disk.
            std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                    let _ = rt.block_on(session.query_unpaged(format!("DROP KEYSPACE IF EXISTS {name}"), &[]));
                }
            });
        }
    }

    /// A migrated keyspace of its own on the database named by
    /// `CQL_TEST_NODES`; `None` (the test is skipped) when it is not set.
    async fn fresh() -> Option<(Arc<dyn Store>, Keyspace)> {
        let (store, keyspace) = fresh_store().await?;
        Some((Arc::new(store), keyspace))
    }

    async fn fresh_store() -> Option<(CqlStore, Keyspace)> {
        let nodes = std::env::var("CQL_TEST_NODES").ok()?;
        let target = CqlTarget {
            hosts: nodes.split(',').map(str::to_owned).collect(),
            keyspace: format!("contract_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)),
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}".into(),
            keyspace_options: String::new(),
            consistency: Default::default(),
            serial_consistency: Default::default(),
        };
        let session = super::super::connect(&target).await.expect("CQL_TEST_NODES answers");
        super::super::migrate::apply(&session, &target).await.expect("migrations apply");
        let cleanup = Arc::new(super::super::connect(&target).await.expect("second session"));
        let store = CqlStore::open(session, &target, Arc::new(SystemClock)).await.expect("statements prepare");
        Some((store, Keyspace { name: target.keyspace, session: cleanup }))
    }

    crate::contract_tests!(fresh);

    /// What asking a claim again after an unanswered LWT relies on.
    #[tokio::test]
    async fn a_claim_asked_again_is_found_its_users_own() {
        let Some((store, _keyspace)) = fresh_store().await else {
            eprintln!("skipped: CQL_TEST_NODES not set");
            return;
        };
        let (project, now) = (ProjectId::default_project(), SystemClock.now());
        let (ours, theirs) = (UserId::generate(), UserId::generate());
        store.claim_attempt(UniqueField::Email, &project, "twice@x.io", ours, now).await.unwrap();
        // As if the answer to the first had been lost.
        store.claim(UniqueField::Email, &project, "twice@x.io", ours, now).await.unwrap();
        let other = store.claim(UniqueField::Email, &project, "twice@x.io", theirs, now).await;
        assert!(matches!(other, Err(StoreError::AlreadyExists(UniqueField::Email))), "{other:?}");
    }

    #[tokio::test]
    async fn statements_run_at_the_configured_consistency() {
        let Ok(nodes) = std::env::var("CQL_TEST_NODES") else {
            eprintln!("skipped: CQL_TEST_NODES not set");
            return;
        };
        let at = |consistency| CqlTarget {
            hosts: nodes.split(',').map(str::to_owned).collect(),
            keyspace: "system_traces".into(),
            replication: String::new(),
            keyspace_options: String::new(),
            consistency,
            serial_consistency: crate::settings::CqlSerialConsistency::Serial,
        };
        // system_traces has two replicas; the test database has one node (or two).
        let read = "SELECT session_id FROM {ks}.sessions LIMIT 1";
        let session =
            super::super::connect(&at(crate::settings::CqlConsistency::One)).await.expect("CQL_TEST_NODES answers");
        assert_eq!(
            session.get_default_execution_profile_handle().to_profile().get_serial_consistency(),
            Some(scylla::statement::SerialConsistency::Serial)
        );
        let prepared = prepare(&session, "system_traces", read).await.unwrap();
        assert_eq!(prepared.get_consistency(), None, "statements take the session's level");
        session.execute_unpaged(&prepared, ()).await.expect("a read at ONE");
        // THREE cannot be met: the database itself refuses, so the level reached it.
        let session = super::super::connect(&at(crate::settings::CqlConsistency::Three)).await.unwrap();
        let prepared = prepare(&session, "system_traces", read).await.unwrap();
        let refused = session.execute_unpaged(&prepared, ()).await.expect_err("THREE replicas of two");
        assert!(
            refused.to_string().to_lowercase().contains("three") || refused.to_string().contains("Unavailable"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn expired_sessions_and_tokens_vanish_by_ttl() {
        let Some((store, _keyspace)) = fresh().await else {
            eprintln!("skipped: CQL_TEST_NODES not set");
            return;
        };
        let now = SystemClock.now();
        let user = store.create_user(crate::store::contract::user("ttl@x.io", None)).await.unwrap();
        let session = UserSession::begin(&user, None, None, now, now.plus(Duration::from_secs(1)));
        let refresh = RefreshRecord::live(&session, [42; 32], now, session.expires_at);
        store.create_session(session.clone(), refresh).await.unwrap();
        assert!(store.find_session(session.id).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(store.find_session(session.id).await.unwrap().is_none());
        assert!(store.find_refresh_token(&[42; 32]).await.unwrap().is_none());
        assert!(store.list_sessions(user.id, SystemClock.now()).await.unwrap().is_empty());
    }
}
