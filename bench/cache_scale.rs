//! The token cache against its size: hit latency and heap bytes per entry
//! with 10k, 100k and 1M cached tokens (`cargo bench --bench cache_scale`).
//!
//! Each size gets a fresh cache of that capacity, filled with one entry per
//! token as the gate builds them; the heap it holds is counted exactly by
//! dhat's allocator. A hit is what the gate does for a cached token: the
//! keyed digest of the ~420-byte token and the lookup. It is timed over
//! 200,000 tokens drawn at random from the cached ones (so a large table's
//! cache misses count), five passes, the median pass reported. The goal is
//! flat: the last line gives the slope from the smallest size to the largest.
//! Sizes: `CACHE_SCALE_SIZES` (comma-separated; default 10000,100000,1000000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use portcullis::account::{ProjectId, Role, SessionId, UserId};
use portcullis::clock::Timestamp;
use portcullis::token::cache::Cached;
use portcullis::token::{Credential, TokenCache, VerifiedAccess};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const PROBES: usize = 200_000;
const PASSES: usize = 5;

/// A token of an access token's length (the gateway's JWTs are ~420 bytes).
fn token(i: usize) -> String {
    format!("eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9.{:0>360}.{i:020}", i)
}

fn entry(now: Timestamp) -> Arc<VerifiedAccess> {
    Arc::new(VerifiedAccess::new(
        UserId::generate(),
        Credential::Session(SessionId::generate()),
        ProjectId::default_project(),
        Role::User,
        "openid profile email",
        Some("a-typical-username"),
        now.as_secs(),
        Some(now.as_secs() + 3600),
        now.as_secs() + 3600,
    ))
}

/// A small xorshift, so the probe order is random but the same every run.
fn probes(size: usize) -> Vec<String> {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..PROBES)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            token(usize::try_from(state % size as u64).unwrap())
        })
        .collect()
}

struct Row {
    size: usize,
    bytes_per_entry: usize,
    hit_ns: f64,
}

fn measure(size: usize, now: Timestamp) -> Row {
    let before = dhat::HeapStats::get().curr_bytes;
    let cache = TokenCache::new(size);
    for i in 0..size {
        cache.insert(cache.digest(token(i).as_bytes()), entry(now), now);
    }
    assert_eq!(cache.len(), size);
    let bytes_per_entry = (dhat::HeapStats::get().curr_bytes - before) / size;

    let probes = probes(size);
    let mut passes: Vec<f64> = (0..PASSES)
        .map(|_| {
            let started = Instant::now();
            for probe in &probes {
                let hit = cache.lookup(&cache.digest(black_box(probe.as_bytes())), now);
                assert!(matches!(hit, Cached::Hit(_)));
            }
            started.elapsed().as_nanos() as f64 / PROBES as f64
        })
        .collect();
    passes.sort_by(f64::total_cmp);
    Row { size, bytes_per_entry, hit_ns: passes[PASSES / 2] }
}

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let sizes: Vec<usize> = std::env::var("CACHE_SCALE_SIZES")
        .unwrap_or_else(|_| "10000,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().expect("CACHE_SCALE_SIZES: comma-separated counts"))
        .collect();
    let now = Timestamp::from_secs(1_800_000_000);
    println!("| cached tokens | hit (digest + lookup) ns | heap bytes per entry |");
    println!("|---:|---:|---:|");
    let mut rows = Vec::new();
    for size in sizes {
        let row = measure(size, now);
        println!("| {} | {:.0} | {} |", row.size, row.hit_ns, row.bytes_per_entry);
        rows.push(row);
    }
    if let (Some(first), Some(last)) = (rows.first(), rows.last()) {
        println!(
            "\nfrom {} to {} entries: hit time x{:.2}, bytes per entry x{:.2}",
            first.size,
            last.size,
            last.hit_ns / first.hit_ns,
            last.bytes_per_entry as f64 / first.bytes_per_entry as f64
        );
    }
}
