//! The embedded store's sweep: forgetting what has expired without ever
//! holding the writer for long. Each table is walked in key order,
//! `SWEEP_BATCH` entries per short read; what a read finds expired is
//! deleted in one write job of its own, so other writes get in between.
//! A write checks each record again before deleting it: a code issued
//! afresh after the read is kept.

use std::ops::Bound;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};

use super::{
    AUDIT, AUDIT_BY_USER, AUDIT_EXPIRY, CHALLENGES, CODES, EmbeddedStore, REFRESH_TOKENS, SESSION_REFRESH, SESSIONS,
    USED_ONCE, audit_user_key, delete_session_in, pair_key,
};
use crate::account::{AuditEvent, OneTimeCode, RefreshRecord, Session, SessionId};
use crate::clock::Timestamp;
use crate::store::{StoreResult, decode, unavailable};

/// Records the sweep looks at per read, and so deletes at most per write.
pub(super) const SWEEP_BATCH: usize = 1000;

/// What one batch's read found expired, and the key to go on after.
type Batch<T, C> = StoreResult<(Vec<T>, Option<C>)>;

/// One batch: what `pick` finds expired among the first `SWEEP_BATCH`
/// `entries`, and the key to go on after (`None`: the table is done).
fn batch<E, T, C>(
    entries: impl Iterator<Item = Result<E, redb::StorageError>>,
    mut pick: impl FnMut(E) -> StoreResult<(Option<T>, C)>,
) -> Batch<T, C> {
    let (mut expired, mut last, mut seen) = (Vec::new(), None, 0);
    for entry in entries.take(SWEEP_BATCH) {
        let (item, key) = pick(entry.map_err(unavailable)?)?;
        expired.extend(item);
        last = Some(key);
        seen += 1;
    }
    Ok((expired, last.filter(|_| seen == SWEEP_BATCH)))
}

fn after<K>(cursor: Option<K>) -> (Bound<K>, Bound<K>) {
    (cursor.map_or(Bound::Unbounded, Bound::Excluded), Bound::Unbounded)
}

/// A read of one batch of a table: its cursor in, the expired and the next cursor out.
type Finder<T, C> = fn(&ReadTransaction, Option<&C>, Timestamp) -> Batch<T, C>;
/// The write of one batch: how many of `expired` it deleted.
type Deleter<T> = fn(&WriteTransaction, Vec<T>, Timestamp) -> StoreResult<usize>;

fn expired_sessions(txn: &ReadTransaction, cursor: Option<&u128>, now: Timestamp) -> Batch<u128, u128> {
    let sessions = txn.open_table(SESSIONS).map_err(unavailable)?;
    batch(sessions.range::<u128>(after(cursor.copied())).map_err(unavailable)?, |(key, bytes)| {
        let session: Session = decode(bytes.value())?;
        Ok(((session.expires_at <= now).then_some(key.value()), key.value()))
    })
}

fn delete_sessions(txn: &WriteTransaction, expired: Vec<u128>, now: Timestamp) -> StoreResult<usize> {
    let mut gone = 0;
    for id in expired {
        let still_expired = {
            let sessions = txn.open_table(SESSIONS).map_err(unavailable)?;
            let stored = sessions.get(id).map_err(unavailable)?;
            stored.map(|bytes| decode::<Session>(bytes.value())).transpose()?.is_some_and(|s| s.expires_at <= now)
        };
        if still_expired {
            gone += usize::from(delete_session_in(txn, SessionId(uuid::Uuid::from_u128(id)))?);
        }
    }
    Ok(gone)
}

/// Refresh tokens keep the expiry they were made with; the sweep deletes
/// each with its entry in the session index.
fn expired_refresh_tokens(
    txn: &ReadTransaction,
    cursor: Option<&Vec<u8>>,
    now: Timestamp,
) -> Batch<(u128, Vec<u8>), Vec<u8>> {
    let tokens = txn.open_table(REFRESH_TOKENS).map_err(unavailable)?;
    batch(tokens.range::<&[u8]>(after(cursor.map(Vec::as_slice))).map_err(unavailable)?, |(key, bytes)| {
        let record: RefreshRecord = decode(bytes.value())?;
        let expired = (record.expires_at <= now).then(|| (record.session_id.as_u128(), record.digest.to_vec()));
        Ok((expired, key.value().to_vec()))
    })
}

