//! Settings: an optional TOML file, then `PORTCULLIS_*` environment variables
//! that override it, validated once into typed values.
//!
//! Owns every tunable and its default, so the gateway runs with no file at
//! all. Unknown keys (in the file or as `PORTCULLIS_*` variables) are
//! refused, never ignored: a typo must not silently fall back to a default.
//! Never global: `Application::build` receives a `Settings` and hands each
//! subsystem its group. Depends on nothing else in the crate: every other
//! module may read settings, settings read no other module.

mod source;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

pub use source::SettingError;
use source::Source;

/// The longest `access_ttl` anything may set (the node's setting, a project's).
pub const MAX_ACCESS_TTL_SECS: u64 = 86_400;

/// Where records are kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSetting {
    /// The embedded store under the data directory.
    Embedded,
    /// ScyllaDB or Cassandra: contact points and keyspace.
    Cql { hosts: Vec<String>, keyspace: String },
}

/// The consistency level of the CQL store's reads and writes
/// (`cql_consistency`). `EACH_QUORUM` and `ANY` are not offered: the store
/// reads with the same level it writes with, and Cassandra allows those two
/// for writes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CqlConsistency {
    One,
    Two,
    Three,
    Quorum,
    All,
    #[default]
    LocalQuorum,
    LocalOne,
}

impl std::str::FromStr for CqlConsistency {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        Ok(match text.to_ascii_uppercase().as_str() {
            "ONE" => CqlConsistency::One,
            "TWO" => CqlConsistency::Two,
            "THREE" => CqlConsistency::Three,
            "QUORUM" => CqlConsistency::Quorum,
            "ALL" => CqlConsistency::All,
            "LOCAL_QUORUM" => CqlConsistency::LocalQuorum,
            "LOCAL_ONE" => CqlConsistency::LocalOne,
            _ => return Err(()),
        })
    }
}

/// The serial consistency of the CQL store's lightweight transactions
/// (`cql_serial_consistency`): Paxos across every data center, or the local one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CqlSerialConsistency {
    Serial,
    #[default]
    LocalSerial,
}

impl std::str::FromStr for CqlSerialConsistency {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text.to_ascii_uppercase().as_str() {
            "SERIAL" => Ok(CqlSerialConsistency::Serial),
            "LOCAL_SERIAL" => Ok(CqlSerialConsistency::LocalSerial),
            _ => Err(()),
        }
    }
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

/// Where and how to reach a CQL database (ScyllaDB or Cassandra).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CqlTarget {
    pub hosts: Vec<String>,
    pub keyspace: String,
    /// The replication map of `CREATE KEYSPACE`.
    pub replication: String,
    /// Extra keyspace options, appended after the replication clause.
    pub keyspace_options: String,
    pub consistency: CqlConsistency,
    pub serial_consistency: CqlSerialConsistency,
}

/// Everything tunable, one group per subsystem. The file keys and
/// `PORTCULLIS_*` names stay flat (`hash_threads`, `PORTCULLIS_SHARDS`); the
/// grouping is how the code hands each subsystem its own part.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Signing keys, secrets, and the embedded store's files.
    pub data_dir: PathBuf,
    pub http: HttpSettings,
    pub hash: HashSettings,
    pub token: TokenSettings,
    pub store: StoreSettings,
    pub shards: ShardSettings,
    pub mail: MailSettings,
    pub limits: LimitSettings,
    pub flows: FlowSettings,
    pub log: LogSettings,
}

/// The listeners and the request path.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    /// Serve `/metrics` here (an internal address) instead of on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// How many projects (the oldest first) get a `project` metric label of
    /// their own; the others are `other`, so series stay bounded.
    pub metrics_project_labels: usize,
    /// `None`: `http://localhost:<bound port>`, known only once bound.
    pub public_url: Option<String>,
    pub workers: usize,
    pub request_timeout: Duration,
    /// How long a client may take to send a request's head (the request
    /// line and headers); past it the connection is answered 408 and closed.
    pub client_header_timeout: Duration,
    /// How long a client may take to send a request's body, from the first
    /// byte; past it the request answers 408 `request_timeout`.
    pub client_body_timeout: Duration,
    /// Open connections the node accepts (across its workers); beyond it
    /// new ones wait in the listen backlog.
    pub max_connections: usize,
    /// How long shutdown may take: in-flight requests, then background work.
    pub shutdown_timeout: Duration,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Headers an API key may come in besides `Authorization: Bearer`
    /// (lower-case; `x-api-key` by default).
    pub api_key_headers: Vec<String>,
}

