//! The secrets key (`<data dir>/secrets.key`, 0600, made on first start):
//! seals TOTP secrets at rest and keys the digests of backup codes, email
//! codes and single-use claims, so a copy of the database alone reveals no
//! second factor and lets no code be checked offline.
//!
//! Never: stores or logs what it seals or digests, or uses one derived key
//! for two jobs (each job derives its own from the file's key).

use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

use super::{random_bytes, read_or_create_secret};

const NONCE_BYTES: usize = 12;

pub struct Vault {
    seal_key: Zeroizing<[u8; 32]>,
    digest_key: Zeroizing<[u8; 32]>,
}

impl Vault {
    /// Loads `<data dir>/secrets.key`, creating it on first start. Every
    /// node of a cluster needs the same file.
    pub fn open(data_dir: &Path) -> std::io::Result<Self> {
        let master = read_or_create_secret(&data_dir.join("secrets.key"))?;
        Ok(Self::from_master(&master))
    }

    fn from_master(master: &[u8; 32]) -> Self {
        Vault {
            seal_key: Zeroizing::new(blake3::derive_key("portcullis 2026 vault seal v1", master)),
            digest_key: Zeroizing::new(blake3::derive_key("portcullis 2026 vault digest v1", master)),
        }
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(self.seal_key.as_slice()))
    }

    /// ChaCha20-Poly1305 with a random nonce; `context` (such as the owner's
    /// id) is authenticated, so a sealed value cannot be moved to another owner.
    pub fn seal(&self, context: &[u8], plain: &[u8]) -> Vec<u8> {
        let nonce = random_bytes::<NONCE_BYTES>();
        let mut sealed = nonce.to_vec();
        match self.cipher().encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad: context }) {
            Ok(ciphertext) => sealed.extend_from_slice(&ciphertext),
            // Only messages beyond 256 GiB are refused.
            Err(_) => unreachable!("ChaCha20-Poly1305 refused a short message"),
        }
        sealed
    }

    /// Opens what `seal` sealed for `context`; `None` if it was not.
    pub fn open_sealed(&self, context: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
        if sealed.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let plain = self.cipher().decrypt(Nonce::from_slice(nonce), Payload { msg: ciphertext, aad: context }).ok()?;
        Some(Zeroizing::new(plain))
    }

    /// A keyed BLAKE3 digest of `parts` for the job named `domain`
    /// (each part length-prefixed, so parts cannot run into each other).
    pub fn digest(&self, domain: &str, parts: &[&[u8]]) -> [u8; 32] {
        let mut hasher = blake3::Hasher::new_keyed(&self.digest_key);
        for part in std::iter::once(domain.as_bytes()).chain(parts.iter().copied()) {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        *hasher.finalize().as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_context_and_key() {
        let vault = Vault::from_master(&[7; 32]);
        let sealed = vault.seal(b"user-1", b"JBSWY3DPEHPK3PXP secret bytes");
        assert!(!sealed.windows(6).any(|w| w == b"secret"), "sealed in the clear");
        assert_eq!(vault.open_sealed(b"user-1", &sealed).unwrap().as_slice(), b"JBSWY3DPEHPK3PXP secret bytes");
        assert!(vault.open_sealed(b"user-2", &sealed).is_none(), "moved to another owner");
        assert!(Vault::from_master(&[8; 32]).open_sealed(b"user-1", &sealed).is_none(), "another key");
        assert!(vault.open_sealed(b"user-1", &sealed[..10]).is_none());
    }

    #[test]
    fn digests_depend_on_key_domain_and_part_boundaries() {
        let vault = Vault::from_master(&[7; 32]);
        let d = vault.digest("code", &[b"ab", b"c"]);
        assert_eq!(d, vault.digest("code", &[b"ab", b"c"]));
        assert_ne!(d, vault.digest("code", &[b"a", b"bc"]));
        assert_ne!(d, vault.digest("backup", &[b"ab", b"c"]));
        assert_ne!(d, Vault::from_master(&[8; 32]).digest("code", &[b"ab", b"c"]));
    }

    #[test]
    fn the_key_file_is_made_once_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let first = Vault::open(dir.path()).unwrap();
        let second = Vault::open(dir.path()).unwrap();
        assert_eq!(first.digest("x", &[]), second.digest("x", &[]));
        let mode = std::fs::metadata(dir.path().join("secrets.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