fn delete_refresh_tokens(txn: &WriteTransaction, expired: Vec<(u128, Vec<u8>)>, _now: Timestamp) -> StoreResult<usize> {
    let mut tokens = txn.open_table(REFRESH_TOKENS).map_err(unavailable)?;
    let mut index = txn.open_table(SESSION_REFRESH).map_err(unavailable)?;
    let mut gone = 0;
    for (session, digest) in expired {
        gone += usize::from(tokens.remove(digest.as_slice()).map_err(unavailable)?.is_some());
        index.remove(pair_key(session, &digest).as_slice()).map_err(unavailable)?;
    }
    Ok(gone)
}

/// A claim is never made again while it is stored, so what expired stays expired.
fn expired_claims(txn: &ReadTransaction, cursor: Option<&Vec<u8>>, now: Timestamp) -> Batch<Vec<u8>, Vec<u8>> {
    let claims = txn.open_table(USED_ONCE).map_err(unavailable)?;
    batch(claims.range::<&[u8]>(after(cursor.map(Vec::as_slice))).map_err(unavailable)?, |(key, expires_at)| {
        let key = key.value().to_vec();
        Ok(((expires_at.value() <= now.0).then(|| key.clone()), key))
    })
}

fn delete_claims(txn: &WriteTransaction, expired: Vec<Vec<u8>>, _now: Timestamp) -> StoreResult<usize> {
    let mut claims = txn.open_table(USED_ONCE).map_err(unavailable)?;
    let mut gone = 0;
    for key in expired {
        gone += usize::from(claims.remove(key.as_slice()).map_err(unavailable)?.is_some());
    }
    Ok(gone)
}

fn expired_codes(txn: &ReadTransaction, cursor: Option<&String>, now: Timestamp) -> Batch<String, String> {
    let codes = txn.open_table(CODES).map_err(unavailable)?;
    batch(codes.range::<&str>(after(cursor.map(String::as_str))).map_err(unavailable)?, |(key, bytes)| {
        let key = key.value().to_owned();
        let expired = decode::<OneTimeCode>(bytes.value())?.expires_at <= now;
        Ok((expired.then(|| key.clone()), key))
    })
}

/// A code may have been issued afresh under the same key since the read:
/// only one still expired is deleted.
fn delete_codes(txn: &WriteTransaction, expired: Vec<String>, now: Timestamp) -> StoreResult<usize> {
    let mut codes = txn.open_table(CODES).map_err(unavailable)?;
    let mut gone = 0;
    for key in expired {
        let still_expired = {
            let stored = codes.get(key.as_str()).map_err(unavailable)?;
            stored.map(|bytes| decode::<OneTimeCode>(bytes.value())).transpose()?.is_some_and(|c| c.expires_at <= now)
        };
        if still_expired {
            codes.remove(key.as_str()).map_err(unavailable)?;
            gone += 1;
        }
    }
    Ok(gone)
}

/// The expiry of a kept ceremony state (its first 8 bytes).
fn challenge_expiry(value: &[u8]) -> i64 {
    value.get(..8).and_then(|b| b.try_into().ok()).map_or(i64::MIN, i64::from_be_bytes)
}

/// Ceremony states never taken, past their expiry.
fn expired_challenges(txn: &ReadTransaction, cursor: Option<&u128>, now: Timestamp) -> Batch<u128, u128> {
    let challenges = txn.open_table(CHALLENGES).map_err(unavailable)?;
    batch(challenges.range::<u128>(after(cursor.copied())).map_err(unavailable)?, |(key, value)| {
        Ok(((challenge_expiry(value.value()) <= now.0).then_some(key.value()), key.value()))
    })
}

fn delete_challenges(txn: &WriteTransaction, expired: Vec<u128>, _now: Timestamp) -> StoreResult<usize> {
    let mut challenges = txn.open_table(CHALLENGES).map_err(unavailable)?;
    let mut gone = 0;
    for id in expired {
        // Ids are fresh per ceremony: one found expired stays expired.
        gone += usize::from(challenges.remove(id).map_err(unavailable)?.is_some());
    }
    Ok(gone)
}

/// The expiry index is in `keep_until` order: a batch is a range below `now`.
fn due_audit_events(txn: &ReadTransaction, cursor: Option<&Vec<u8>>, now: Timestamp) -> Batch<Vec<u8>, Vec<u8>> {
    let expiry = txn.open_table(AUDIT_EXPIRY).map_err(unavailable)?;
    let bound = now.0.to_be_bytes();
    let start = cursor.map_or(Bound::Unbounded, |key| Bound::Excluded(key.as_slice()));
    batch(expiry.range::<&[u8]>((start, Bound::Excluded(bound.as_slice()))).map_err(unavailable)?, |(key, _)| {
        let key = key.value().to_vec();
        Ok((Some(key.clone()), key))
    })
}

