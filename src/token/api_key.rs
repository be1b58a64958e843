//! API keys: `pk_live_<random>` secrets, their keyed digest at rest, and the
//! batched record of when each key was last used.
//!
//! A key carries 256 bits of randomness. Only a keyed BLAKE3 digest is
//! stored; the hashing key lives in `<data dir>/api-key-hash.key` (0600), so
//! a copy of the database alone cannot even confirm a guessed key.
//! `last_used_at` is never written on the request path: checks note the use
//! in memory (at most once a second per key) and a background task writes
//! the batch.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use dashmap::DashMap;
use zeroize::Zeroizing;

use super::{b64url, random_bytes, read_or_create_secret};
use crate::account::ApiKeyId;
use crate::clock::Timestamp;
use crate::store::{Store, StoreResult};

pub const API_KEY_PREFIX: &str = "pk_live_";
/// The scope that lets a key call `/introspect`; only admins may grant it.
pub const INTROSPECT_SCOPE: &str = "introspect";
/// Characters of a key shown in lists: the prefix and four of the secret.
const SHOWN_CHARS: usize = API_KEY_PREFIX.len() + 4;
/// `pk_live_` and 43 base64url characters (32 bytes).
const KEY_CHARS: usize = API_KEY_PREFIX.len() + 43;

/// Whether `presented` has the shape of one of our API keys.
pub fn is_api_key(presented: &str) -> bool {
    presented.len() == KEY_CHARS && presented.starts_with(API_KEY_PREFIX)
}

/// A freshly minted key: the secret (shown once) and its list prefix.
pub struct NewKeySecret {
    pub secret: Zeroizing<String>,
    pub prefix: String,
}

pub fn generate() -> NewKeySecret {
    let secret = Zeroizing::new(format!("{API_KEY_PREFIX}{}", b64url(&random_bytes::<32>())));
    let prefix = secret[..SHOWN_CHARS].to_owned();
    NewKeySecret { secret, prefix }
}

/// Digests keys with the installation's secret hashing key.
#[derive(Clone)]
pub struct ApiKeyHasher {
    key: Zeroizing<[u8; 32]>,
}

impl ApiKeyHasher {
    /// Loads `<data dir>/api-key-hash.key`, creating it on first start.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let path: PathBuf = data_dir.join("api-key-hash.key");
        Ok(ApiKeyHasher { key: read_or_create_secret(&path)? })
    }

    pub fn digest(&self, presented: &str) -> [u8; 32] {
        *blake3::keyed_hash(&self.key, presented.as_bytes()).as_bytes()
    }
}

/// Key uses noted in memory until the next batch write.
#[derive(Default)]
pub struct KeyUsage {
    pending: DashMap<ApiKeyId, Timestamp>,
}

impl KeyUsage {
    pub fn note(&self, key: ApiKeyId, at: Timestamp) {
        self.pending.insert(key, at);
    }

    /// Writes every noted use in one batch. If the write fails, the batch
    /// is noted again (unless a newer use was noted meanwhile) for the next try.
    pub async fn flush(&self, store: &Arc<dyn Store>) -> StoreResult<usize> {
        let ids: Vec<ApiKeyId> = self.pending.iter().map(|e| *e.key()).collect();
        let batch: Vec<(ApiKeyId, Timestamp)> = ids.into_iter().filter_map(|id| self.pending.remove(&id)).collect();
        let count = batch.len();
        if count == 0 {
            return Ok(0);
        }
        if let Err(e) = store.touch_api_keys(batch.clone()).await {
            for (id, at) in batch {
                self.pending.entry(id).or_insert(at);
            }
            return Err(e);
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_256_random_bits_and_a_short_prefix() {
        let key = generate();
        assert!(is_api_key(&key.secret));
        assert_eq!(key.prefix.len(), 12);
        assert!(key.secret.starts_with(&key.prefix));
        assert_ne!(generate().secret, key.secret);
        assert!(!is_api_key("pk_live_short"));
        assert!(!is_api_key("eyJhbGciOiJFZERTQSJ9.e30.sig"));
    }

    #[tokio::test]
    async fn failed_flush_keeps_the_batch() {
        let dir = tempfile::tempdir().unwrap();
        let faulty = crate::store::fault::FaultyStore::new(Arc::new(
            crate::store::embedded::EmbeddedStore::open(dir.path()).unwrap(),
        ));
        let store: Arc<dyn Store> = faulty.clone();
        let usage = KeyUsage::default();
        usage.note(ApiKeyId::generate(), Timestamp(5));
        faulty.fail(true);
        assert!(usage.flush(&store).await.is_err());
        faulty.fail(false);
        assert_eq!(usage.flush(&store).await.unwrap(), 1);
        assert_eq!(usage.flush(&store).await.unwrap(), 0);
    }

    #[test]
    fn digest_depends_on_the_installation_key() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (ha, hb) = (ApiKeyHasher::open(a.path()).unwrap(), ApiKeyHasher::open(b.path()).unwrap());
        assert_ne!(ha.digest("pk_live_x"), hb.digest("pk_live_x"));
        // Reopening reads the same key.
        assert_eq!(ApiKeyHasher::open(a.path()).unwrap().digest("pk_live_x"), ha.digest("pk_live_x"));
    }
}
