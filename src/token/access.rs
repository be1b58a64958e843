//! Access tokens: EdDSA-signed JWTs with `kid`, minted and verified here.
//!
//! Verification accepts only `alg: EdDSA` with a `kid` from our key ring and
//! our issuer; expiry is checked against the caller's clock, not the system
//! time, so tests control it.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signature;
use jsonwebtoken::{Algorithm, Header};
use serde::{Deserialize, Serialize};

use super::batch::{BatchVerifier, Job};
use super::{KeyRing, TokenError, b64url, random_bytes};
use crate::account::{ProjectId, Role, Session, User};
use crate::clock::Timestamp;

/// The scope every user access token carries.
pub const USER_SCOPE: &str = "openid profile email";

/// The claims of an access token, as API.md lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// User id.
    pub sub: String,
    /// Project id.
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    /// Session id.
    pub sid: String,
    pub role: String,
    pub scope: String,
}

/// Mints and verifies access tokens with the key ring's keys.
pub struct TokenSigner {
    keys: Arc<KeyRing>,
    issuer: String,
    /// The longest a token may live (every project's `access_ttl` is at
    /// most this); also how long a retired key keeps verifying.
    max_ttl: Duration,
    /// Verifies first sights' signatures together.
    batch: BatchVerifier,
}

impl TokenSigner {
    pub fn new(keys: Arc<KeyRing>, issuer: String, max_ttl: Duration) -> Self {
        TokenSigner { keys, issuer, max_ttl, batch: BatchVerifier::default() }
    }

