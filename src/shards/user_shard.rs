//! The user shard: serializes every state change of the users it owns.
//!
//! Invariant: a shard's state (its lockout table) is touched only by its own
//! handler, and a command's store calls finish before the next command
//! starts (`AtomicResponse`).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, ActorFutureExt, AtomicResponse, Context, Handler, Message, WrapFuture};

use super::lockout::{LockKey, Lockout};
use super::{Depth, Reply, ShardError, ShardPolicy};
use crate::account::{
    ApiKey, ApiKeyId, CodePurpose, ProjectId, RefreshRecord, Rotation, Session, SessionId, User, UserId,
};
use crate::clock::{SharedClock, Timestamp};
use crate::store::{RotateOutcome, Store};
use crate::token::refresh::RefreshSecret;

/// Failed-login keys one shard remembers at most.
const LOCKOUT_ENTRIES_PER_SHARD: usize = 100_000;

/// A command for a shard. Each carries the channel its answer goes to.
pub enum Command {
    /// Store a new user. Routed by normalized email, so racing
    /// registrations of one address meet in one shard.
    CreateUser { user: User, reply: Reply<User> },
    /// Answer `Locked` at once if `key` is locked out.
    CheckLock { key: LockKey, reply: Reply<()> },
    /// Count a failed login for `key` (it may lock the key).
    RecordFailure { key: LockKey, reply: Reply<()> },
    /// A login succeeded: clear `key`'s failures, then store the session
    /// and its first refresh token.
    StartSession { key: LockKey, session: Session, refresh: RefreshRecord, reply: Reply<()> },
    /// Exchange a refresh token (see [`RefreshExchange`]).
    RotateRefresh { secret: RefreshSecret, grace: Duration, reply: Reply<RefreshExchange> },
    /// Revoke one session of `user`; `false` if it is not theirs or gone.
    RevokeSession { user: UserId, session: SessionId, reply: Reply<bool> },
    /// Revoke every session of `user` except `keep`.
    RevokeSessions { user: UserId, keep: Option<SessionId>, reply: Reply<Vec<SessionId>> },
    /// Apply `change` to the stored user and write it back.
    UpdateUser { user: UserId, change: UserChange, reply: Reply<User> },
    /// Store a new API key, unless its owner has too many.
    CreateApiKey { key: ApiKey, reply: Reply<()> },
    /// Delete `user`'s key; `None` if they have no such key.
    RevokeApiKey { user: UserId, key: ApiKeyId, reply: Reply<Option<ApiKey>> },
    /// Apply `edit` to the latest stored user and write it back, unless
    /// the edit declines (it checks and changes in one step).
    EditUser { user: UserId, edit: UserEdit, reply: Reply<User> },
    /// Check a one-time email code: counts a wrong try (the fifth kills the
    /// code), consumes a right one. Routed by (project, email).
    ConsumeCode { check: CodeCheck, reply: Reply<bool> },
}

/// A check-and-change of a user record, run inside its shard.
pub type UserEdit = Box<dyn FnOnce(&mut User) -> Result<(), Declined> + Send>;

/// Why a `UserEdit` did not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    /// Two-factor is on already.
    AlreadyEnabled,
    /// There is no pending two-factor setup (or it changed meanwhile).
    NotSetUp,
    /// Two-factor is off.
    NotEnabled,
    /// The account has a password already.
    PasswordAlreadySet,
}

/// A presented one-time code.
#[derive(Debug, Clone)]
pub struct CodeCheck {
    pub project: ProjectId,
    pub purpose: CodePurpose,
    pub subject: String,
    /// The keyed digest of the presented code.
    pub digest: [u8; 32],
    /// Wrong tries after which the code is dead.
    pub max_attempts: u32,
}

/// The most API keys one user may hold.
pub const MAX_API_KEYS_PER_USER: usize = 100;

/// A change to a user record, applied to its latest stored version.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub name: Option<String>,
    /// `Some(None)` clears the username.
    pub username: Option<Option<String>>,
    pub company: Option<Option<String>>,
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

impl Message for Command {
    type Result = ();
}

/// A refresh token exchanged: the session it belongs to and the successor
/// to hand out (new, or the one already minted within the grace window).
pub struct RefreshExchange {
    pub session: Session,
    pub successor: RefreshSecret,
}