/// The argon2id pool.
#[derive(Debug, Clone, Copy)]
pub struct HashSettings {
    pub threads: usize,
    pub queue: usize,
    pub deadline: Duration,
    pub cost: HashCost,
}

/// Access and refresh tokens, the verified-token cache, API-key use.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// `None`: the public URL.
    pub issuer: Option<String>,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub cache_capacity: usize,
    /// How often noted API-key uses are written (`last_used_at` lags by up to this).
    pub key_usage_flush: Duration,
}

/// The store backend and the change feed over it.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub backend: StoreSetting,
    /// The replication map of the CQL keyspace (`CREATE KEYSPACE ... WITH replication = ...`).
    pub cql_replication: String,
    /// Extra CQL keyspace options, such as `AND tablets = {'enabled': false}` on ScyllaDB.
    pub cql_keyspace_options: String,
    pub cql_consistency: CqlConsistency,
    pub cql_serial_consistency: CqlSerialConsistency,
    /// How often the change feed is polled.
    pub feed_poll: Duration,
    /// How long audit events are kept (`audit_retention_days`).
    pub audit_retention: Duration,
    /// Bytes the embedded store keeps free on its disk: below it, writes
    /// answer 503 `store_unavailable` and reads go on (`embedded_min_free_mb`).
    pub embedded_min_free: u64,
    /// The most memory the embedded store's page cache takes (`embedded_cache_mb`).
    pub embedded_cache: usize,
    /// How often expired sessions, codes and audit events are deleted
    /// (`sweep_interval`; the CQL store's rows carry TTLs instead).
    pub sweep_interval: Duration,
}

/// The user shards.
#[derive(Debug, Clone, Copy)]
pub struct ShardSettings {
    pub count: usize,
    /// Commands waiting per shard at most.
    pub mailbox: usize,
}

/// Outgoing mail.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `None`: the outbox directory.
    pub smtp_url: Option<String>,
    /// PEM root certificate(s) to trust for the SMTP relay (a private CA).
    pub smtp_ca_file: Option<PathBuf>,
    pub outbox_dir: PathBuf,
    /// The `From` of outgoing mail.
    pub from: String,
}

/// Per-IP rate limits and the per-account failed-login lock.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    pub rate_limit_enabled: bool,
    pub auth_rate: RateQuota,
    pub refresh_rate: RateQuota,
    /// Client keys one rate limiter holds at most (`rate_limit_max_keys`).
    pub max_keys: usize,
    pub lockout_threshold: u32,
    pub lockout_base: Duration,
    /// Failed-attempt keys (accounts, unknown names) the node remembers at
    /// most, across its shards (`lockout_max_entries`).
    pub lockout_max_entries: usize,
}

