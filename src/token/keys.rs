//! Ed25519 signing keys on disk, their rotation, and the JWKS.
//!
//! Each key is one file `<data dir>/keys/<created ms>-<kid>.json` (mode 0600,
//! directory 0700) holding its 32-byte seed. The newest key signs. A key
//! retires when a newer one is created and keeps verifying for the longest
//! access-token lifetime after that, so tokens it signed stay valid until
//! they expire; then `rotate` deletes it. The running gateway re-reads the
//! directory periodically, so `portcullis keys rotate` takes effect without a
//! restart.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ed25519_dalek::pkcs8::EncodePrivateKey;
use ed25519_dalek::{SigningKey, VerifyingKey};
use jsonwebtoken::EncodingKey;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::{b64url, b64url_decode, random_bytes, write_private_file};
use crate::clock::Timestamp;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key directory {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("key file {path} is unreadable: {problem}")]
    Malformed { path: PathBuf, problem: String },
}

/// A key file's content.
#[derive(Serialize, Deserialize)]
struct KeyFile {
    kid: String,
    created_at: Timestamp,
    /// base64url of the 32-byte Ed25519 seed.
    seed: String,
}

/// One key, ready to sign or verify.
pub struct SigningKeyEntry {
    pub kid: String,
    pub created_at: Timestamp,
    /// When a newer key took over; `None` for the current key.
    pub retired_at: Option<Timestamp>,
    pub encoding: EncodingKey,
    /// The public key, decompressed once here rather than per verification
    /// (a field square root, 10 % of an Ed25519 verification).
    pub verifying: VerifyingKey,
    pub public: [u8; 32],
}

/// The keys as loaded at one moment, newest first.
pub struct KeySet {
    pub keys: Vec<SigningKeyEntry>,
}

impl KeySet {
    pub fn current(&self) -> Option<&SigningKeyEntry> {
        self.keys.first()
    }

    /// The key with `kid`, if it may still verify at `now`.
    pub fn verifying(&self, kid: &str, now: Timestamp, max_ttl: Duration) -> Option<&SigningKeyEntry> {
        self.keys.iter().find(|k| k.kid == kid && is_published(k, now, max_ttl))
    }

