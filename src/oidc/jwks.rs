//! Providers' key sets (JWKS), fetched over HTTPS and cached per URL.
//!
//! A set is kept for its `Cache-Control: max-age` (bounded both ways). A
//! token whose `kid` is not in the set refreshes it once: concurrent
//! requests wait for that one fetch rather than each making their own, and
//! forced refreshes of one URL are at least `MIN_FORCED_REFRESH` apart, so
//! random `kid`s cannot make the gateway hammer a provider. A failed fetch
//! keeps the keys already held. Every fetch is bounded in time and size.
//!
//! Never: takes a symmetric key (`kty: oct`) or an encryption key from a
//! set, or holds a lock across a fetch but the one that makes waiters share it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use serde_json::Value;
use url::Url;

use crate::clock::{SharedClock, Timestamp};

/// How long a set without `max-age` is kept, and the bounds on `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
const MIN_MAX_AGE: Duration = Duration::from_secs(60);
const MAX_MAX_AGE: Duration = Duration::from_secs(86_400);
/// Unknown `kid`s refresh a set at most this often.
pub const MIN_FORCED_REFRESH: Duration = Duration::from_secs(30);
/// After a failed fetch, the next one waits this long (held keys serve meanwhile).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// The largest key set read.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// The most keys kept of one set.
const MAX_KEYS: usize = 100;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The set (fresh, or just refetched) has no such key.
    #[error("no such key in the provider's key set")]
    UnknownKey,
    /// The set could not be fetched and no held key fits.
    #[error("the provider's key set cannot be fetched")]
    Unavailable,
}

/// A fetched set: keys by `kid` (`""` for a key without one).
struct Fetched {
    keys: HashMap<String, Jwk>,
    fresh_until: Timestamp,
}

#[derive(Default)]
struct State {
    fetched: Option<Arc<Fetched>>,
    /// Bumped by every fetch attempt, so waiters know one happened.
    attempts: u64,
    last_attempt: Option<Timestamp>,
    last_failed: bool,
}

#[derive(Default)]
struct Entry {
    state: Mutex<State>,
    /// Held while fetching: the requests that need a fetch share one.
    fetching: tokio::sync::Mutex<()>,
}

impl Entry {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(state) => state,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// The key sets of every provider this node has seen, by URL.
pub struct JwksCache {
    http: reqwest::Client,
    clock: SharedClock,
    entries: DashMap<Url, Arc<Entry>>,
    /// Every fetch made (tests and metrics).
    fetches: std::sync::atomic::AtomicU64,
}

impl JwksCache {
    /// A cache whose fetches give up after `timeout`.
    pub fn new(timeout: Duration, clock: SharedClock) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .user_agent(concat!("portcullis/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(JwksCache { http, clock, entries: DashMap::new(), fetches: Default::default() })
    }

    /// How many fetches this cache has made.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The key `kid` (or the set's only key, for a token without one) of the set at `url`.
    pub async fn key(&self, url: &Url, kid: Option<&str>) -> Result<Jwk, JwksError> {
        // A read of the map on every sign-in; the URL is cloned only the first time.
        let entry = match self.entries.get(url) {
            Some(entry) => Arc::clone(entry.value()),
            None => Arc::clone(self.entries.entry(url.clone()).or_default().value()),
        };
        let seen = {
            let state = entry.state();
            if let Some(answer) = self.without_fetch(&state, kid, self.clock.now()) {
                return answer;
            }
            state.attempts
        };
        let _fetching = entry.fetching.lock().await;
        // Someone fetched while this request waited: use what they got.
        if entry.state().attempts == seen {
            self.refresh(url, &entry).await;
        }
        let state = entry.state();
        match state.fetched.as_deref().and_then(|fetched| find(fetched, kid)) {
            Some(key) => Ok(key),
            None if state.last_failed || state.fetched.is_none() => Err(JwksError::Unavailable),
            None => Err(JwksError::UnknownKey),
        }
    }

    /// The answer from what `state` holds, when no fetch may or need be made:
    /// a fresh key; a stale one, or none, while the last attempt is too recent
    /// to try again.
    fn without_fetch(&self, state: &State, kid: Option<&str>, now: Timestamp) -> Option<Result<Jwk, JwksError>> {
        let since = |pause: Duration| state.last_attempt.is_some_and(|at| now.0 < at.plus(pause).0);
        let recent = since(if state.last_failed { RETRY_AFTER_FAILURE } else { MIN_FORCED_REFRESH });
        let fetched = state.fetched.as_deref();
        match fetched.map(|f| (find(f, kid), now < f.fresh_until)) {
            Some((Some(key), true)) => Some(Ok(key)),
            Some((Some(key), false)) if recent => Some(Ok(key)),
            Some((None, _)) | None if recent => Some(Err(if state.last_failed || fetched.is_none() {
                JwksError::Unavailable
            } else {
                JwksError::UnknownKey
            })),
            _ => None,
        }
    }

    /// Fetches the set at `url` into `entry`; a failure keeps what it held.
    async fn refresh(&self, url: &Url, entry: &Entry) {
        let started = self.clock.now();
        self.fetches.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let outcome = self.fetch(url).await;
        let mut state = entry.state();
        state.attempts += 1;
        state.last_attempt = Some(started);
        state.last_failed = outcome.is_err();
        match outcome {
            Ok((keys, max_age)) => {
                tracing::info!(url = %url, keys = keys.len(), "provider key set fetched");
                state.fetched = Some(Arc::new(Fetched { keys, fresh_until: started.plus(max_age) }));
            }
            Err(e) => {
                tracing::warn!(url = %url, error = %e, "fetching a provider key set failed; keeping the keys held")
            }
        }
    }

    async fn fetch(&self, url: &Url) -> anyhow::Result<(HashMap<String, Jwk>, Duration)> {
        let mut response = self.http.get(url.clone()).send().await?.error_for_status()?;
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .map_or(DEFAULT_MAX_AGE, |age| age.clamp(MIN_MAX_AGE, MAX_MAX_AGE));
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_JWKS_BYTES {
                anyhow::bail!("the key set is larger than {MAX_JWKS_BYTES} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        Ok((signing_keys(&serde_json::from_slice(&body)?)?, max_age))
    }
}

/// `max-age` of a `Cache-Control` value.
fn max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, seconds) = directive.trim().split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("max-age")
            .then(|| seconds.trim().trim_matches('"').parse().ok())
            .flatten()
            .map(Duration::from_secs)
    })
}

