//! Verifying an ID token of a provider: the signature with a key of the
//! provider's set (the algorithm taken from the key, never from the
//! token), then `iss`, `aud`/`azp`, `exp`, `iat`, `sub` and `nonce`.

use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::provider::Provider;
use crate::clock::Timestamp;

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(60);
/// The oldest `iat` taken: a token issued longer ago is refused, whatever its `exp`.
pub const MAX_AGE: Duration = Duration::from_secs(86_400);
/// The longest `sub` taken.
const MAX_SUBJECT: usize = 255;

/// What a verified ID token says about its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    pub subject: String,
    pub email: Option<String>,
    /// The provider vouches for the address.
    pub email_verified: bool,
    pub name: Option<String>,
}

/// Why a token was refused (kept for the log; clients see `invalid_token`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

fn refused(why: impl Into<String>) -> Refused {
    Refused(why.into())
}

/// `aud`: one audience or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// `email_verified`: a boolean, or (some providers) the string "true".
#[derive(Deserialize)]
#[serde(untagged)]
enum Flag {
    Bool(bool),
    Text(String),
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    aud: Audience,
    iat: i64,
    azp: Option<String>,
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<Flag>,
    name: Option<String>,
}

/// The algorithm a key is for: its `alg` if it names one, else the one its
/// type and curve allow. Symmetric keys never verify ID tokens.
pub fn key_algorithm(key: &Jwk) -> Option<Algorithm> {
    let named = match key.common.key_algorithm {
        Some(KeyAlgorithm::RS256) => Some(Algorithm::RS256),
        Some(KeyAlgorithm::RS384) => Some(Algorithm::RS384),
        Some(KeyAlgorithm::RS512) => Some(Algorithm::RS512),
        Some(KeyAlgorithm::PS256) => Some(Algorithm::PS256),
        Some(KeyAlgorithm::PS384) => Some(Algorithm::PS384),
        Some(KeyAlgorithm::PS512) => Some(Algorithm::PS512),
        Some(KeyAlgorithm::ES256) => Some(Algorithm::ES256),
        Some(KeyAlgorithm::ES384) => Some(Algorithm::ES384),
        Some(KeyAlgorithm::EdDSA) => Some(Algorithm::EdDSA),
        Some(_) => return None,
        None => None,
    };
    match &key.algorithm {
        AlgorithmParameters::RSA(_) => matches!(
            named,
            None | Some(
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            )
        )
        .then(|| named.unwrap_or(Algorithm::RS256)),
        AlgorithmParameters::EllipticCurve(ec) => match (ec.curve.clone(), named) {
            (EllipticCurve::P256, None | Some(Algorithm::ES256)) => Some(Algorithm::ES256),
            (EllipticCurve::P384, None | Some(Algorithm::ES384)) => Some(Algorithm::ES384),
            _ => None,
        },
        AlgorithmParameters::OctetKeyPair(okp) => (okp.curve == EllipticCurve::Ed25519
            && matches!(named, None | Some(Algorithm::EdDSA)))
        .then_some(Algorithm::EdDSA),
        AlgorithmParameters::OctetKey(_) => None,
    }
}

/// Checks `token` (whose header is `header`), signed by `key` of
/// `provider`'s set, at `now`; `nonce`, when the client sent one, must be
/// the token's.
pub fn verify(
    token: &str,
    header: &Header,
    key: &Jwk,
    provider: &Provider,
    now: Timestamp,
    nonce: Option<&str>,
) -> Result<VerifiedIdentity, Refused> {
    let algorithm = key_algorithm(key).ok_or_else(|| refused("the key verifies no ID token algorithm"))?;
    if header.alg != algorithm {
        return Err(refused(format!("the token says {:?}, its key is for {algorithm:?}", header.alg)));
    }
    let decoding = DecodingKey::from_jwk(key).map_err(|e| refused(format!("key: {e}")))?;
    let mut validation = Validation::new(algorithm);
    validation.leeway = LEEWAY.as_secs();
    validation.validate_nbf = true;
    validation.set_issuer(&provider.issuers);
    validation.set_audience(&provider.client_ids);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
    // `exp` against the gateway's clock, not the system's (the same in production).
    validation.validate_exp = false;
    let claims = jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation)
        .map_err(|e| refused(format!("signature or claims: {e}")))?
        .claims;
    let exp = claims.get("exp").and_then(serde_json::Value::as_i64).ok_or_else(|| refused("exp is not a number"))?;
    let claims: Claims = serde_json::from_value(claims).map_err(|e| refused(format!("claims: {e}")))?;
    let (now_s, leeway) = (now.0.div_euclid(1000), i64::try_from(LEEWAY.as_secs()).unwrap_or(60));
    if exp + leeway <= now_s {
        return Err(refused("expired"));
    }
    if claims.iat > now_s + leeway {
        return Err(refused("issued in the future"));
    }
    if claims.iat < now_s - i64::try_from(MAX_AGE.as_secs()).unwrap_or(i64::MAX) {
        return Err(refused("issued too long ago"));
    }
    let audiences = match claims.aud {
        Audience::One(one) => vec![one],
        Audience::Many(many) => many,
    };
    if audiences.len() > 1 {
        let azp = claims.azp.as_deref().ok_or_else(|| refused("several audiences and no azp"))?;
        if !provider.client_ids.iter().any(|id| id == azp) {
            return Err(refused("azp is not a configured client"));
        }
    }
    if claims.sub.is_empty() || claims.sub.len() > MAX_SUBJECT {
        return Err(refused("sub is empty or too long"));
    }
    match (nonce, claims.nonce.as_deref()) {
        (Some(sent), Some(signed)) if bool::from(sent.as_bytes().ct_eq(signed.as_bytes())) => {}
        (None, None) => {}
        (Some(_), _) => return Err(refused("nonce does not match")),
        (None, Some(_)) => return Err(refused("the token has a nonce and none was sent")),
    }
    let email_verified = match claims.email_verified {
        Some(Flag::Bool(verified)) => verified,
        Some(Flag::Text(text)) => text.eq_ignore_ascii_case("true"),
        None => false,
    };
    Ok(VerifiedIdentity { subject: claims.sub, email: claims.email, email_verified, name: claims.name })
}
