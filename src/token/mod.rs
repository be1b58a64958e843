//! Tokens: signing keys, access JWTs, refresh tokens, and the verified-token
//! cache that makes a token check cost microseconds.
//!
//! Owns: the Ed25519 key ring on disk (`keys`), minting and verifying access
//! tokens (`access`), refresh-token secrets and their sealed successors
//! (`refresh`), the bounded cache of verified tokens (`cache`), the gate
//! every authenticated request passes (`gate`), the batches first sights'
//! signatures are verified in (`batch`), and the secrets key that seals
//! second factors and keys code digests (`vault`).
//! Never: stores a token or key in the clear, accepts any `alg` but EdDSA,
//! or lets a cache entry outlive its token's `exp` or its session.

pub mod access;
pub mod api_key;
pub mod batch;
pub mod cache;
pub mod gate;
pub mod keys;
pub mod refresh;
pub mod vault;

use crate::store::StoreError;

pub use access::{AccessClaims, TokenSigner};
pub use api_key::INTROSPECT_SCOPE;
pub use cache::{Credential, TokenCache};
pub use gate::{AccessGate, GateParts, VerifiedAccess};
pub use keys::KeyRing;

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No credential was presented.
    #[error("no token presented")]
    Missing,
    /// Not a token we issued, badly formed, wrongly signed, or revoked.
    #[error("invalid token")]
    Invalid,
    /// A token we issued whose `exp` has passed.
    #[error("token expired")]
    Expired,
    /// The session behind the token could not be checked.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// Signing failed (a broken key).
    #[error("signing failed: {0}")]
    Signing(String),
}

impl TokenError {
    /// Whether the credential itself was refused (missing, invalid,
    /// expired), as opposed to a check that could not be made.
    pub fn is_refusal(&self) -> bool {
        matches!(self, TokenError::Missing | TokenError::Invalid | TokenError::Expired)
    }
}

/// Base64url without padding, the encoding of every opaque token we hand out.
pub(crate) fn b64url(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn b64url_decode(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok()
}

/// `n` bytes from the operating system's CSPRNG.
#[expect(clippy::panic, reason = "without OS randomness no secret can be minted safely; stopping beats weak secrets")]
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if let Err(e) = getrandom::getrandom(&mut bytes) {
        // Without randomness no secret can be made safely; stop rather than mint weak ones.
        panic!("operating system randomness unavailable: {e}");
    }
    bytes
}

/// Writes `contents` to a new file readable by the owner only (0600),
/// created exclusively and fsynced with its directory.
pub(crate) fn write_private_file(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(contents)?;
    file.sync_all()?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// A 32-byte secret kept in `path` (0600), made on first use.
pub(crate) fn read_or_create_secret(path: &std::path::Path) -> std::io::Result<zeroize::Zeroizing<[u8; 32]>> {
    if !path.exists() {
        if let Some(dir) = path.parent() {
            crate::data_dir::private_dir(dir).map_err(std::io::Error::other)?;
        }
        let fresh = zeroize::Zeroizing::new(random_bytes::<32>());
        match write_private_file(path, fresh.as_slice()) {
            Ok(()) => return Ok(fresh),
            // Another process made it first: read theirs.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    let bytes = zeroize::Zeroizing::new(std::fs::read(path)?);
    let secret: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{} must hold exactly 32 bytes", path.display()))
    })?;
    Ok(zeroize::Zeroizing::new(secret))
}
