//! Portcullis: an actor-based, high-throughput authentication gateway.
//!
//! The map (one line per module):
//! - [`settings`]: TOML file + `PORTCULLIS_*` environment, validated once.
//! - [`app`]: builds everything in dependency order; runs and shuts down.
//! - [`http`]: routes, extractors, middleware, the one `ApiError`.
//! - [`auth`]: the sign-in flows (register, login, refresh, sessions).
//! - [`shards`]: sharded actors that own and serialize per-user state.
//! - [`hashing`]: the bounded argon2id pool.
//! - [`token`]: signing keys, access JWTs, refresh tokens, the verified-token cache.
//! - [`store`]: the `Store` trait and its backends.
//! - [`feed`]: the change feed that carries revocations to every other node.
//! - [`mail`]: the outgoing mail queue (SMTP through lettre, or the outbox directory).
//! - [`ratelimit`]: per-IP limits with governor.
//! - [`telemetry`]: logs, metric names, the Prometheus exporter.
//! - [`account`]: ids, records and input rules.
//! - [`clock`]: time, passed in explicitly.
//!
//! A login: `http::routes::auth::login` validates the body and checks the
//! per-IP limit → `auth::AuthService::login` reads the account from the
//! store → the account's shard checks its lock → the hashing pool verifies
//! the password (a dummy hash for unknown accounts) → the shard stores the new
//! session and refresh token → `token::TokenSigner` mints the access JWT.
//!
//! A token check: `http::extract::Authenticated` takes the bearer token →
//! `token::AccessGate` looks up its keyed BLAKE3 digest in the
//! `token::TokenCache` (hit: check expiry and the revoked-session set, done)
//! → on a miss, verifies the Ed25519 signature, confirms the session in the
//! store, and caches the result until the token expires.

#![forbid(unsafe_code)]

pub mod account;
pub mod app;
pub mod auth;
pub mod clock;
pub mod feed;
pub mod hashing;
pub mod http;
pub mod mail;
pub mod ratelimit;
pub mod settings;
pub mod shards;
pub mod store;
pub mod telemetry;
pub mod token;
