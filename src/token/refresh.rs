//! Refresh tokens: 256-bit random secrets, known at rest only by their
//! BLAKE3 digest.
//!
//! A rotated token's successor is kept so that a racing client presenting
//! the old token within the grace window gets the same successor. It is kept
//! sealed (ChaCha20-Poly1305) under a key derived from the old token itself:
//! the store never holds a readable token, and only someone who presents the
//! old token can open it.

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use zeroize::Zeroizing;

use super::{b64url, b64url_decode, random_bytes};

const SEAL_CONTEXT: &str = "portcullis 2026-11 refresh-token successor seal v1";
const NONCE_BYTES: usize = 12;

/// A refresh token as presented or minted.
pub struct RefreshSecret {
    bytes: Zeroizing<[u8; 32]>,
}

impl RefreshSecret {
    /// A fresh secret from the OS CSPRNG.
    pub fn generate() -> Self {
        RefreshSecret { bytes: Zeroizing::new(random_bytes::<32>()) }
    }

    /// Parses a presented token; `None` if it cannot be one of ours.
    pub fn parse(token: &str) -> Option<Self> {
        if token.len() != 43 {
            return None;
        }
        let bytes: [u8; 32] = b64url_decode(token)?.try_into().ok()?;
        Some(RefreshSecret { bytes: Zeroizing::new(bytes) })
    }

    /// The text handed to the client.
    pub fn token(&self) -> String {
        b64url(self.bytes.as_slice())
    }

    /// What the store keys the token by.
    pub fn digest(&self) -> [u8; 32] {
        *blake3::hash(self.bytes.as_slice()).as_bytes()
    }

    fn cipher(&self) -> ChaCha20Poly1305 {
        let key = Zeroizing::new(blake3::derive_key(SEAL_CONTEXT, self.bytes.as_slice()));
        ChaCha20Poly1305::new(Key::from_slice(key.as_slice()))
    }

    /// Seals `successor` so that only a holder of `self` can read it.
    pub fn seal(&self, successor: &RefreshSecret) -> Vec<u8> {
        let nonce = random_bytes::<NONCE_BYTES>();
        let mut sealed = nonce.to_vec();
        match self.cipher().encrypt(Nonce::from_slice(&nonce), successor.bytes.as_slice()) {
            Ok(ciphertext) => sealed.extend_from_slice(&ciphertext),
            // Encryption of 32 bytes cannot exceed the AEAD's limits.
            Err(_) => unreachable!("ChaCha20-Poly1305 refused a 32-byte message"),
        }
        sealed
    }

    /// Opens a successor sealed by `seal`; `None` if it was not sealed for `self`.
    pub fn unseal(&self, sealed: &[u8]) -> Option<RefreshSecret> {
        if sealed.len() <= NONCE_BYTES {
            return None;
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        let plain = Zeroizing::new(self.cipher().decrypt(Nonce::from_slice(nonce), ciphertext).ok()?);
        let bytes: [u8; 32] = plain.as_slice().try_into().ok()?;
        Some(RefreshSecret { bytes: Zeroizing::new(bytes) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_round_trips_through_text() {
        let secret = RefreshSecret::generate();
        let parsed = RefreshSecret::parse(&secret.token()).unwrap();
        assert_eq!(parsed.digest(), secret.digest());
        assert!(RefreshSecret::parse("short").is_none());
        assert!(RefreshSecret::parse(&"!".repeat(43)).is_none());
    }

    #[test]
    fn successor_opens_only_with_the_old_token() {
        let (old, next, other) = (RefreshSecret::generate(), RefreshSecret::generate(), RefreshSecret::generate());
        let sealed = old.seal(&next);
        assert!(!sealed.windows(32).any(|w| w == next.bytes.as_slice()), "successor stored in the clear");
        assert_eq!(old.unseal(&sealed).unwrap().token(), next.token());
        assert!(other.unseal(&sealed).is_none());
    }
}
