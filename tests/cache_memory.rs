//! Memory per entry of the capped in-memory tables, measured: the heap
//! bytes a full table holds, counted exactly by dhat's allocator, divided by
//! its entries. Budget (ARCHITECTURE.md): at most 512 bytes per cached
//! token. A rate-limit key is measured too: with `rate_limit_max_keys` it
//! gives the limiters' bound in the README.
//! One test, so that one dhat profiler counts at a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis::account::{ProjectId, Role, SessionId, UserId};
use portcullis::clock::Timestamp;
use portcullis::token::{Credential, TokenCache, VerifiedAccess};
use std::sync::Arc;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const ENTRIES: usize = 100_000;

#[test]
fn capped_tables_cost_what_their_budgets_say() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let now = Timestamp::from_secs(1_800_000_000);
    // Tokens as clients present them (the cache keeps only their digests).
    let tokens: Vec<String> = (0..ENTRIES).map(|i| format!("eyJhbGciOiJFZERTQSJ9.token-{i:08}.sig")).collect();
    // Counted from before the cache exists, so its table is included.
    let before = dhat::HeapStats::get().curr_bytes;
    let cache = TokenCache::new(ENTRIES);
    for token in &tokens {
        // As the gate builds them: every string field its own allocation.
        let access = VerifiedAccess::new(
            UserId::generate(),
            Credential::Session(SessionId::generate()),
            ProjectId::default_project(),
            Role::User,
            "openid profile email",
            Some("a-typical-username"),
            now.as_secs(),
            Some(now.as_secs() + 3600),
            now.as_secs() + 3600,
        );
        cache.insert(cache.digest(token.as_bytes()), Arc::new(access), now);
    }
    assert_eq!(cache.len(), ENTRIES);
    let per_entry = (dhat::HeapStats::get().curr_bytes - before) / ENTRIES;
    println!("memory per cached token: {per_entry} bytes ({ENTRIES} entries)");
    assert!(per_entry <= 512, "{per_entry} bytes per cached token");
    drop(cache);

    // A client address on one sign-in route, in the shared limiter (keyed
    // by project, route and address).
    let mut settings = portcullis::settings::Settings::load(None, Vec::new()).unwrap().limits;
    settings.max_keys = 10 * ENTRIES;
    let before = dhat::HeapStats::get().curr_bytes;
    let limits = portcullis::ratelimit::RateLimits::new(&settings);
    let project = ProjectId::default_project();
    for i in 0..ENTRIES {
        let ip = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i as u32));
        let quota = settings.auth_rate;
        assert!(limits.check(&project, quota, portcullis::ratelimit::LimitedRoute::Login, ip).is_ok());
    }
    let per_key = (dhat::HeapStats::get().curr_bytes - before) / ENTRIES;
    println!("memory per rate-limit key: {per_key} bytes ({ENTRIES} keys)");
    assert!(per_key <= 256, "{per_key} bytes per rate-limit key");
}
