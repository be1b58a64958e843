//! A project's settings: what a project sets for itself (`SettingsOverrides`,
//! stored), the node's defaults for what it leaves unset
//! (`SettingsDefaults`, from the node's settings), and the two merged
//! (`ProjectSettings`, what the flows use and the admin API shows).
//!
//! A change is a JSON object of settings (`SettingsPatch`): each known key is
//! checked for its type and range, an unknown key is refused, and `null`
//! sets a key back to the node's default. Every problem is reported, by key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::settings::Settings;

/// What a project sets for itself; `None`: the node's default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingsOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_ttl: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_reuse_grace: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_registration: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require_email_verification: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passwordless_signup: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_envelope: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_min_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_providers: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_burst: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_seconds: Option<u64>,
}

/// The node's settings for what a project leaves unset.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingsDefaults {
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub allow_registration: bool,
    pub require_email_verification: bool,
    pub passwordless_signup: bool,
    /// Every `/auth` answer wrapped in `{success, data}` (seed 003's clients).
    pub response_envelope: bool,
    pub password_min_length: u32,
    /// Per client IP, on the sign-in routes (login, register, codes, reset, 2FA).
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    /// Failed sign-ins of one account before it locks, and the first lock.
    pub lockout_threshold: u32,
    pub lockout_base: Duration,
}

impl SettingsDefaults {
    /// The node's settings for what a project leaves unset.
    pub fn of(node: &Settings) -> Self {
        SettingsDefaults {
            access_ttl: node.token.access_ttl,
            refresh_ttl: node.token.refresh_ttl,
            refresh_reuse_grace: node.token.refresh_reuse_grace,
            allow_registration: node.flows.allow_registration,
            require_email_verification: node.flows.require_email_verification,
            passwordless_signup: node.flows.passwordless_signup,
            response_envelope: node.flows.response_envelope,
            password_min_length: u32::try_from(crate::account::PASSWORD_MIN_CHARS).unwrap_or(u32::MAX),
            rate_limit_per_minute: node.limits.auth_rate.per_minute,
            rate_limit_burst: node.limits.auth_rate.burst,
            lockout_threshold: node.limits.lockout_threshold,
            lockout_base: node.limits.lockout_base,
        }
    }
}

/// A project's settings in force: its own, else the node's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectSettings {
    pub access_ttl: u64,
    pub refresh_ttl: u64,
    pub refresh_reuse_grace: u64,
    pub allow_registration: bool,
    pub require_email_verification: bool,
    pub passwordless_signup: bool,
    pub response_envelope: bool,
    pub password_min_length: u32,
    pub oidc_providers: Map<String, Value>,
    pub rate_limit_per_minute: u32,
    pub rate_limit_burst: u32,
    pub lockout_threshold: u32,
    /// Seconds of the first lock; each next one doubles.
    pub lockout_seconds: u64,
}

impl ProjectSettings {
    pub fn merged(own: &SettingsOverrides, node: &SettingsDefaults) -> Self {
        ProjectSettings {
            access_ttl: own.access_ttl.unwrap_or(node.access_ttl.as_secs()),
            refresh_ttl: own.refresh_ttl.unwrap_or(node.refresh_ttl.as_secs()),
            refresh_reuse_grace: own.refresh_reuse_grace.unwrap_or(node.refresh_reuse_grace.as_secs()),
            allow_registration: own.allow_registration.unwrap_or(node.allow_registration),
            require_email_verification: own.require_email_verification.unwrap_or(node.require_email_verification),
            passwordless_signup: own.passwordless_signup.unwrap_or(node.passwordless_signup),
            response_envelope: own.response_envelope.unwrap_or(node.response_envelope),
            password_min_length: own.password_min_length.unwrap_or(node.password_min_length),
            oidc_providers: own.oidc_providers.clone().unwrap_or_default(),
            rate_limit_per_minute: own.rate_limit_per_minute.unwrap_or(node.rate_limit_per_minute),
            rate_limit_burst: own.rate_limit_burst.unwrap_or(node.rate_limit_burst),
            lockout_threshold: own.lockout_threshold.unwrap_or(node.lockout_threshold),
            lockout_seconds: own.lockout_seconds.unwrap_or(node.lockout_base.as_secs()),
        }
    }

    pub fn lockout_base(&self) -> Duration {
        Duration::from_secs(self.lockout_seconds)
    }

    pub fn access_ttl(&self) -> Duration {
        Duration::from_secs(self.access_ttl)
    }

    pub fn refresh_ttl(&self) -> Duration {
        Duration::from_secs(self.refresh_ttl)
    }