/// How the sign-in flows behave (per project once projects land).
#[derive(Debug, Clone)]
pub struct FlowSettings {
    /// The project's name in mail and as the TOTP issuer.
    pub project_name: String,
    /// Register answers 202 and login 403 `email_not_verified` until the emailed code is confirmed.
    pub require_email_verification: bool,
    /// `otp/login` creates an account for an unknown address.
    pub passwordless_signup: bool,
    /// `register` is open (a project may override it); closed, it still
    /// makes the first user of a fresh install.
    pub allow_registration: bool,
    /// A project's `/auth` answers come wrapped in `{success, data}` (a
    /// project may override it).
    pub response_envelope: bool,
    /// How long fetching an OIDC provider's key set may take.
    pub oidc_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
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
            http: HttpSettings {
                listen: s
                    .parse("listen", "an address such as 127.0.0.1:8080")?
                    .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080))),
                metrics_listen: s.parse("metrics_listen", "an address such as 127.0.0.1:9100")?,
                metrics_project_labels: s.count("metrics_project_labels", 0, 1000)?.unwrap_or(20),
                public_url: s.url("public_url")?,
                workers: s.count("workers", 1, 256)?.unwrap_or(cores),
                request_timeout: s.millis("request_timeout_ms", 100, 600_000)?.unwrap_or(Duration::from_secs(10)),
                client_header_timeout: s
                    .millis("client_header_timeout_ms", 100, 600_000)?
                    .unwrap_or(Duration::from_secs(5)),
                client_body_timeout: s
                    .millis("client_body_timeout_ms", 100, 600_000)?
                    .unwrap_or(Duration::from_secs(5)),
                max_connections: s.count("max_connections", 1, 1_000_000)?.unwrap_or(25_000),
                shutdown_timeout: s.seconds("shutdown_timeout", 1, 3600)?.unwrap_or(Duration::from_secs(30)),
                trusted_proxies: s.networks("trusted_proxies")?.unwrap_or_default(),
                api_key_headers: s.header_names("api_key_headers")?.unwrap_or_else(|| vec!["x-api-key".to_owned()]),
            },
            hash: HashSettings {
                threads: s.count("hash_threads", 1, 256)?.unwrap_or(cores.saturating_sub(1).max(1)),
                queue: s.count("hash_queue", 1, 1_000_000)?.unwrap_or(64),
                deadline: s.millis("hash_deadline_ms", 10, 600_000)?.unwrap_or(Duration::from_secs(2)),
                cost: HashCost {
                    memory_kib: s.number("hash_memory_kib", 8, 4_194_304)?.unwrap_or(19_456),
                    iterations: s.number("hash_iterations", 1, 64)?.unwrap_or(2),
                    parallelism: s.number("hash_parallelism", 1, 16)?.unwrap_or(1),
                },
            },
            token: TokenSettings {
                issuer: s.text("issuer")?,
                access_ttl: s.seconds("access_ttl", 1, MAX_ACCESS_TTL_SECS)?.unwrap_or(Duration::from_secs(3600)),
                refresh_ttl: s.seconds("refresh_ttl", 60, 31_536_000)?.unwrap_or(Duration::from_secs(604_800)),
                refresh_reuse_grace: s.seconds("refresh_reuse_grace", 0, 3600)?.unwrap_or(Duration::from_secs(10)),
                cache_capacity: s.count("token_cache_capacity", 1, 100_000_000)?.unwrap_or(100_000),
                key_usage_flush: s.millis("key_usage_flush_ms", 10, 600_000)?.unwrap_or(Duration::from_secs(5)),
            },
            store: StoreSettings {
                backend: s.store("store")?.unwrap_or(StoreSetting::Embedded),
                cql_replication: s
                    .cql_clause("cql_replication", true)?
                    .unwrap_or_else(|| "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}".to_owned()),
                cql_keyspace_options: s.cql_clause("cql_keyspace_options", false)?.unwrap_or_default(),
                cql_consistency: s
                    .parse("cql_consistency", "ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM or LOCAL_ONE")?
                    .unwrap_or_default(),
                cql_serial_consistency: s
                    .parse("cql_serial_consistency", "SERIAL or LOCAL_SERIAL")?
                    .unwrap_or_default(),
                feed_poll: s.millis("feed_poll_ms", 10, 60_000)?.unwrap_or(Duration::from_millis(250)),
                audit_retention: Duration::from_secs(
                    86_400 * u64::from(s.number::<u32>("audit_retention_days", 1, 3650)?.unwrap_or(90)),
                ),
                embedded_min_free: (1 << 20) * s.number::<u64>("embedded_min_free_mb", 0, 1 << 20)?.unwrap_or(64),
                embedded_cache: (1 << 20) * s.count("embedded_cache_mb", 1, 1 << 20)?.unwrap_or(64),
                sweep_interval: s.seconds("sweep_interval", 1, 86_400)?.unwrap_or(Duration::from_secs(600)),
            },
            shards: ShardSettings {
                count: s.count("shards", 1, 4096)?.unwrap_or(64),
                mailbox: s.count("shard_mailbox", 1, 1_000_000)?.unwrap_or(1024),
            },
            mail: MailSettings {
                smtp_url: s.text("smtp_url")?,
                smtp_ca_file: s.path("smtp_ca_file")?,
                outbox_dir,
                from: s.text("mail_from")?.unwrap_or_else(|| "Portcullis <no-reply@localhost>".to_owned()),
            },
            limits: LimitSettings {
                rate_limit_enabled: s.switch("rate_limit")?.unwrap_or(true),
                auth_rate: RateQuota {
                    per_minute: s.number("rate_limit_per_minute", 1, 1_000_000)?.unwrap_or(10),
                    burst: s.number("rate_limit_burst", 1, 1_000_000)?.unwrap_or(5),
                },
                max_keys: s.count("rate_limit_max_keys", 1000, 100_000_000)?.unwrap_or(100_000),
                refresh_rate: RateQuota {
                    per_minute: s.number("refresh_rate_per_minute", 1, 1_000_000)?.unwrap_or(60),
                    burst: s.number("refresh_rate_burst", 1, 1_000_000)?.unwrap_or(20),
                },
                lockout_threshold: s.number("lockout_threshold", 1, 1000)?.unwrap_or(10),
                lockout_base: s.seconds("lockout_seconds", 1, 86_400)?.unwrap_or(Duration::from_secs(60)),
                lockout_max_entries: s.count("lockout_max_entries", 1000, 100_000_000)?.unwrap_or(100_000),
            },
            flows: FlowSettings {
                project_name: s.display_name("project_name", 64)?.unwrap_or_else(|| "Portcullis".to_owned()),
                require_email_verification: s.switch("require_email_verification")?.unwrap_or(false),
                passwordless_signup: s.switch("passwordless_signup")?.unwrap_or(false),
                allow_registration: s.switch("allow_registration")?.unwrap_or(true),
                response_envelope: s.switch("response_envelope")?.unwrap_or(false),
                oidc_timeout: s.millis("oidc_timeout_ms", 100, 60_000)?.unwrap_or(Duration::from_secs(5)),
            },
            log: LogSettings {
                format: s.log_format("log_format")?.unwrap_or(LogFormat::Text),
                level: s.text("log_level")?.unwrap_or_else(|| "info".to_owned()),
            },
            data_dir,
        })
    }

    /// Port 0 on loopback, the given data directory, cheap hashing, no
    /// per-IP rate limits; every other value as in production.
    pub fn for_tests(data_dir: &Path) -> Settings {
        let mut settings = Settings::load(None, Vec::new()).unwrap_or_else(|e| unreachable!("defaults are valid: {e}"));
        settings.http.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        settings.data_dir = data_dir.to_path_buf();
        settings.mail.outbox_dir = data_dir.join("outbox");
        settings.http.workers = 2;
        settings.hash.threads = 2;
        settings.shards.count = 4;
        settings.hash.cost = HashCost { memory_kib: 64, iterations: 1, parallelism: 1 };
        settings.limits.rate_limit_enabled = false;
        settings
    }

    /// The longest an access token can live (the node's `access_ttl`, or a
    /// project's, at most `MAX_ACCESS_TTL_SECS`): how long a retired signing
    /// key must keep verifying.
    pub fn max_access_ttl(&self) -> Duration {
        self.token.access_ttl.max(Duration::from_secs(MAX_ACCESS_TTL_SECS))
    }
}

