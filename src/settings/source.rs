//! Raw setting values and their typed readers. A value is read at most once;
//! what is left unread afterwards is an unknown key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ipnet::IpNet;

use super::{LogFormat, StoreSetting};

const ENV_PREFIX: &str = "PORTCULLIS_";

/// One bad setting, named as the operator wrote it.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {problem}")]
pub struct SettingError {
    pub name: String,
    pub problem: String,
}

/// Where a raw value came from, for error messages.
#[derive(Debug, Clone)]
enum Origin {
    File(PathBuf),
    Env,
}

#[derive(Debug)]
struct Raw {
    value: String,
    origin: Origin,
}

pub(super) struct Source {
    values: BTreeMap<String, Raw>,
}

fn env_name(key: &str) -> String {
    format!("{ENV_PREFIX}{}", key.to_uppercase())
}

impl Raw {
    fn name(&self, key: &str) -> String {
        match &self.origin {
            Origin::File(path) => format!("{key} (in {})", path.display()),
            Origin::Env => env_name(key),
        }
    }
}

fn toml_to_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        toml::Value::Array(items) => items.iter().map(toml_to_text).collect::<Option<Vec<_>>>().map(|v| v.join(",")),
        toml::Value::Datetime(_) | toml::Value::Table(_) => None,
    }
}

impl Source {
    pub(super) fn new(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingError> {
        let mut values = BTreeMap::new();
        if let Some(path) = file {
            let file_error = |problem: String| SettingError { name: format!("--config {}", path.display()), problem };
            let text = std::fs::read_to_string(path).map_err(|e| file_error(format!("cannot read it: {e}")))?;
            let table: toml::Table = text.parse().map_err(|e: toml::de::Error| file_error(e.message().to_owned()))?;
            for (key, value) in table {
                let origin = Origin::File(path.to_path_buf());
                let Some(value) = toml_to_text(&value) else {
                    let raw = Raw { value: String::new(), origin };
                    return Err(SettingError {
                        name: raw.name(&key),
                        problem: "must be a string, number, boolean or list".into(),
                    });
                };
                values.insert(key.to_lowercase(), Raw { value, origin });
            }
        }
        for (name, value) in env {
            if let Some(key) = name.strip_prefix(ENV_PREFIX) {
                values.insert(key.to_lowercase(), Raw { value, origin: Origin::Env });
            }
        }
        Ok(Source { values })
    }

    /// Fails on the first key no reader asked for.
    pub(super) fn reject_unknown(&self) -> Result<(), SettingError> {
        match self.values.iter().next() {
            Some((key, raw)) => Err(SettingError { name: raw.name(key), problem: "is not a known setting".into() }),
            None => Ok(()),
        }
    }

    /// Takes the raw value of `key` and converts it, naming the setting on failure.
    fn take<T>(
        &mut self,
        key: &str,
        convert: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<Option<T>, SettingError> {
        let Some(raw) = self.values.remove(key) else { return Ok(None) };
        convert(raw.value.trim()).map(Some).map_err(|problem| SettingError { name: raw.name(key), problem })
    }

    pub(super) fn text(&mut self, key: &str) -> Result<Option<String>, SettingError> {
        self.take(key, |v| if v.is_empty() { Err("must not be empty".into()) } else { Ok(v.to_owned()) })
    }

    /// A short display name: at most `max` characters, no control
    /// characters and no `:` (it is the TOTP issuer in otpauth URIs).
    pub(super) fn display_name(&mut self, key: &str, max: usize) -> Result<Option<String>, SettingError> {
        self.take(key, |v| {
            let v = v.trim();
            if v.is_empty() || v.chars().count() > max {
                Err(format!("must be 1 to {max} characters"))
            } else if v.chars().any(|c| c.is_control() || c == ':') {
                Err("must not contain ':' or control characters".into())
            } else {
                Ok(v.to_owned())
            }
        })
    }

    pub(super) fn path(&mut self, key: &str) -> Result<Option<PathBuf>, SettingError> {
        Ok(self.text(key)?.map(PathBuf::from))
    }

    pub(super) fn parse<T: FromStr>(&mut self, key: &str, expected: &str) -> Result<Option<T>, SettingError> {
        self.take(key, |v| v.parse().map_err(|_| format!("expected {expected}, got {v:?}")))
    }

    pub(super) fn number<T>(&mut self, key: &str, min: T, max: T) -> Result<Option<T>, SettingError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        self.take(key, |v| match v.parse::<T>() {
            Ok(n) if n >= min && n <= max => Ok(n),
            _ => Err(format!("expected a whole number from {min} to {max}, got {v:?}")),
        })
    }

    pub(super) fn count(&mut self, key: &str, min: usize, max: usize) -> Result<Option<usize>, SettingError> {
        self.number(key, min, max)
    }

    pub(super) fn seconds(&mut self, key: &str, min: u64, max: u64) -> Result<Option<Duration>, SettingError> {
        Ok(self.number(key, min, max)?.map(Duration::from_secs))
    }

    pub(super) fn millis(&mut self, key: &str, min: u64, max: u64) -> Result<Option<Duration>, SettingError> {
        Ok(self.number(key, min, max)?.map(Duration::from_millis))
    }

    pub(super) fn switch(&mut self, key: &str) -> Result<Option<bool>, SettingError> {
        self.take(key, |v| match v.to_ascii_lowercase().as_str() {
            "on" | "true" | "1" | "yes" => Ok(true),
            "off" | "false" | "0" | "no" => Ok(false),
            _ => Err(format!("expected on or off, got {v:?}")),
        })
    }

    pub(super) fn url(&mut self, key: &str) -> Result<Option<String>, SettingError> {
        self.take(key, |v| {
            let rest = v.strip_prefix("https://").or_else(|| v.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() => Ok(v.trim_end_matches('/').to_owned()),
                _ => Err(format!("expected an http:// or https:// URL, got {v:?}")),
            }
        })
    }

    pub(super) fn log_format(&mut self, key: &str) -> Result<Option<LogFormat>, SettingError> {
        self.take(key, |v| match v {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("expected text or json, got {v:?}")),
        })
    }