pub struct UserShard {
    index: usize,
    store: Arc<dyn Store>,
    clock: SharedClock,
    policy: ShardPolicy,
    lockout: Lockout,
    depth: Arc<Depth>,
}

impl UserShard {
    pub(super) fn new(
        index: usize,
        store: Arc<dyn Store>,
        clock: SharedClock,
        policy: ShardPolicy,
        depth: Arc<Depth>,
    ) -> Self {
        let lockout = Lockout::new(policy.lockout_threshold, policy.lockout_base, LOCKOUT_ENTRIES_PER_SHARD);
        UserShard { index, store, clock, policy, lockout, depth }
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

type Work = Pin<Box<dyn Future<Output = ()>>>;

fn answer<T>(reply: Reply<T>, result: Result<T, ShardError>) -> Work {
    // A caller that timed out dropped its receiver; nothing to tell.
    let _ = reply.send(result);
    Box::pin(std::future::ready(()))
}

impl Handler<Command> for UserShard {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, command: Command, _ctx: &mut Context<Self>) -> Self::Result {
        let guard = DepthGuard(Arc::clone(&self.depth));
        let now = self.clock.now();
        let store = Arc::clone(&self.store);
        let work: Work = match command {
            Command::CheckLock { key, reply } => {
                let result = self.lockout.locked_for(&key, now).map_or(Ok(()), |wait| Err(ShardError::Locked(wait)));
                answer(reply, result)
            }
            Command::RecordFailure { key, reply } => {
                if let Some(lock) = self.lockout.record_failure(key, now) {
                    tracing::warn!(target: "security", event = "login_locked", shard = self.index, seconds = lock.as_secs(), "login locked after repeated failures");
                }
                answer(reply, Ok(()))
            }
            Command::StartSession { key, session, refresh, reply } => {
                self.lockout.record_success(&key);
                Box::pin(async move {
                    let _ = reply.send(store.create_session(session, refresh).await.map_err(ShardError::from));
                })
            }
            Command::CreateUser { user, reply } => Box::pin(async move {
                let _ = reply.send(store.create_user(user).await.map_err(ShardError::from));
            }),
            Command::RotateRefresh { secret, grace, reply } => {
                let refresh_ttl = self.policy.refresh_ttl;
                Box::pin(async move {
                    let _ = reply.send(rotate_refresh(&*store, secret, grace, refresh_ttl, now).await);
                })
            }
            Command::RevokeSession { user, session, reply } => Box::pin(async move {
                let result = async {
                    match store.find_session(session).await? {
                        Some(found) if found.user_id == user => Ok(store.delete_session(session).await?),
                        _ => Ok(false),
                    }
                };
                let _ = reply.send(result.await);
            }),
            Command::RevokeSessions { user, keep, reply } => Box::pin(async move {
                let _ = reply.send(store.delete_user_sessions(user, keep).await.map_err(ShardError::from));
            }),
            Command::UpdateUser { user, change, reply } => Box::pin(async move {
                let _ = reply.send(update_user(&*store, user, change, now).await);
            }),
            Command::CreateApiKey { key, reply } => Box::pin(async move {
                let result = async {
                    if store.list_api_keys(key.user_id).await?.len() >= MAX_API_KEYS_PER_USER {
                        return Err(ShardError::LimitReached("at most 100 API keys per user"));
                    }
                    Ok(store.create_api_key(key).await?)
                };
                let _ = reply.send(result.await);
            }),
            Command::RevokeApiKey { user, key, reply } => Box::pin(async move {
                let _ = reply.send(store.delete_api_key(user, key).await.map_err(ShardError::from));
            }),
            Command::EditUser { user, edit, reply } => Box::pin(async move {
                let _ = reply.send(edit_user(&*store, user, edit, now).await);
            }),
            Command::ConsumeCode { check, reply } => Box::pin(async move {
                let _ = reply.send(consume_code(&*store, check, now).await);
            }),
        };
        AtomicResponse::new(Box::pin(
            async move {
                work.await;
                drop(guard);
            }
            .into_actor(self)
            .map(|(), _, _| ()),
        ))
    }
}

/// The refresh rule of API.md: first use rotates; a repeat within the grace
/// window gets the same successor; a repeat after it revokes the session.
async fn rotate_refresh(
    store: &dyn Store,
    secret: RefreshSecret,
    grace: Duration,
    refresh_ttl: Duration,
    now: Timestamp,
) -> Result<RefreshExchange, ShardError> {
    let digest = secret.digest();
    let record = store.find_refresh_token(&digest).await?.ok_or(ShardError::InvalidRefresh)?;
    if record.expires_at <= now {
        return Err(ShardError::InvalidRefresh);
    }
    let session = store.find_session(record.session_id).await?.ok_or(ShardError::InvalidRefresh)?;
    if session.expires_at <= now {
        return Err(ShardError::InvalidRefresh);
    }
    let rotation = match record.rotated {
        Some(rotation) => rotation,
        None => {
            let successor = RefreshSecret::generate();
            let rotation = Rotation { at: now, sealed_successor: secret.seal(&successor) };
            let successor_record = RefreshRecord::live(&session, successor.digest(), now, now.plus(refresh_ttl));
            let touch = (now, now.plus(refresh_ttl));
            match store.rotate_refresh_token(&digest, rotation, successor_record, touch).await {
                Ok(RotateOutcome::Rotated) => {
                    let session = Session { last_seen_at: touch.0, expires_at: touch.1, ..session };
                    return Ok(RefreshExchange { session, successor });
                }
                // Another node rotated it first: treat as a repeat.
                Ok(RotateOutcome::AlreadyRotated(rotation)) => rotation,
                Err(crate::store::StoreError::NotFound) => return Err(ShardError::InvalidRefresh),
                Err(e) => return Err(e.into()),
            }
        }
    };
    if now.0.saturating_sub(rotation.at.0) <= i64::try_from(grace.as_millis()).unwrap_or(i64::MAX) {
        let successor = secret.unseal(&rotation.sealed_successor).ok_or(ShardError::InvalidRefresh)?;
        return Ok(RefreshExchange { session, successor });
    }
    store.delete_session(session.id).await?;
    Err(ShardError::RefreshReused(session.id))
}

async fn update_user(store: &dyn Store, id: UserId, change: UserChange, now: Timestamp) -> Result<User, ShardError> {
    let mut user = store.find_user(id).await?.ok_or(crate::store::StoreError::NotFound)?;
    if let Some(name) = change.name {
        user.name = name;
    }
    if let Some(username) = change.username {
        user.username = username;
    }
    if let Some(company) = change.company {
        user.company = company;
    }
    if let Some(hash) = change.password_hash {
        user.password_hash = Some(hash);
    }
    if let Some(disabled) = change.disabled {
        user.disabled = disabled;
    }
    user.updated_at = now;
    Ok(store.update_user(user).await?)
}

async fn edit_user(store: &dyn Store, id: UserId, edit: UserEdit, now: Timestamp) -> Result<User, ShardError> {
    let mut user = store.find_user(id).await?.ok_or(crate::store::StoreError::NotFound)?;
    edit(&mut user).map_err(ShardError::Declined)?;
    user.updated_at = now;
    Ok(store.update_user(user).await?)
}

/// The one-time code rule: live, not dead, matching; single use cluster-wide.
async fn consume_code(store: &dyn Store, check: CodeCheck, now: Timestamp) -> Result<bool, ShardError> {
    let CodeCheck { project, purpose, subject, digest, max_attempts } = check;
    let Some(mut code) = store.find_code(&project, purpose, &subject).await? else {
        return Ok(false);
    };
    if code.expires_at <= now {
        store.delete_code(&project, purpose, &subject).await?;
        return Ok(false);
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(code.digest.as_slice(), digest.as_slice())) {
        code.attempts += 1;
        if code.attempts >= max_attempts {
            store.delete_code(&project, purpose, &subject).await?;
        } else {
            store.put_code(code).await?;
        }
        return Ok(false);
    }
    // Another node may be consuming the same code right now: one wins.
    let won = store.claim_once(code.digest, code.expires_at).await?;
    store.delete_code(&project, purpose, &subject).await?;
    Ok(won)
}
