//! The crypto provider behind `jsonwebtoken`: its RustCrypto provider, except
//! that an Ed25519 public key is decompressed once rather than on every
//! verification.
//!
//! `jsonwebtoken` builds a verifier per `decode`, and its Ed25519 verifier
//! decompresses the 32-byte public key each time (a field square root,
//! about 5 µs here, an eighth of a first-sight check). This provider keeps
//! the decompressed form of the last few keys it met and verifies with
//! `ed25519-dalek` exactly as the default provider does; every other
//! algorithm, and any key past the bound, goes to the default provider.
//! Never: verifies anything itself, or holds more than `KNOWN_KEYS` keys.

use std::sync::{OnceLock, PoisonError, RwLock};

use ed25519_dalek::{Signature, VerifyingKey};
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::crypto::{CryptoProvider, JwtVerifier};
use jsonwebtoken::signature::{Error, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey};

/// Our signing keys in use and retired, and a few of the identity providers'.
const KNOWN_KEYS: usize = 16;

/// Decompressed Ed25519 public keys, by their 32 bytes.
static KNOWN: RwLock<Vec<([u8; 32], VerifyingKey)>> = RwLock::new(Vec::new());

static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();

/// Makes this provider `jsonwebtoken`'s for the process. Idempotent; if
/// `jsonwebtoken` was used before, it keeps its default (the same checks,
/// only slower), and this says so.
pub fn install() -> bool {
    let provider = PROVIDER.get_or_init(|| CryptoProvider { verifier_factory: verifier, ..DEFAULT_PROVIDER.clone() });
    match provider.install_default() {
        Ok(()) => true,
        Err(installed) => std::ptr::eq(installed, provider),
    }
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtVerifier>> {
    if *algorithm == Algorithm::EdDSA
        && key.family() == AlgorithmFamily::Ed
        && let Some(known) = known(key.as_bytes())
    {
        return Ok(Box::new(KnownEd25519(known)));
    }
    (DEFAULT_PROVIDER.verifier_factory)(algorithm, key)
}

/// `bytes`' decompressed key, decompressed now if it is new and there is
/// room; `None` for what the default provider should handle (and refuse).
fn known(bytes: &[u8]) -> Option<VerifyingKey> {
    let bytes: &[u8; 32] = bytes.get(..32)?.try_into().ok()?;
    let find = |keys: &[([u8; 32], VerifyingKey)]| keys.iter().find(|(b, _)| b == bytes).map(|(_, key)| *key);
    if let Some(key) = find(&KNOWN.read().unwrap_or_else(PoisonError::into_inner)) {
        return Some(key);
    }
    let key = VerifyingKey::from_bytes(bytes).ok()?;
    let mut keys = KNOWN.write().unwrap_or_else(PoisonError::into_inner);
    if find(&keys).is_none() && keys.len() < KNOWN_KEYS {
        keys.push((*bytes, key));
    }
    Some(key)
}

/// The default provider's Ed25519 verifier, on a key decompressed before.
struct KnownEd25519(VerifyingKey);

impl Verifier<Vec<u8>> for KnownEd25519 {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), Error> {
        self.0.verify(message, &Signature::from_slice(signature)?)
    }
}

impl JwtVerifier for KnownEd25519 {
    fn algorithm(&self) -> Algorithm {
        Algorithm::EdDSA
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    use jsonwebtoken::{EncodingKey, Header, Validation};

    use super::*;

    #[test]
    fn verifies_as_the_default_provider_and_keeps_the_key() {
        let signing = SigningKey::from_bytes(&[7; 32]);
        let der = signing.to_pkcs8_der().unwrap();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::EdDSA),
            &serde_json::json!({"sub": "s"}),
            &EncodingKey::from_ed_der(der.as_bytes()),
        )
        .unwrap();
        let key = DecodingKey::from_ed_der(signing.verifying_key().as_bytes());
        let (message, signature) = token.rsplit_once('.').unwrap();
        let signature = jsonwebtoken::crypto::verify(signature, message.as_bytes(), &key, Algorithm::EdDSA);
        assert!(signature.unwrap(), "the default provider's verdict");
        let ours = verifier(&Algorithm::EdDSA, &key).unwrap();
        let raw = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            token.rsplit('.').next().unwrap(),
        )
        .unwrap();
        assert!(ours.verify(message.as_bytes(), &raw).is_ok());
        let mut tampered = raw.clone();
        tampered[0] ^= 1;
        assert!(ours.verify(message.as_bytes(), &tampered).is_err());
        assert!(ours.verify(b"another message", &raw).is_err());
        assert!(ours.verify(message.as_bytes(), &raw[..63].to_vec()).is_err());
        assert!(KNOWN.read().unwrap().iter().any(|(bytes, _)| bytes == signing.verifying_key().as_bytes()));
        // Through jsonwebtoken, with the provider installed.
        assert!(install());
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &key, &validation).is_ok());
        let other = DecodingKey::from_ed_der(SigningKey::from_bytes(&[8; 32]).verifying_key().as_bytes());
        assert!(jsonwebtoken::decode::<serde_json::Value>(&token, &other, &validation).is_err());
    }

    #[test]
    fn other_algorithms_and_bad_keys_go_to_the_default_provider() {
        let hmac = DecodingKey::from_secret(b"secret");
        assert_eq!(verifier(&Algorithm::HS256, &hmac).unwrap().algorithm(), Algorithm::HS256);
        // Not points on the curve: left to the default provider, which refuses them.
        let off_curve: Vec<[u8; 32]> =
            (0..=255u8).map(|b| [b; 32]).filter(|bytes| VerifyingKey::from_bytes(bytes).is_err()).collect();
        assert!(!off_curve.is_empty());
        for bytes in &off_curve {
            assert!(known(bytes).is_none());
            assert!(verifier(&Algorithm::EdDSA, &DecodingKey::from_ed_der(bytes)).is_err());
        }
        assert!(known(&[1, 2, 3]).is_none());
    }
}