    /// A comma-separated list of HTTP header names (RFC 9110 tokens),
    /// lower-cased; `Authorization` is refused (it is read on its own).
    pub(super) fn header_names(&mut self, key: &str) -> Result<Option<Vec<String>>, SettingError> {
        self.take(key, |v| {
            let names: Vec<String> =
                v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_ascii_lowercase).collect();
            if names.is_empty() || names.len() > 8 {
                return Err("expected 1 to 8 comma-separated header names".into());
            }
            for name in &names {
                let token = name.len() <= 64
                    && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
                if !token || name == "authorization" {
                    return Err(format!("{name:?} is not a header name an API key can be sent in"));
                }
            }
            Ok(names)
        })
    }

    pub(super) fn networks(&mut self, key: &str) -> Result<Option<Vec<IpNet>>, SettingError> {
        self.take(key, |v| {
            v.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| {
                    s.parse::<IpNet>()
                        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                        .map_err(|_| format!("expected IP addresses or CIDR ranges, got {s:?}"))
                })
                .collect()
        })
    }

    /// A fragment of CQL DDL from the operator: a `{...}` map (`map` true)
    /// or clauses starting with `AND`; never a second statement.
    pub(super) fn cql_clause(&mut self, key: &str, map: bool) -> Result<Option<String>, SettingError> {
        self.take(key, |v| {
            let shaped = if map { v.starts_with('{') && v.ends_with('}') } else { v.to_ascii_uppercase().starts_with("AND ") };
            let safe = !v.contains(';') && !v.contains("--") && !v.contains("/*");
            if shaped && safe {
                Ok(v.to_owned())
            } else if map {
                Err(format!("expected a replication map such as {{'class': 'NetworkTopologyStrategy', 'datacenter1': 3}}, got {v:?}"))
            } else {
                Err(format!("expected keyspace options starting with AND, got {v:?}"))
            }
        })
    }

    pub(super) fn store(&mut self, key: &str) -> Result<Option<StoreSetting>, SettingError> {
        self.take(key, |v| {
            if v == "embedded" {
                return Ok(StoreSetting::Embedded);
            }
            let usage = || format!("expected embedded or cql://host:port,.../keyspace, got {v:?}");
            let rest = v.strip_prefix("cql://").ok_or_else(usage)?;
            let (hosts, keyspace) = rest.split_once('/').ok_or_else(usage)?;
            let hosts: Vec<String> =
                hosts.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect();
            let keyspace_ok = !keyspace.is_empty()
                && keyspace.len() <= 48
                && keyspace.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if hosts.is_empty() || !keyspace_ok {
                return Err(usage());
            }
            Ok(StoreSetting::Cql { hosts, keyspace: keyspace.to_owned() })
        })
    }
}
