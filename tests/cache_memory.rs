//! Memory per cached token, measured: the heap bytes a full cache holds,
//! counted exactly by dhat's allocator, divided by its entries.
//! Budget (ARCHITECTURE.md): at most 512 bytes per cached token.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portcullis::account::{ProjectId, Role, SessionId, UserId};
use portcullis::clock::Timestamp;
use portcullis::token::{Credential, TokenCache, VerifiedAccess};
use std::sync::Arc;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const ENTRIES: usize = 100_000;

#[test]
fn a_cached_token_costs_at_most_512_bytes() {
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
}
