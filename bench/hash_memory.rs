//! Why each hashing thread keeps its argon2 memory: a fresh 19 MiB block per
//! hash (allocate, page-fault, free) against one block reused, measured
//! alternately in one run with the production cost.
//!
//! Run: `cargo bench --bench hash_memory` (optionally `BENCH_ROUNDS=40`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};

fn main() {
    let rounds: u32 = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(30);
    let params = Params::new(19_456, 2, 1, Some(32)).unwrap();
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
    let (password, salt) = (b"benchmark password", b"0123456789abcdef");
    let mut out = [0u8; 32];
    let mut reused = vec![Block::default(); params.block_count()];
    // Warm both paths once.
    argon2.hash_password_into(password, salt, &mut out).unwrap();
    argon2.hash_password_into_with_memory(password, salt, &mut out, &mut reused).unwrap();
    let (mut fresh_total, mut reused_total) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let started = Instant::now();
        argon2.hash_password_into(password, salt, &mut out).unwrap();
        fresh_total += started.elapsed();
        let started = Instant::now();
        argon2.hash_password_into_with_memory(password, salt, &mut out, &mut reused).unwrap();
        reused_total += started.elapsed();
    }
    let per = |total: Duration| total.as_secs_f64() * 1000.0 / f64::from(rounds);
    let (fresh, kept) = (per(fresh_total), per(reused_total));
    println!();
    println!("argon2id m=19456 KiB t=2 p=1, {rounds} rounds each, alternating");
    println!("| memory | ms per hash | ratio |");
    println!("|---|---:|---:|");
    println!("| reused block (the pool) | {kept:.2} | 1.00 |");
    println!("| fresh allocation per hash | {fresh:.2} | {:.2} |", fresh / kept);
    println!("fresh allocation costs {:.2} ms more per hash", fresh - kept);
}