    /// The JWKS document: the current key and every retired key still verifying.
    pub fn jwks(&self, now: Timestamp, max_ttl: Duration) -> serde_json::Value {
        let keys: Vec<_> = self
            .keys
            .iter()
            .filter(|k| is_published(k, now, max_ttl))
            .map(|k| {
                serde_json::json!({
                    "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "kid": k.kid, "x": b64url(&k.public),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

fn is_published(key: &SigningKeyEntry, now: Timestamp, max_ttl: Duration) -> bool {
    key.retired_at.is_none_or(|retired| now < retired.plus(max_ttl))
}

/// The key directory and its loaded set, shared by signer and verifier.
pub struct KeyRing {
    dir: PathBuf,
    set: RwLock<Arc<KeySet>>,
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io { path: path.to_path_buf(), source }
}

impl KeyRing {
    /// Loads the keys under `data_dir/keys`, creating the first one if none exist.
    pub fn open(data_dir: &Path, now: Timestamp) -> Result<Self, KeyError> {
        let dir = data_dir.join("keys");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io_error(&dir))?;
        if read_key_files(&dir)?.is_empty() {
            write_new_key(&dir, now)?;
        }
        let set = load_set(&dir)?;
        Ok(KeyRing { dir, set: RwLock::new(Arc::new(set)) })
    }

    /// The keys as of the last load.
    pub fn snapshot(&self) -> Arc<KeySet> {
        match self.set.read() {
            Ok(set) => Arc::clone(&set),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the directory (after an external `keys rotate`).
    pub fn reload(&self) -> Result<(), KeyError> {
        let fresh = Arc::new(load_set(&self.dir)?);
        let changed = {
            let current = self.snapshot();
            current.keys.iter().map(|k| &k.kid).ne(fresh.keys.iter().map(|k| &k.kid))
        };
        if changed {
            match self.set.write() {
                Ok(mut set) => *set = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
            tracing::info!(target: "security", event = "signing_keys_reloaded", "signing keys reloaded");
        }
        Ok(())
    }

    /// Creates a new current key and deletes keys no token can need any more.
    /// Returns the new key's id.
    pub fn rotate(data_dir: &Path, now: Timestamp, max_ttl: Duration) -> Result<String, KeyError> {
        let dir = data_dir.join("keys");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(io_error(&dir))?;
        let kid = write_new_key(&dir, now)?;
        let files = read_key_files(&dir)?;
        // Newest first: each key retired when the one before it in this list was created.
        for pair in files.windows(2) {
            let (newer, older) = (&pair[0], &pair[1]);
            if newer.1.created_at.plus(max_ttl) <= now {
                fs::remove_file(&older.0).map_err(io_error(&older.0))?;
            }
        }
        Ok(kid)
    }
}

/// Key files with their parsed content, newest first.
fn read_key_files(dir: &Path) -> Result<Vec<(PathBuf, KeyFile)>, KeyError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error(dir))? {
        let path = entry.map_err(io_error(dir))?.path();
        if path.extension().is_none_or(|ext| ext != "json") {
            continue;
        }
        let text = Zeroizing::new(fs::read_to_string(&path).map_err(io_error(&path))?);
        let file: KeyFile = serde_json::from_str(&text)
            .map_err(|e| KeyError::Malformed { path: path.clone(), problem: e.to_string() })?;
        files.push((path, file));
    }
    files.sort_by(|a, b| b.1.created_at.cmp(&a.1.created_at).then_with(|| b.1.kid.cmp(&a.1.kid)));
    Ok(files)
}

fn load_set(dir: &Path) -> Result<KeySet, KeyError> {
    let files = read_key_files(dir)?;
    let mut keys = Vec::with_capacity(files.len());
    let mut newer_created: Option<Timestamp> = None;
    for (path, file) in files {
        let malformed = |problem: &str| KeyError::Malformed { path: path.clone(), problem: problem.to_owned() };
        let seed = Zeroizing::new(b64url_decode(&file.seed).ok_or_else(|| malformed("seed is not base64url"))?);
        let seed: &[u8; 32] = seed.as_slice().try_into().map_err(|_| malformed("seed is not 32 bytes"))?;
        let signing = SigningKey::from_bytes(seed);
        let der = signing.to_pkcs8_der().map_err(|e| malformed(&e.to_string()))?;
        let public = signing.verifying_key().to_bytes();
        keys.push(SigningKeyEntry {
            kid: file.kid,
            created_at: file.created_at,
            retired_at: newer_created,
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            verifying: signing.verifying_key(),
            public,
        });
        newer_created = Some(file.created_at);
    }
    Ok(KeySet { keys })
}

/// Writes a fresh key file (0600, created exclusively, fsynced); returns its kid.
fn write_new_key(dir: &Path, now: Timestamp) -> Result<String, KeyError> {
    let seed = Zeroizing::new(random_bytes::<32>());
    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let kid = b64url(&blake3::hash(&public).as_bytes()[..12]);
    let file = KeyFile { kid: kid.clone(), created_at: now, seed: b64url(seed.as_slice()) };
    let text = Zeroizing::new(
        serde_json::to_string(&file)
            .map_err(|e| KeyError::Malformed { path: dir.to_path_buf(), problem: e.to_string() })?,
    );
    let path = dir.join(format!("{:013}-{kid}.json", now.0));
    write_private_file(&path, text.as_bytes()).map_err(io_error(&path))?;
    tracing::info!(target: "security", event = "signing_key_created", kid = %kid, "signing key created");
    Ok(kid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn first_open_creates_a_private_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(dir.path(), Timestamp(1_000)).unwrap();
        assert_eq!(ring.snapshot().keys.len(), 1);
        let file = fs::read_dir(dir.path().join("keys")).unwrap().next().unwrap().unwrap();
        assert_eq!(file.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        // Opening again loads the same key.
        let again = KeyRing::open(dir.path(), Timestamp(2_000)).unwrap();
        assert_eq!(again.snapshot().keys[0].kid, ring.snapshot().keys[0].kid);
    }

    #[test]
    fn rotated_key_keeps_verifying_for_one_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let ring = KeyRing::open(dir.path(), Timestamp(0)).unwrap();
        let old = ring.snapshot().keys[0].kid.clone();
        let rotated_at = Timestamp::from_secs(10);
        let new = KeyRing::rotate(dir.path(), rotated_at, HOUR).unwrap();
        ring.reload().unwrap();
        let set = ring.snapshot();
        assert_eq!(set.current().unwrap().kid, new);
        assert!(set.verifying(&old, rotated_at.plus(HOUR - Duration::from_secs(1)), HOUR).is_some());
        assert!(set.verifying(&old, rotated_at.plus(HOUR), HOUR).is_none());
        assert_eq!(set.jwks(rotated_at, HOUR)["keys"].as_array().unwrap().len(), 2);
        assert_eq!(set.jwks(rotated_at.plus(HOUR), HOUR)["keys"].as_array().unwrap().len(), 1);
        // A rotation after the window deletes the retired key's file.
        KeyRing::rotate(dir.path(), rotated_at.plus(HOUR * 2), HOUR).unwrap();
        ring.reload().unwrap();
        assert!(ring.snapshot().keys.iter().all(|k| k.kid != old));
    }
}
