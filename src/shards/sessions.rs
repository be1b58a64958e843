//! Sessions: starting one after a successful sign-in (which also clears the
//! account's failed-login record) and revoking one or all of a user's.

use crate::account::{RefreshRecord, Session, SessionId, UserId};
use crate::clock::Timestamp;

use super::lockout::LockKey;
use super::{ShardCommand, UserShard, Work};

/// A sign-in succeeded: clear `key`'s failures, then store the session and
/// its first refresh token. Routed by the user id.
pub struct StartSession {
    pub key: LockKey,
    pub session: Session,
    pub refresh: RefreshRecord,
}

impl ShardCommand for StartSession {
    type Output = ();

    fn run(self, shard: &mut UserShard, _now: Timestamp) -> Work<()> {
        shard.lockout.record_success(&self.key);
        let store = shard.store.clone();
        Box::pin(async move { Ok(store.create_session(self.session, self.refresh).await?) })
    }
}

/// Revoke one session of `user`; `false` if it is not theirs or gone.
pub struct RevokeSession {
    pub user: UserId,
    pub session: SessionId,
}

impl ShardCommand for RevokeSession {
    type Output = bool;

    fn run(self, shard: &mut UserShard, _now: Timestamp) -> Work<bool> {
        let store = shard.store.clone();
        Box::pin(async move {
            match store.find_session(self.session).await? {
                Some(found) if found.user_id == self.user => Ok(store.delete_session(self.session).await?),
                _ => Ok(false),
            }
        })
    }
}

/// Revoke every session of `user` except `keep`; answers the revoked ids.
pub struct RevokeSessions {
    pub user: UserId,
    pub keep: Option<SessionId>,
}

impl ShardCommand for RevokeSessions {
    type Output = Vec<SessionId>;

    fn run(self, shard: &mut UserShard, _now: Timestamp) -> Work<Vec<SessionId>> {
        let store = shard.store.clone();
        Box::pin(async move { Ok(store.delete_user_sessions(self.user, self.keep).await?) })
    }
}