impl StoreSettings {
    /// The CQL target of a `cql://` store, with the keyspace settings.
    pub fn cql_target(&self) -> Option<CqlTarget> {
        match &self.backend {
            StoreSetting::Cql { hosts, keyspace } => Some(CqlTarget {
                hosts: hosts.clone(),
                keyspace: keyspace.clone(),
                replication: self.cql_replication.clone(),
                keyspace_options: self.cql_keyspace_options.clone(),
                consistency: self.cql_consistency,
                serial_consistency: self.cql_serial_consistency,
            }),
            StoreSetting::Embedded => None,
        }
    }
}

impl HttpSettings {
    /// Whether `peer` is a proxy whose `X-Forwarded-For` we believe.
    pub fn is_trusted_proxy(&self, peer: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|net| net.contains(&peer))
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
        assert_eq!(s.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.store.backend, StoreSetting::Embedded);
        assert_eq!(s.token.refresh_reuse_grace, Duration::from_secs(10));
        assert!(s.limits.rate_limit_enabled);
    }

    #[test]
    fn env_overrides_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nshards = 3\n").unwrap();
        let s = Settings::load(Some(&file), env(&[("PORTCULLIS_SHARDS", "5")])).unwrap();
        assert_eq!(s.http.listen.port(), 9000);
        assert_eq!(s.shards.count, 5);
    }

    #[test]
    fn api_key_headers_are_header_names() {
        assert_eq!(Settings::load(None, Vec::new()).unwrap().http.api_key_headers, ["x-api-key"]);
        let s = Settings::load(None, env(&[("PORTCULLIS_API_KEY_HEADERS", "X-API-Key, x-lnchr-key")])).unwrap();
        assert_eq!(s.http.api_key_headers, ["x-api-key", "x-lnchr-key"]);
        for bad in ["", " , ", "x key", "authorization", "x-é", "a,b,c,d,e,f,g,h,i"] {
            let err = Settings::load(None, env(&[("PORTCULLIS_API_KEY_HEADERS", bad)]));
            assert!(err.is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cql_consistency_levels_are_settings() {
        let s = Settings::load(None, Vec::new()).unwrap().store;
        assert_eq!(
            (s.cql_consistency, s.cql_serial_consistency),
            (CqlConsistency::LocalQuorum, CqlSerialConsistency::LocalSerial)
        );
        let s = Settings::load(
            None,
            env(&[("PORTCULLIS_CQL_CONSISTENCY", "quorum"), ("PORTCULLIS_CQL_SERIAL_CONSISTENCY", "SERIAL")]),
        )
        .unwrap()
        .store;
        assert_eq!(
            (s.cql_consistency, s.cql_serial_consistency),
            (CqlConsistency::Quorum, CqlSerialConsistency::Serial)
        );
        for (key, bad) in
            [("CQL_CONSISTENCY", "EACH_QUORUM"), ("CQL_CONSISTENCY", "ANY"), ("CQL_SERIAL_CONSISTENCY", "QUORUM")]
        {
            let err = Settings::load(None, env(&[(&format!("PORTCULLIS_{key}"), bad)]));
            assert!(err.is_err(), "{key}={bad}");
        }
    }

    #[test]
    fn the_embedded_reserve_is_in_mebibytes() {
        assert_eq!(Settings::load(None, Vec::new()).unwrap().store.embedded_min_free, 64 << 20);
        let s = Settings::load(None, env(&[("PORTCULLIS_EMBEDDED_MIN_FREE_MB", "0")])).unwrap().store;
        assert_eq!(s.embedded_min_free, 0, "0 turns the check off");
        assert!(Settings::load(None, env(&[("PORTCULLIS_EMBEDDED_MIN_FREE_MB", "-1")])).is_err());
    }

    #[test]
    fn the_sweep_runs_every_ten_minutes_unless_set() {
        assert_eq!(Settings::load(None, Vec::new()).unwrap().store.sweep_interval, Duration::from_secs(600));
        let s = Settings::load(None, env(&[("PORTCULLIS_SWEEP_INTERVAL", "2")])).unwrap().store;
        assert_eq!(s.sweep_interval, Duration::from_secs(2));
        for bad in ["0", "86401", "soon"] {
            assert!(Settings::load(None, env(&[("PORTCULLIS_SWEEP_INTERVAL", bad)])).is_err(), "{bad}");
        }
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
            s.store.backend,
            StoreSetting::Cql { hosts: vec!["a:9042".into(), "b:9042".into()], keyspace: "auth".into() }
        );
        assert!(Settings::load(None, env(&[("PORTCULLIS_STORE", "mysql://x")])).is_err());
    }

    #[test]
    fn cql_keyspace_clauses_are_checked() {
        let s = Settings::load(None, env(&[("PORTCULLIS_CQL_KEYSPACE_OPTIONS", "AND tablets = {'enabled': false}")]))
            .unwrap();
        assert_eq!(s.store.cql_keyspace_options, "AND tablets = {'enabled': false}");
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
        assert!(!s.limits.rate_limit_enabled);
        assert!(s.http.is_trusted_proxy("10.1.2.3".parse().unwrap()));
        assert!(s.http.is_trusted_proxy("127.0.0.1".parse().unwrap()));
        assert!(!s.http.is_trusted_proxy("192.168.0.1".parse().unwrap()));
    }
}
