//! API keys: creating one within the per-user bound, revoking one.

use crate::account::{ApiKey, ApiKeyId, UserId};
use crate::clock::Timestamp;

use super::{ShardCommand, ShardError, UserShard, Work};

/// The most API keys one user may hold.
pub const MAX_API_KEYS_PER_USER: usize = 100;

/// Store a new API key, unless its owner holds [`MAX_API_KEYS_PER_USER`]
/// already. Routed by the owner, so two creations cannot both pass the count.
pub struct CreateApiKey {
    pub key: ApiKey,
}

impl ShardCommand for CreateApiKey {
    type Output = ();

    fn run(self, shard: &mut UserShard, _now: Timestamp) -> Work<()> {
        let store = shard.store.clone();
        Box::pin(async move {
            if store.list_api_keys(self.key.user_id).await?.len() >= MAX_API_KEYS_PER_USER {
                return Err(ShardError::LimitReached("at most 100 API keys per user"));
            }
            Ok(store.create_api_key(self.key).await?)
        })
    }
}

/// Delete every key of `user` (account recovery); answers their ids.
pub struct RevokeApiKeys {
    pub user: UserId,
}

impl ShardCommand for RevokeApiKeys {
    type Output = Vec<ApiKeyId>;

    fn run(self, shard: &mut UserShard, _now: Timestamp) -> Work<Vec<ApiKeyId>> {
        let store = shard.store.clone();
        Box::pin(async move {
            let mut revoked = Vec::new();
            for key in store.list_api_keys(self.user).await? {
                if store.delete_api_key(self.user, key.id).await?.is_some() {
                    revoked.push(key.id);
                }
            }
            Ok(revoked)
        })
    }
}

/// Delete `user`'s key; `None` if they have no such key.
pub struct RevokeApiKey {
    pub user: UserId,
    pub key: ApiKeyId,
}

impl ShardCommand for RevokeApiKey {
    type Output = Option<ApiKey>;

    fn run(self, shard: &mut UserShard, _now: Timestamp) -> Work<Option<ApiKey>> {
        let store = shard.store.clone();
        Box::pin(async move { Ok(store.delete_api_key(self.user, self.key).await?) })
    }
}
