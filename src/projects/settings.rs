//! A project's settings: what a project sets for itself (`SettingsOverrides`,
//! stored), the node's defaults for what it leaves unset
//! (`SettingsDefaults`, from the node's settings), and the two merged
//! (`ProjectSettings`, what the flows use and the admin API shows).
//!
//! A change is a JSON object of settings (`apply_patch`): each known key is
//! checked for its type and range, an unknown key is refused, and `null`
//! sets a key back to the node's default. Every problem is reported, by key.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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
    pub password_min_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc_providers: Option<Map<String, Value>>,
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
    pub password_min_length: u32,
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
    pub password_min_length: u32,
    pub oidc_providers: Map<String, Value>,
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
            password_min_length: own.password_min_length.unwrap_or(node.password_min_length),
            oidc_providers: own.oidc_providers.clone().unwrap_or_default(),
        }
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
pub const ACCESS_TTL: (u64, u64) = (60, 86_400);
pub const REFRESH_TTL: (u64, u64) = (300, 31_536_000);
pub const REFRESH_REUSE_GRACE: (u64, u64) = (0, 300);
pub const PASSWORD_MIN_LENGTH: (u64, u64) = (8, 128);
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

fn boolean(value: &Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| "must be true or false".into())
}

fn providers(value: &Value) -> Result<Map<String, Value>, String> {
    let map = value.as_object().ok_or("must be an object of providers by name")?;
    if map.len() > MAX_OIDC_PROVIDERS {
        return Err(format!("at most {MAX_OIDC_PROVIDERS} providers"));
    }
    if !map.values().all(Value::is_object) {
        return Err("each provider must be an object".into());
    }
    Ok(map.clone())
}

/// Sets `value` (or, for `null`, the node's default) into `slot` when it parses.
fn set<T>(slot: &mut Option<T>, value: &Value, parse: impl FnOnce(&Value) -> Result<T, String>) -> Result<(), String> {
    *slot = if value.is_null() { None } else { Some(parse(value)?) };
    Ok(())
}

/// `own` with `patch` merged in, or every problem with `patch` by key.
pub fn apply_patch(own: &SettingsOverrides, patch: &Value) -> Result<SettingsOverrides, SettingsProblems> {
    let Some(patch) = patch.as_object() else {
        return Err(BTreeMap::from([("settings".to_owned(), "must be an object".to_owned())]));
    };
    let mut next = own.clone();
    let mut problems = SettingsProblems::new();
    for (key, value) in patch {
        let outcome = match key.as_str() {
            "access_ttl" => set(&mut next.access_ttl, value, |v| integer(v, ACCESS_TTL, " seconds")),
            "refresh_ttl" => set(&mut next.refresh_ttl, value, |v| integer(v, REFRESH_TTL, " seconds")),
            "refresh_reuse_grace" => {
                set(&mut next.refresh_reuse_grace, value, |v| integer(v, REFRESH_REUSE_GRACE, " seconds"))
            }
            "allow_registration" => set(&mut next.allow_registration, value, boolean),
            "require_email_verification" => set(&mut next.require_email_verification, value, boolean),
            "passwordless_signup" => set(&mut next.passwordless_signup, value, boolean),
            "password_min_length" => set(&mut next.password_min_length, value, |v| {
                integer(v, PASSWORD_MIN_LENGTH, " characters").map(|n| u32::try_from(n).unwrap_or(u32::MAX))
            }),
            "oidc_providers" => set(&mut next.oidc_providers, value, providers),
            _ => Err("unknown setting".into()),
        };
        if let Err(problem) = outcome {
            problems.insert(key.clone(), problem);
        }
    }
    if problems.is_empty() { Ok(next) } else { Err(problems) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn defaults() -> SettingsDefaults {
        SettingsDefaults {
            access_ttl: Duration::from_secs(3600),
            refresh_ttl: Duration::from_secs(604_800),
            refresh_reuse_grace: Duration::from_secs(10),
            allow_registration: true,
            require_email_verification: false,
            passwordless_signup: false,
            password_min_length: 8,
        }
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
        let own = apply_patch(&SettingsOverrides::default(), &json!({"access_ttl": 600, "allow_registration": false}))
            .unwrap();
        let own = apply_patch(&own, &json!({"password_min_length": 12})).unwrap();
        let merged = ProjectSettings::merged(&own, &defaults());
        assert_eq!((merged.access_ttl, merged.allow_registration, merged.password_min_length), (600, false, 12));
        let own = apply_patch(&own, &json!({"access_ttl": null})).unwrap();
        assert_eq!(own.access_ttl, None);
        assert_eq!(ProjectSettings::merged(&own, &defaults()).access_ttl, 3600);
    }

    #[test]
    fn every_bad_value_is_named() {
        let problems = apply_patch(
            &SettingsOverrides::default(),
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
        assert!(apply_patch(&SettingsOverrides::default(), &json!([1])).is_err());
    }
}