fn delete_audit_events(txn: &WriteTransaction, due: Vec<Vec<u8>>, _now: Timestamp) -> StoreResult<usize> {
    let mut expiry = txn.open_table(AUDIT_EXPIRY).map_err(unavailable)?;
    let mut audit = txn.open_table(AUDIT).map_err(unavailable)?;
    let mut by_user = txn.open_table(AUDIT_BY_USER).map_err(unavailable)?;
    for key in &due {
        expiry.remove(key.as_slice()).map_err(unavailable)?;
        // The index key is `keep_until` (8 bytes) ++ the audit key.
        let Some(audit_key) = key.get(8..) else { continue };
        let removed = audit.remove(audit_key).map_err(unavailable)?;
        if let Some(event) = removed.map(|bytes| decode::<AuditEvent>(bytes.value())).transpose()?
            && let Some(user) = event.user_id
        {
            by_user.remove(audit_user_key(&event.project, user, event.id).as_slice()).map_err(unavailable)?;
        }
    }
    Ok(due.len())
}

impl EmbeddedStore {
    /// Sweeps every table that expires, in bounded batches.
    pub(super) async fn sweep(&self, now: Timestamp) -> StoreResult<usize> {
        let sessions =
            self.sweep_table(expired_sessions, delete_sessions, now, |gone| self.sessions_gone(gone)).await?;
        let tokens = self.sweep_table(expired_refresh_tokens, delete_refresh_tokens, now, |_| ()).await?;
        let claims = self.sweep_table(expired_claims, delete_claims, now, |_| ()).await?;
        let codes = self.sweep_table(expired_codes, delete_codes, now, |_| ()).await?;
        let audit = self.sweep_table(due_audit_events, delete_audit_events, now, |_| ()).await?;
        let ceremonies = self.sweep_table(expired_challenges, delete_challenges, now, |_| ()).await?;
        Ok(sessions + tokens + claims + codes + audit + ceremonies)
    }