    pub fn refresh_reuse_grace(&self) -> Duration {
        Duration::from_secs(self.refresh_reuse_grace)
    }
}

/// The ranges a setting may take (seconds for the TTLs).
pub const ACCESS_TTL: (u64, u64) = (60, crate::settings::MAX_ACCESS_TTL_SECS);
pub const REFRESH_TTL: (u64, u64) = (300, 31_536_000);
pub const REFRESH_REUSE_GRACE: (u64, u64) = (0, 300);
pub const PASSWORD_MIN_LENGTH: (u64, u64) = (8, 128);
pub const RATE_LIMIT: (u64, u64) = (1, 100_000);
pub const LOCKOUT_THRESHOLD: (u64, u64) = (1, 1000);
pub const LOCKOUT_SECONDS: (u64, u64) = (1, 86_400);
/// The most OIDC providers one project may name.
pub const MAX_OIDC_PROVIDERS: usize = 16;

/// Problems with a change of settings, by key.
pub type SettingsProblems = BTreeMap<String, String>;

fn integer(value: &Value, (low, high): (u64, u64), unit: &str) -> Result<u64, String> {
    match value.as_u64() {
        Some(n) if (low..=high).contains(&n) => Ok(n),
        Some(_) => Err(format!("must be between {low} and {high}{unit}")),
        None if value.is_number() => Err(format!("must be a whole number between {low} and {high}{unit}")),
        None => Err("must be an integer".into()),
    }
}

/// An integer in `range` that fits a `u32`.
fn small((low, high): (u64, u64), unit: &'static str) -> impl Fn(&Value) -> Result<u32, String> {
    move |value| integer(value, (low, high), unit).map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn boolean(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| "must be true or false".into())
}

fn providers(value: &Value) -> Result<Map<String, Value>, String> {
    let map = value.as_object().ok_or("must be an object of providers by name")?;
    if map.len() > MAX_OIDC_PROVIDERS {
        return Err(format!("at most {MAX_OIDC_PROVIDERS} providers"));
    }
    for (name, provider) in map {
        crate::oidc::Provider::parse(name, provider).map_err(|problem| format!("{name}: {problem}"))?;
    }
    Ok(map.clone())
}

/// One validated change of one setting; `None` sets it back to the node's default.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    AccessTtl(Option<u64>),
    RefreshTtl(Option<u64>),
    RefreshReuseGrace(Option<u64>),
    AllowRegistration(Option<bool>),
    RequireEmailVerification(Option<bool>),
    PasswordlessSignup(Option<bool>),
    ResponseEnvelope(Option<bool>),
    PasswordMinLength(Option<u32>),
    OidcProviders(Option<Map<String, Value>>),
    RateLimitPerMinute(Option<u32>),
    RateLimitBurst(Option<u32>),
    LockoutThreshold(Option<u32>),
    LockoutSeconds(Option<u64>),
}

/// `value` parsed, or `None` for `null`.
fn optional<T>(value: &Value, parse: impl FnOnce(&Value) -> Result<T, String>) -> Result<Option<T>, String> {
    if value.is_null() { Ok(None) } else { parse(value).map(Some) }
}

fn change(key: &str, value: &Value) -> Result<Change, String> {
    let seconds = |range| move |v: &Value| integer(v, range, " seconds");
    Ok(match key {
        "access_ttl" => Change::AccessTtl(optional(value, seconds(ACCESS_TTL))?),
        "refresh_ttl" => Change::RefreshTtl(optional(value, seconds(REFRESH_TTL))?),
        "refresh_reuse_grace" => Change::RefreshReuseGrace(optional(value, seconds(REFRESH_REUSE_GRACE))?),
        "allow_registration" => Change::AllowRegistration(optional(value, boolean)?),
        "require_email_verification" => Change::RequireEmailVerification(optional(value, boolean)?),
        "passwordless_signup" => Change::PasswordlessSignup(optional(value, boolean)?),
        "response_envelope" => Change::ResponseEnvelope(optional(value, boolean)?),
        "password_min_length" => Change::PasswordMinLength(optional(value, |v| {
            integer(v, PASSWORD_MIN_LENGTH, " characters").map(|n| u32::try_from(n).unwrap_or(u32::MAX))
        })?),
        "oidc_providers" => Change::OidcProviders(optional(value, providers)?),
        "rate_limit_per_minute" => Change::RateLimitPerMinute(optional(value, small(RATE_LIMIT, " requests"))?),
        "rate_limit_burst" => Change::RateLimitBurst(optional(value, small(RATE_LIMIT, " requests"))?),
        "lockout_threshold" => Change::LockoutThreshold(optional(value, small(LOCKOUT_THRESHOLD, " failures"))?),
        "lockout_seconds" => Change::LockoutSeconds(optional(value, seconds(LOCKOUT_SECONDS))?),
        _ => return Err("unknown setting".into()),
    })
}

