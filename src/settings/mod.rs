//! Settings: an optional TOML file, then `PORTCULLIS_*` environment variables
//! that override it, validated once into typed values.
//!
//! Owns every tunable and its default, so the gateway runs with no file at
//! all. Unknown keys (in the file or as `PORTCULLIS_*` variables) are
//! refused, never ignored: a typo must not silently fall back to a default.
//! Never global: `Application::build` receives a `Settings` and hands pieces
//! of it down.

mod source;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use source::SettingError;
use source::Source;

/// Where records are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSetting {
    /// The embedded store under the data directory.
    Embedded,
    /// ScyllaDB or Cassandra: contact points and keyspace.
    Cql { hosts: Vec<String>, keyspace: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// argon2id cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// A quota for one kind of request per client IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateQuota {
    pub per_minute: u32,
    pub burst: u32,
}

#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Serve `/metrics` here (an internal address) instead of on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    pub data_dir: PathBuf,
    pub store: StoreSetting,
    /// The replication map of the CQL keyspace (`CREATE KEYSPACE ... WITH replication = ...`).
    pub cql_replication: String,
    /// Extra CQL keyspace options, such as `AND tablets = {'enabled': false}` on ScyllaDB.
    pub cql_keyspace_options: String,
    pub smtp_url: Option<String>,
    /// PEM root certificate(s) to trust for the SMTP relay (a private CA).
    pub smtp_ca_file: Option<PathBuf>,
    pub outbox_dir: PathBuf,
    /// The `From` of outgoing mail.
    pub mail_from: String,
    /// The project's name in mail and as the TOTP issuer (per project once projects land).
    pub project_name: String,
    /// Register answers 202 and login 403 `email_not_verified` until the emailed code is confirmed.
    pub require_email_verification: bool,
    /// `otp/login` creates an account for an unknown address.
    pub passwordless_signup: bool,
    /// `None`: `http://localhost:<bound port>`, known only once bound.
    pub public_url: Option<String>,
    /// `None`: the public URL.
    pub issuer: Option<String>,
    pub workers: usize,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub hash_threads: usize,
    pub hash_queue: usize,
    pub hash_deadline: Duration,
    pub hash_cost: HashCost,
    pub shards: usize,
    pub shard_mailbox: usize,
    pub token_cache_capacity: usize,
    /// How often the change feed is polled.
    pub feed_poll: Duration,
    /// How often noted API-key uses are written (`last_used_at` lags by up to this).
    pub key_usage_flush: Duration,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub rate_limit_enabled: bool,
    pub auth_rate: RateQuota,
    pub refresh_rate: RateQuota,
    pub lockout_threshold: u32,
    pub lockout_base: Duration,
    pub trusted_proxies: Vec<IpNet>,
    pub log_format: LogFormat,
    pub log_level: String,
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Settings {
    /// Reads `file` (if given) and the `PORTCULLIS_*` variables in `env`.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, SettingError> {
        let mut source = Source::new(file, env)?;
        let settings = Self::from_source(&mut source)?;
        source.reject_unknown()?;
        Ok(settings)
    }

    fn from_source(s: &mut Source) -> Result<Settings, SettingError> {
        let cores = cores();
        let data_dir: PathBuf = s.path("data_dir")?.unwrap_or_else(|| PathBuf::from("./data"));
        let outbox_dir = s.path("outbox_dir")?.unwrap_or_else(|| data_dir.join("outbox"));
        Ok(Settings {
            listen: s
                .parse("listen", "an address such as 127.0.0.1:8080")?
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
            metrics_listen: s.parse("metrics_listen", "an address such as 127.0.0.1:9100")?,
            store: s.store("store")?.unwrap_or(StoreSetting::Embedded),
            cql_replication: s
                .cql_clause("cql_replication", true)?
                .unwrap_or_else(|| "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}".to_owned()),
            cql_keyspace_options: s.cql_clause("cql_keyspace_options", false)?.unwrap_or_default(),
            smtp_url: s.text("smtp_url")?,
            smtp_ca_file: s.path("smtp_ca_file")?,
            outbox_dir,
            mail_from: s.text("mail_from")?.unwrap_or_else(|| "Portcullis <no-reply@localhost>".to_owned()),
            project_name: s.display_name("project_name", 64)?.unwrap_or_else(|| "Portcullis".to_owned()),
            require_email_verification: s.switch("require_email_verification")?.unwrap_or(false),
            passwordless_signup: s.switch("passwordless_signup")?.unwrap_or(false),
            data_dir,
            public_url: s.url("public_url")?,
            issuer: s.text("issuer")?,
            workers: s.count("workers", 1, 256)?.unwrap_or(cores),
            request_timeout: s.millis("request_timeout_ms", 100, 600_000)?.unwrap_or(Duration::from_secs(10)),
            shutdown_timeout: s.seconds("shutdown_timeout", 1, 3600)?.unwrap_or(Duration::from_secs(30)),
            hash_threads: s.count("hash_threads", 1, 256)?.unwrap_or(cores.saturating_sub(1).max(1)),
            hash_queue: s.count("hash_queue", 1, 1_000_000)?.unwrap_or(64),
            hash_deadline: s.millis("hash_deadline_ms", 10, 600_000)?.unwrap_or(Duration::from_secs(2)),
            hash_cost: HashCost {
                memory_kib: s.number("hash_memory_kib", 8, 4_194_304)?.unwrap_or(19_456),
                iterations: s.number("hash_iterations", 1, 64)?.unwrap_or(2),
                parallelism: s.number("hash_parallelism", 1, 16)?.unwrap_or(1),
            },
            shards: s.count("shards", 1, 4096)?.unwrap_or(64),
            shard_mailbox: s.count("shard_mailbox", 1, 1_000_000)?.unwrap_or(1024),
            token_cache_capacity: s.count("token_cache_capacity", 1, 100_000_000)?.unwrap_or(100_000),
            feed_poll: s.millis("feed_poll_ms", 10, 60_000)?.unwrap_or(Duration::from_millis(250)),
            key_usage_flush: s.millis("key_usage_flush_ms", 10, 600_000)?.unwrap_or(Duration::from_secs(5)),
            access_ttl: s.seconds("access_ttl", 1, 86_400)?.unwrap_or(Duration::from_secs(3600)),
            refresh_ttl: s.seconds("refresh_ttl", 60, 31_536_000)?.unwrap_or(Duration::from_secs(604_800)),
            refresh_reuse_grace: s.seconds("refresh_reuse_grace", 0, 3600)?.unwrap_or(Duration::from_secs(10)),
            rate_limit_enabled: s.switch("rate_limit")?.unwrap_or(true),
            auth_rate: RateQuota {
                per_minute: s.number("rate_limit_per_minute", 1, 1_000_000)?.unwrap_or(10),
                burst: s.number("rate_limit_burst", 1, 1_000_000)?.unwrap_or(5),
            },
            refresh_rate: RateQuota {
                per_minute: s.number("refresh_rate_per_minute", 1, 1_000_000)?.unwrap_or(60),
                burst: s.number("refresh_rate_burst", 1, 1_000_000)?.unwrap_or(20),
            },
            lockout_threshold: s.number("lockout_threshold", 1, 1000)?.unwrap_or(10),
            lockout_base: s.seconds("lockout_seconds", 1, 86_400)?.unwrap_or(Duration::from_secs(60)),
            trusted_proxies: s.networks("trusted_proxies")?.unwrap_or_default(),
            log_format: s.log_format("log_format")?.unwrap_or(LogFormat::Text),
            log_level: s.text("log_level")?.unwrap_or_else(|| "info".to_owned()),
        })
    }

    /// Port 0 on loopback, the given data directory, cheap hashing, no
    /// per-IP rate limits; every other value as in production.
    pub fn for_tests(data_dir: &Path) -> Settings {
        let mut settings = Settings::load(None, Vec::new()).unwrap_or_else(|e| unreachable!("defaults are valid: {e}"));
        settings.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.data_dir = data_dir.to_path_buf();
        settings.outbox_dir = data_dir.join("outbox");
        settings.workers = 2;
        settings.hash_threads = 2;
        settings.shards = 4;
        settings.hash_cost = HashCost { memory_kib: 64, iterations: 1, parallelism: 1 };
        settings.rate_limit_enabled = false;
        settings
    }

    /// The CQL target of a `cql://` store, with the keyspace settings.
    pub fn cql_target(&self) -> Option<crate::store::cql::CqlTarget> {
        match &self.store {
            StoreSetting::Cql { hosts, keyspace } => Some(crate::store::cql::CqlTarget {
                hosts: hosts.clone(),
                keyspace: keyspace.clone(),
                replication: self.cql_replication.clone(),
                keyspace_options: self.cql_keyspace_options.clone(),
            }),
            StoreSetting::Embedded => None,
        }
    }

    /// Whether `peer` is a proxy whose `X-Forwarded-For` we believe.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
    }

    /// The longest an access token can live: how long a retired signing key
    /// must keep verifying.
    pub fn max_access_ttl(&self) -> Duration {
        self.access_ttl
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let s = Settings::load(None, Vec::new()).unwrap();
        assert_eq!(s.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.store, StoreSetting::Embedded);
        assert_eq!(s.refresh_reuse_grace, Duration::from_secs(10));
        assert!(s.rate_limit_enabled);
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nshards = 3\n").unwrap();
        let s = Settings::load(Some(&file), env(&[("PORTCULLIS_SHARDS", "5")])).unwrap();
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.shards, 5);
    }

    #[test]
    fn invalid_value_names_the_setting() {
        let err = Settings::load(None, env(&[("PORTCULLIS_HASH_THREADS", "many")])).unwrap_err();
        assert!(err.to_string().contains("PORTCULLIS_HASH_THREADS"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = Settings::load(None, env(&[("PORTCULLIS_SHARDZ", "5")])).unwrap_err();
        assert!(err.to_string().contains("PORTCULLIS_SHARDZ"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "shardz = 3\n").unwrap();
        assert!(Settings::load(Some(&file), Vec::new()).unwrap_err().to_string().contains("shardz"));
    }

    #[test]
    fn cql_store_url_is_parsed() {
        let s = Settings::load(None, env(&[("PORTCULLIS_STORE", "cql://a:9042,b:9042/auth")])).unwrap();
        assert_eq!(
            s.store,
            StoreSetting::Cql { hosts: vec!["a:9042".into(), "b:9042".into()], keyspace: "auth".into() }
        );
        assert!(Settings::load(None, env(&[("PORTCULLIS_STORE", "mysql://x")])).is_err());
    }

    #[test]
    fn cql_keyspace_clauses_are_checked() {
        let s = Settings::load(None, env(&[("PORTCULLIS_CQL_KEYSPACE_OPTIONS", "AND tablets = {'enabled': false}")]))
            .unwrap();
        assert_eq!(s.cql_keyspace_options, "AND tablets = {'enabled': false}");
        assert!(Settings::load(None, env(&[("PORTCULLIS_CQL_KEYSPACE_OPTIONS", "tablets = x")])).is_err());
        assert!(
            Settings::load(None, env(&[("PORTCULLIS_CQL_REPLICATION", "{'class': 'X'}; DROP KEYSPACE k")])).is_err()
        );
    }

    #[test]
    fn rate_limit_off_and_trusted_proxies() {
        let s = Settings::load(
            None,
            env(&[("PORTCULLIS_RATE_LIMIT", "off"), ("PORTCULLIS_TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")]),
        )
        .unwrap();
        assert!(!s.rate_limit_enabled);
        assert!(s.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(s.is_trusted_proxy("127.0.0.1".parse().unwrap()));
        assert!(!s.is_trusted_proxy("192.168.0.1".parse().unwrap()));
    }
}
