//! Refresh-token rotation, the rule of API.md: the first use of a refresh
//! token rotates it; a repeat within the grace window gets the same
//! successor; a repeat after it revokes the whole session.
//!
//! Within a node the shard serializes a user's exchanges; across nodes the
//! store's conditional write (`rotate_refresh_token`) lets one rotation win.

use std::time::Duration;

use crate::account::{RefreshRecord, Rotation, Session};
use crate::clock::Timestamp;
use crate::store::{RotateOutcome, Store, StoreError};
use crate::token::refresh::RefreshSecret;

use super::{ShardCommand, ShardError, UserShard, Work};

/// Exchange a refresh token for its successor. Routed by the token's user.
pub struct RotateRefresh {
    pub secret: RefreshSecret,
    /// How long after a rotation a repeat still gets the same successor.
    pub grace: Duration,
    /// How long the successor (and the session) lives: its project's `refresh_ttl`.
    pub refresh_ttl: Duration,
}

/// A refresh token exchanged: the session it belongs to and the successor
/// to hand out (new, or the one already minted within the grace window).
pub struct RefreshExchange {
    pub session: Session,
    pub successor: RefreshSecret,
}

impl ShardCommand for RotateRefresh {
    type Output = RefreshExchange;

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<RefreshExchange> {
        let store = shard.store.clone();
        Box::pin(async move { rotate(&*store, self.secret, self.grace, self.refresh_ttl, now).await })
    }
}

async fn rotate(
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
                Err(StoreError::NotFound) => return Err(ShardError::InvalidRefresh),
                Err(e) => return Err(e.into()),
            }
        }
    };
    // Within the window: strictly less than `grace` after the rotation (a
    // grace of 0 is no window at all).
    if now.0.saturating_sub(rotation.at.0) < i64::try_from(grace.as_millis()).unwrap_or(i64::MAX) {
        let successor = secret.unseal(&rotation.sealed_successor).ok_or(ShardError::InvalidRefresh)?;
        return Ok(RefreshExchange { session, successor });
    }
    store.delete_session(session.id).await?;
    Err(ShardError::RefreshReused(session.id))
}
