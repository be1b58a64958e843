//! Sign-in with an OpenID Connect provider's ID token (Google, or any
//! provider a project configures): the providers of a project's settings
//! (`provider`), their key sets (`jwks`), and verifying a token
//! (`id_token`). Knows nothing of accounts: `auth/oidc.rs` decides which
//! account a verified identity signs in.
//!
//! Never: trusts a token's `alg` header, takes a key it did not fetch from
//! the provider's configured URL, or waits on a provider without a bound.

pub mod id_token;
pub mod jwks;
pub mod provider;

use std::time::Duration;

pub use id_token::{Refused, VerifiedIdentity};
pub use jwks::{JwksCache, JwksError};
pub use provider::Provider;

use crate::clock::SharedClock;

/// Why an ID token did not sign anyone in.
#[derive(Debug, thiserror::Error)]
pub enum OidcError {
    #[error("ID token refused: {0}")]
    Refused(#[from] Refused),
    /// The provider's keys cannot be fetched now.
    #[error("the provider's keys cannot be fetched")]
    Unavailable,
}

/// Verifies ID tokens against their providers' key sets.
pub struct Verifier {
    keys: JwksCache,
    clock: SharedClock,
}

impl Verifier {
    /// A verifier whose key fetches give up after `timeout`.
    pub fn new(timeout: Duration, clock: SharedClock) -> anyhow::Result<Self> {
        Ok(Verifier { keys: JwksCache::new(timeout, clock.clone())?, clock })
    }

    /// The key sets (how many fetches were made).
    pub fn keys(&self) -> &JwksCache {
        &self.keys
    }

    /// `token`'s identity at `provider`, if it verifies.
    pub async fn verify(
        &self,
        provider: &Provider,
        token: &str,
        nonce: Option<&str>,
    ) -> Result<VerifiedIdentity, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| Refused(format!("header: {e}")))?;
        let key = match self.keys.key(&provider.jwks_url, header.kid.as_deref()).await {
            Ok(key) => key,
            Err(JwksError::UnknownKey) => return Err(Refused("no key of the provider has this kid".into()).into()),
            Err(JwksError::Unavailable) => return Err(OidcError::Unavailable),
        };
        Ok(id_token::verify(token, &header, &key, provider, self.clock.now(), nonce)?)
    }
}