    /// Walks one table: a short read per batch, then a write job deleting
    /// what it found; `deleted` hears each batch's count as it commits.
    async fn sweep_table<T, C>(
        &self,
        find: Finder<T, C>,
        delete: Deleter<T>,
        now: Timestamp,
        deleted: impl Fn(usize),
    ) -> StoreResult<usize>
    where
        T: Send + 'static,
    {
        let (mut removed, mut cursor) = (0, None);
        loop {
            let (expired, next) = self.read(|txn| find(txn, cursor.as_ref(), now))?;
            if !expired.is_empty() {
                let gone = self.write(move |txn| delete(txn, expired, now)).await?;
                deleted(gone);
                removed += gone;
            }
            match next {
                Some(key) => cursor = Some(key),
                None => return Ok(removed),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::{Duration, Instant};

    use super::super::*;
    use super::*;
    use crate::account::{RefreshRecord, Session};

    /// 200,000 in a release build (the test command runs this test so);
    /// a debug build, 20 times slower here, checks the same with fewer.
    const SESSIONS_STORED: usize = if cfg!(debug_assertions) { 20_000 } else { 200_000 };

    /// `SESSIONS_STORED` sessions, every other one expired at `now`, each with a refresh token.
    async fn loaded(now: Timestamp) -> (Arc<EmbeddedStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let user = crate::store::contract::user("many@x.io", None);
        for chunk in 0..SESSIONS_STORED / 5_000 {
            let user = user.clone();
            store
                .write(move |txn| {
                    for i in 0..5_000 {
                        let expires_at = if (chunk * 5_000 + i) % 2 == 0 {
                            Timestamp(now.0 - 1)
                        } else {
                            now.plus(Duration::from_secs(3600))
                        };
                        let session = Session::begin(&user, None, None, Timestamp(0), expires_at);
                        let digest = *blake3::hash(&session.id.as_u128().to_be_bytes()).as_bytes();
                        let refresh = RefreshRecord::live(&session, digest, Timestamp(0), expires_at);
                        txn.open_table(SESSIONS)
                            .map_err(unavailable)?
                            .insert(session.id.as_u128(), encode(&session)?.as_slice())
                            .map_err(unavailable)?;
                        let pair = pair_key(session.user_id.as_u128(), &session.id.as_u128().to_be_bytes());
                        txn.open_table(USER_SESSIONS)
                            .map_err(unavailable)?
                            .insert(pair.as_slice(), ())
                            .map_err(unavailable)?;
                        insert_refresh_in(txn, &refresh)?;
                    }
                    Ok(())
                })
                .await
                .unwrap();
        }
        store.sessions.store(SESSIONS_STORED as i64, Ordering::Relaxed);
        (store, dir)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_answer_while_a_sweep_of_many_sessions_runs() {
        let now = Timestamp::from_secs(1_000_000);
        let (store, _dir) = loaded(now).await;
        let sweeper = Arc::clone(&store);
        let started = Instant::now();
        let sweeping = tokio::spawn(async move { sweeper.sweep_expired(now).await });
        let (mut writes, mut slowest) = (0u32, Duration::ZERO);
        while !sweeping.is_finished() && writes < 100_000 {
            let code = crate::store::contract::code(CodePurpose::Login, &format!("w{writes}@x.io"), [1; 32], now);
            let began = Instant::now();
            store.put_code(code).await.unwrap();
            slowest = slowest.max(began.elapsed());
            writes += 1;
        }
        let removed = sweeping.await.unwrap().unwrap();
        let took = started.elapsed();
        eprintln!("sweep of {SESSIONS_STORED} sessions: {took:?}; {writes} writes meanwhile, the slowest {slowest:?}");
        // The expired half, their refresh tokens going with them.
        assert_eq!(removed, SESSIONS_STORED / 2);
        assert!(writes > 1, "no write got in while the sweep ran ({took:?})");
        // The budget of a write here: well under the request deadline, whatever the sweep's size.
        assert!(slowest < Duration::from_secs(1), "a write waited {slowest:?} behind the sweep");
        assert_eq!(store.count_active_sessions(now).await.unwrap(), (SESSIONS_STORED / 2) as u64);
    }

    /// More claims, codes and audit events than one batch holds, every
    /// other one expired: all the expired ones go, none of the others.
    #[tokio::test]
    async fn claims_codes_and_audit_events_are_swept_across_batches() {
        const EACH: usize = SWEEP_BATCH * 2 + 500;
        let now = Timestamp::from_secs(1_000_000);
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let expiry =
            |i: usize| if i.is_multiple_of(2) { Timestamp(now.0 - 1) } else { now.plus(Duration::from_secs(60)) };
        for i in 0..EACH {
            assert!(store.claim_once(*blake3::hash(&i.to_be_bytes()).as_bytes(), expiry(i)).await.unwrap());
            let code = crate::store::contract::code(CodePurpose::Login, &format!("c{i}@x.io"), [1; 32], now);
            store.put_code(OneTimeCode { expires_at: expiry(i), ..code }).await.unwrap();
            store.append_audit(audit_event(expiry(i))).await.unwrap();
        }
        assert_eq!(store.sweep_expired(now).await.unwrap(), 3 * EACH.div_ceil(2));
        for i in 0..EACH {
            let later = now.plus(Duration::from_secs(60));
            let claimed_again = store.claim_once(*blake3::hash(&i.to_be_bytes()).as_bytes(), later).await.unwrap();
            assert_eq!(claimed_again, i.is_multiple_of(2), "claim {i}");
            let kept = store.find_code(&ProjectId::default_project(), CodePurpose::Login, &format!("c{i}@x.io")).await;
            assert_eq!(kept.unwrap().is_some(), i % 2 == 1, "code {i}");
        }
        let audit = store.list_audit(&ProjectId::default_project(), EACH).await.unwrap();
        assert_eq!(audit.len(), EACH / 2);
        assert!(audit.iter().all(|event| event.keep_until > now));
        assert_eq!(store.sweep_expired(now).await.unwrap(), 0, "nothing left to sweep");
    }

    /// A code found expired by a batch's read and issued afresh before its
    /// write is kept: the write looks again.
    #[tokio::test]
    async fn a_code_issued_afresh_after_the_read_is_kept() {
        let now = Timestamp::from_secs(1_000_000);
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let old = crate::store::contract::code(CodePurpose::Reset, "a@x.io", [1; 32], Timestamp(now.0 - 700_000));
        store.put_code(old).await.unwrap();
        let (expired, _) = store.read(|txn| expired_codes(txn, None, now)).unwrap();
        assert_eq!(expired.len(), 1);
        let fresh = crate::store::contract::code(CodePurpose::Reset, "a@x.io", [2; 32], now);
        store.put_code(fresh.clone()).await.unwrap();
        assert_eq!(store.write(move |txn| delete_codes(txn, expired, now)).await.unwrap(), 0);
        let kept = store.find_code(&ProjectId::default_project(), CodePurpose::Reset, "a@x.io").await.unwrap();
        assert_eq!(kept, Some(fresh));
    }

    fn audit_event(keep_until: Timestamp) -> AuditEvent {
        AuditEvent {
            id: uuid::Uuid::now_v7(),
            at: Timestamp(0),
            project: ProjectId::default_project(),
            user_id: None,
            kind: "login_failed".into(),
            ip: None,
            user_agent: None,
            detail: None,
            count: 1,
            keep_until,
        }
    }
}