    /// The longest a token may live.
    pub fn max_ttl(&self) -> Duration {
        self.max_ttl
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// A fresh access token for `user` in `session`, issued at `now`, living
    /// `ttl` (its project's `access_ttl`; at most `max_ttl`).
    pub fn mint(&self, user: &User, session: &Session, now: Timestamp, ttl: Duration) -> Result<String, TokenError> {
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: user.id.to_string(),
            aud: user.project.to_string(),
            iat: now.as_secs(),
            exp: now.plus(ttl.min(self.max_ttl)).as_secs(),
            jti: b64url(&random_bytes::<16>()),
            sid: session.id.to_string(),
            role: user.role.as_str().to_owned(),
            scope: USER_SCOPE.to_owned(),
        };
        let keys = self.keys.snapshot();
        let key = keys.current().ok_or_else(|| TokenError::Signing("no signing key".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(|e| TokenError::Signing(e.to_string()))
    }

    /// Checks signature, algorithm, key id, issuer and expiry.
    pub fn verify(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        let (claims, job) = self.unverified(token, now)?;
        if !job.verifies_alone() {
            return Err(TokenError::Invalid);
        }
        unexpired(claims, now)
    }

    /// `verify`, the signature checked together with those of the
    /// verifications running beside this one (see `batch`).
    pub async fn verify_together(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        let (claims, job) = self.unverified(token, now)?;
        if !self.batch.verify(job).await {
            return Err(TokenError::Invalid);
        }
        unexpired(claims, now)
    }

    /// Checks algorithm, key id and issuer and reads the claims, leaving
    /// the signature over them to check.
    fn unverified(&self, token: &str, now: Timestamp) -> Result<(AccessClaims, Job), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let keys = self.keys.snapshot();
        let key = keys.verifying(&kid, now, self.max_ttl).ok_or(TokenError::Invalid)?;
        let (message, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Invalid)?;
        let signature = Signature::from_slice(&signature).map_err(|_| TokenError::Invalid)?;
        // The claims as `jsonwebtoken` reads them; the signature over the
        // same bytes is the caller's to check, with `ed25519-dalek`.
        let claims =
            jsonwebtoken::dangerous::insecure_decode::<AccessClaims>(token).map_err(|_| TokenError::Invalid)?.claims;
        if claims.iss != self.issuer {
            return Err(TokenError::Invalid);
        }
        Ok((claims, Job { message: message.as_bytes().to_vec(), signature, key: key.verifying }))
    }
}

/// Verified claims, unless they have expired by `now`.
fn unexpired(claims: AccessClaims, now: Timestamp) -> Result<AccessClaims, TokenError> {
    if claims.exp <= now.as_secs() {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

/// The parts of verified claims the gateway works with.
pub(crate) fn parse_subject(
    claims: &AccessClaims,
) -> Option<(crate::account::UserId, crate::account::SessionId, ProjectId, Role)> {
    Some((
        crate::account::UserId::parse(&claims.sub)?,
        crate::account::SessionId::parse(&claims.sid)?,
        ProjectId(claims.aud.clone()),
        Role::parse(&claims.role)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> User {
        User::fresh(ProjectId::default_project(), "ada@example.com".into(), "Ada".into(), None, Timestamp(0))
    }

    fn session(user: &User) -> Session {
        Session::begin(user, None, None, Timestamp(0), Timestamp(i64::MAX))
    }

    fn signer(dir: &std::path::Path) -> TokenSigner {
        let ring = Arc::new(KeyRing::open(dir, Timestamp(0)).unwrap());
        TokenSigner::new(ring, "https://auth.test".into(), Duration::from_secs(60))
    }

    #[test]
    fn minted_token_verifies_until_exp() {
        let dir = tempfile::tempdir().unwrap();
        let signer = signer(dir.path());
        let (u, now) = (user(), Timestamp::from_secs(1_000));
        let token = signer.mint(&u, &session(&u), now, Duration::from_secs(60)).unwrap();
        let claims = signer.verify(&token, now).unwrap();
        assert_eq!(claims.sub, u.id.to_string());
        assert_eq!(claims.aud, "default");
        assert!(matches!(signer.verify(&token, now.plus(Duration::from_secs(60))), Err(TokenError::Expired)));
    }

    #[test]
    fn other_algorithms_and_tampering_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let signer = signer(dir.path());
        let (u, now) = (user(), Timestamp::from_secs(1_000));
        let token = signer.mint(&u, &session(&u), now, Duration::from_secs(60)).unwrap();
        // HS256 with the public key as secret: the classic alg confusion.
        let public = signer.keys().snapshot().keys[0].public;
        let mut header = Header::new(Algorithm::HS256);
        header.kid = signer.keys().snapshot().keys[0].kid.clone().into();
        let claims = signer.verify(&token, now).unwrap();
        let forged = jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_secret(&public)).unwrap();
        assert!(matches!(signer.verify(&forged, now), Err(TokenError::Invalid)));
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64url(br#"{"iss":"https://auth.test","sub":"x","aud":"default","exp":99999999999,"iat":0,"jti":"j","sid":"s","role":"superadmin","scope":""}"#);
        assert!(matches!(signer.verify(&parts.join("."), now), Err(TokenError::Invalid)));
        assert!(matches!(signer.verify("not.a.jwt", now), Err(TokenError::Invalid)));
    }

    #[tokio::test]
    async fn tokens_verified_together_get_the_verdicts_they_get_alone() {
        let dir = tempfile::tempdir().unwrap();
        let signer = signer(dir.path());
        let (u, now) = (user(), Timestamp::from_secs(1_000));
        let mut tokens: Vec<String> =
            (0..6).map(|_| signer.mint(&u, &session(&u), now, Duration::from_secs(60)).unwrap()).collect();
        // One with another token's signature, one with a flipped signature bit, one unsigned.
        let parts = |t: &str| t.rsplit_once('.').map(|(m, s)| (m.to_owned(), s.to_owned())).unwrap();
        let (message_1, _) = parts(&tokens[1]);
        let (_, signature_2) = parts(&tokens[2]);
        tokens[1] = format!("{message_1}.{signature_2}");
        let (message_3, signature_3) = parts(&tokens[3]);
        let mut flipped = URL_SAFE_NO_PAD.decode(&signature_3).unwrap();
        flipped[10] ^= 1;
        tokens[3] = format!("{message_3}.{}", URL_SAFE_NO_PAD.encode(flipped));
        tokens[5] = format!("{}.", parts(&tokens[5]).0);
        let alone: Vec<bool> = tokens.iter().map(|t| signer.verify(t, now).is_ok()).collect();
        assert_eq!(alone, [true, false, true, false, true, false]);
        let together = futures_util::future::join_all(tokens.iter().map(|t| signer.verify_together(t, now))).await;
        assert_eq!(together.iter().map(Result::is_ok).collect::<Vec<_>>(), alone);
        let later = now.plus(Duration::from_secs(60));
        assert!(matches!(signer.verify_together(&tokens[0], later).await, Err(TokenError::Expired)));
    }
}
