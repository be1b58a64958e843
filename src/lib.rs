//! Portcullis: an actor-based, high-throughput authentication gateway.
//!
//! The map (one line per module):
//! - [`settings`]: TOML file + `PORTCULLIS_*` environment, validated once into
//!   one group per subsystem; depends on no other module.
//! - [`app`]: builds everything in dependency order; runs, and shuts down by
//!   draining (requests, then background work, then shards and store).
//! - [`http`]: the edge. `routes/` one file per resource; `validate` the body
//!   checks; `extract` the caller and client; `error` every conversion into
//!   the one `ApiError`; `view` the answer shapes; `middleware`; `pages` the
//!   console and account pages (embedded files, served with their headers).
//! - [`auth`]: the sign-in flows, one file per family: `login` (register,
//!   login, refresh), `sessions` (me, profile, password, sessions, disable),
//!   `second_factor`, `codes`, `passkeys` (WebAuthn), `oidc` (ID tokens),
//!   `api_keys`, `audit`; `outcome` holds what they share. No two of them
//!   import each other.
//! - [`shards`]: sharded actors that own and serialize per-user state;
//!   `mod.rs` the router and mailbox, one file per rule family (`users`,
//!   `sessions`, `refresh`, `codes`, `lockout`, `api_keys`), one struct per command.
//! - [`hashing`]: the bounded argon2id pool.
//! - [`token`]: signing keys, access JWTs, refresh tokens, API-key format and
//!   digest, the verified-token cache and the [`token::AccessGate`].
//! - [`store`]: the `Store` trait, its backends (embedded, cql), the contract
//!   suite, and the wrappers (`metered`; `fault` in test builds) forwarded
//!   through one macro (`layer`).
//! - [`feed`]: the change feed; revoking anything is one call on it.
//! - [`mail`]: the outgoing mail queue (SMTP through lettre, or the outbox directory).
//! - [`ratelimit`]: per-IP limits with governor.
//! - [`telemetry`]: logs, metric names, the Prometheus exporter.
//! - [`account`]: ids, records and input rules.
//! - [`clock`]: time, passed in explicitly.
//! - [`data_dir`]: the data directory's permissions (0700, files 0600, exposed keys refused).
//! - [`projects`]: projects (tenants): the record, settings with defaults,
//!   and the per-node directory every request reads.
//! - [`oidc`]: OpenID Connect providers: their settings, key sets (JWKS,
//!   cached) and ID-token verification; accounts are `auth`'s.
//! - [`bootstrap`]: `portcullis admin create`, the first superadmin from the command line.
//!
//! A login: `http::routes::auth::login` checks the per-IP limit and
//! validates the body (`http::validate`) → `auth::AuthService::login`
//! (`auth/login.rs`) reads the account from the store → the account's shard
//! checks its lock (`shards::CheckLock`) → the hashing pool verifies the
//! password (a dummy hash for unknown accounts) → `auth/outcome.rs` starts
//! the session: the shard stores it with its refresh token
//! (`shards::StartSession`) and `token::TokenSigner` mints the access JWT.
//!
//! A token check skips `auth`: `http::extract::Authenticated` (or
//! `/verify`, `/introspect`) takes the credential → `token::AccessGate`
//! (held by `http::AppState`) looks up its keyed BLAKE3 digest in the
//! `token::TokenCache` (hit: check expiry and the revoked set, done) → on a
//! miss, verifies the Ed25519 signature, confirms the session in the store,
//! and caches the result until the token expires.
//!
//! A revocation (logout, password change, key revoke, disable):
//! `auth/sessions.rs` or `auth/api_keys.rs` has the shard delete the record,
//! then `feed::Feed::revoke_*` drops it from this node's cache and publishes
//! it, and every other node's feed poller drops it from theirs.

#![forbid(unsafe_code)]

pub mod account;
pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod clock;
pub mod data_dir;
pub mod feed;
pub mod hashing;
pub mod http;
pub mod mail;
pub mod oidc;
pub mod projects;
pub mod ratelimit;
pub mod settings;
pub mod shards;
pub mod store;
pub mod telemetry;
pub mod token;
