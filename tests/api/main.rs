//! Black-box HTTP tests: each test starts a fresh app (port 0, its own data
//! directory) and uses it over HTTP as a client would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod harness;
mod keyspaces;

mod admin;
mod admin_overview;
mod admin_users;
mod api_keys;
mod audit_log;
mod auth;
mod authenticator;
mod cluster;
mod codes;
mod connections;
mod contract;
mod cql_cluster;
mod cql_fault;
mod crash;
mod disk_full;
mod faults;
mod gateway;
mod health;
mod logs;
mod nginx;
mod oidc;
mod oidc_provider;
mod pages;
mod passkeys;
mod process;
mod profile;
mod projects;
mod protection;
mod refresh;
mod seed_cloudflare;
mod seed_cloudheed;
mod seed_cmdash;
mod seed_generic;
mod seed_lnchr;
mod sessions;
mod shutdown;
mod smtp;
mod two_factor;
