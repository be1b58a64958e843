//! API keys: create (shown once), list, revoke. Only admins may grant the
//! `introspect` scope; a revoked key stops working at once on every node.

use zeroize::Zeroizing;

use crate::account::{ApiKey, ApiKeyId, Role, UserId};
use crate::clock::Timestamp;
use crate::shards::{CreateApiKey, RevokeApiKey, RevokeApiKeys};
use crate::token::{INTROSPECT_SCOPE, api_key};

use super::audit::kind;
use super::{AuthError, AuthService, ClientInfo, SessionCaller};

/// A validated request for a new key.
#[derive(Debug)]
pub struct NewApiKey {
    pub name: String,
    pub scopes: Vec<String>,
    /// `None`: never expires.
    pub expires_at: Option<Timestamp>,
}

/// A key just made: its record and the secret, which is never shown again.
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub secret: Zeroizing<String>,
}

impl AuthService {
    pub async fn create_api_key(
        &self,
        caller: SessionCaller,
        new: NewApiKey,
        client: ClientInfo,
    ) -> Result<CreatedApiKey, AuthError> {
        // The role as stored now, not as the token remembers it.
        let owner = self.me(caller.user_id).await?;
        if new.scopes.iter().any(|s| s == INTROSPECT_SCOPE) && !matches!(owner.role, Role::Admin | Role::Superadmin) {
            return Err(AuthError::Forbidden);
        }
        let minted = api_key::generate();
        let key = ApiKey {
            id: ApiKeyId::generate(),
            project: owner.project.clone(),
            user_id: owner.id,
            name: new.name,
            prefix: minted.prefix,
            digest: self.key_hasher.digest(&minted.secret),
            scopes: new.scopes,
            created_at: self.clock.now(),
            expires_at: new.expires_at,
            last_used_at: None,
        };
        self.shards.ask(&owner.id, CreateApiKey { key: key.clone() }).await?;
        tracing::info!(target: "security", event = "api_key_created", user_id = %owner.id, key_id = %key.id, "API key created");
        let mut detail = format!("key={}", key.id);
        if !key.scopes.is_empty() {
            detail.push_str(&format!(" scopes={}", key.scopes.join(",")));
        }
        self.audit(kind::API_KEY_CREATED, &owner.project, Some(owner.id), &client, Some(&detail)).await;
        Ok(CreatedApiKey { key, secret: minted.secret })
    }

    /// The user's keys (revoked keys are gone), oldest first.
    pub async fn list_api_keys(&self, user: UserId) -> Result<Vec<ApiKey>, AuthError> {
        Ok(self.store.list_api_keys(user).await?)
    }

    /// Revokes every key of `user`, at once on every node; returns how many.
    pub async fn revoke_api_keys(&self, user: UserId) -> Result<usize, AuthError> {
        let revoked = self.shards.ask(&user, RevokeApiKeys { user }).await?;
        for key in &revoked {
            self.feed.revoke_api_key(*key).await;
        }
        Ok(revoked.len())
    }

    /// Revokes one of the caller's keys; it stops working at once.
    pub async fn revoke_api_key(
        &self,
        caller: &SessionCaller,
        key: ApiKeyId,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        let user = caller.user_id;
        if self.shards.ask(&user, RevokeApiKey { user, key }).await?.is_none() {
            return Err(AuthError::NotFound);
        }
        self.feed.revoke_api_key(key).await;
        tracing::info!(target: "security", event = "api_key_revoked", user_id = %user, key_id = %key, "API key revoked");
        let detail = format!("key={key}");
        self.audit(kind::API_KEY_REVOKED, &caller.project, Some(user), &client, Some(&detail)).await;
        Ok(())
    }
}