/// The signing keys of a JWKS document: each key read on its own (one key
/// of a kind this crate does not know does not hide the others).
fn signing_keys(document: &Value) -> anyhow::Result<HashMap<String, Jwk>> {
    let listed = document.get("keys").and_then(Value::as_array).ok_or_else(|| anyhow::anyhow!("no keys array"))?;
    let mut keys = HashMap::new();
    for raw in listed.iter().take(MAX_KEYS) {
        if raw.get("use").and_then(Value::as_str).is_some_and(|u| u != "sig") {
            continue;
        }
        let Ok(key) = serde_json::from_value::<Jwk>(raw.clone()) else { continue };
        if matches!(key.algorithm, AlgorithmParameters::OctetKey(_)) {
            continue;
        }
        keys.insert(key.common.key_id.clone().unwrap_or_default(), key);
    }
    Ok(keys)
}

/// The key `kid`, or with no `kid` the set's only key.
fn find(fetched: &Fetched, kid: Option<&str>) -> Option<Jwk> {
    match kid {
        Some(kid) => fetched.keys.get(kid).cloned(),
        None if fetched.keys.len() == 1 => fetched.keys.values().next().cloned(),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(max_age("public, max-age=19845, must-revalidate, no-transform"), Some(Duration::from_secs(19845)));
        assert_eq!(max_age("Max-Age = 60"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("no-cache"), None);
        assert_eq!(max_age("max-age=soon"), None);
    }

    #[test]
    fn only_signing_keys_are_kept() {
        let document = json!({"keys": [
            {"kty": "RSA", "kid": "r", "n": "AQAB", "e": "AQAB", "use": "sig", "alg": "RS256"},
            {"kty": "RSA", "kid": "enc", "n": "AQAB", "e": "AQAB", "use": "enc"},
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "weird", "kid": "w"},
            {"kty": "EC", "kid": "e", "crv": "P-256", "x": "AQAB", "y": "AQAB"},
        ]});
        let mut kids: Vec<String> = signing_keys(&document).unwrap().into_keys().collect();
        kids.sort();
        assert_eq!(kids, ["e", "r"]);
        assert!(signing_keys(&json!({"nokeys": []})).is_err());
    }
}