/// A change of settings, checked: every key known, every value of its type and range.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SettingsPatch(Vec<(String, Change)>);

impl SettingsPatch {
    /// Checks a JSON object of settings; every problem is named by its key.
    pub fn parse(patch: &Value) -> Result<Self, SettingsProblems> {
        let Some(patch) = patch.as_object() else {
            return Err(BTreeMap::from([(String::new(), "must be an object of settings".to_owned())]));
        };
        let mut changes = Vec::new();
        let mut problems = SettingsProblems::new();
        for (key, value) in patch {
            match change(key, value) {
                Ok(change) => changes.push((key.clone(), change)),
                Err(problem) => {
                    problems.insert(key.clone(), problem);
                }
            }
        }
        if problems.is_empty() { Ok(SettingsPatch(changes)) } else { Err(problems) }
    }

    /// The keys it changes, in order (for the audit log).
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(key, _)| key.as_str())
    }

    /// `own` with this patch merged in.
    pub fn apply(&self, own: &SettingsOverrides) -> SettingsOverrides {
        let mut next = own.clone();
        for (_, change) in &self.0 {
            match change.clone() {
                Change::AccessTtl(v) => next.access_ttl = v,
                Change::RefreshTtl(v) => next.refresh_ttl = v,
                Change::RefreshReuseGrace(v) => next.refresh_reuse_grace = v,
                Change::AllowRegistration(v) => next.allow_registration = v,
                Change::RequireEmailVerification(v) => next.require_email_verification = v,
                Change::PasswordlessSignup(v) => next.passwordless_signup = v,
                Change::ResponseEnvelope(v) => next.response_envelope = v,
                Change::PasswordMinLength(v) => next.password_min_length = v,
                Change::OidcProviders(v) => next.oidc_providers = v,
                Change::RateLimitPerMinute(v) => next.rate_limit_per_minute = v,
                Change::RateLimitBurst(v) => next.rate_limit_burst = v,
                Change::LockoutThreshold(v) => next.lockout_threshold = v,
                Change::LockoutSeconds(v) => next.lockout_seconds = v,
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A node with no settings of its own.
    fn defaults() -> SettingsDefaults {
        SettingsDefaults::of(&Settings::load(None, Vec::new()).unwrap())
    }

    #[test]
    fn unset_settings_are_the_nodes() {
        let merged = ProjectSettings::merged(&SettingsOverrides::default(), &defaults());
        assert_eq!(merged.access_ttl, 3600);
        assert_eq!(merged.refresh_ttl, 604_800);
        assert!(merged.allow_registration);
        assert!(merged.oidc_providers.is_empty());
    }

    #[test]
    fn a_patch_merges_and_null_restores_the_default() {
        let patch = |value| SettingsPatch::parse(&value).unwrap();
        let own = patch(json!({"access_ttl": 600, "allow_registration": false})).apply(&SettingsOverrides::default());
        let own = patch(json!({"password_min_length": 12})).apply(&own);
        let merged = ProjectSettings::merged(&own, &defaults());
        assert_eq!((merged.access_ttl, merged.allow_registration, merged.password_min_length), (600, false, 12));
        let own = patch(json!({"access_ttl": null})).apply(&own);
        assert_eq!(own.access_ttl, None);
        assert_eq!(ProjectSettings::merged(&own, &defaults()).access_ttl, 3600);
    }

    #[test]
    fn every_bad_value_is_named() {
        let problems = SettingsPatch::parse(
            &json!({"access_ttl": -5, "refresh_ttl": "long", "allow_registration": 1, "colour": "red",
                    "password_min_length": 4, "refresh_reuse_grace": 1.5, "oidc_providers": []}),
        )
        .unwrap_err();
        let keys: Vec<&str> = problems.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "access_ttl",
                "allow_registration",
                "colour",
                "oidc_providers",
                "password_min_length",
                "refresh_reuse_grace",
                "refresh_ttl"
            ]
        );
        assert_eq!(problems["colour"], "unknown setting");
        assert!(problems["access_ttl"].contains("between 60 and 86400"), "{}", problems["access_ttl"]);
        assert!(SettingsPatch::parse(&json!([1])).is_err());
    }
}
