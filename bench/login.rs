//! Password-login throughput against the raw hash rate of the pool's threads.
//!
//! Budget (ARCHITECTURE.md): logins/s ≥ 90 % of the verifications/s the
//! hashing pool's threads do alone, with the production argon2id cost.
//! Both are measured in this one run on this machine and printed as a ratio.
//!
//! Run: `cargo bench --bench login` (optionally `BENCH_SECONDS=10`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use portcullis::app::Application;
use portcullis::clock::SystemClock;
use portcullis::hashing::{HashingPool, Password};
use portcullis::settings::Settings;

const PASSWORD: &str = "benchmark password 1";

fn seconds() -> Duration {
    Duration::from_secs(std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(6))
}

/// Verifications per second with `clients` callers keeping the pool busy.
async fn raw_rate(settings: &Settings, clients: usize) -> f64 {
    let pool =
        HashingPool::start(settings.hash.threads, settings.hash.queue, settings.hash.deadline, settings.hash.cost)
            .unwrap();
    let stored = pool.hash(Password::new(PASSWORD.into())).await.unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + seconds();
    let started = Instant::now();
    join_all((0..clients).map(|_| {
        let (pool, stored, done) = (pool.clone(), stored.clone(), Arc::clone(&done));
        async move {
            while Instant::now() < deadline {
                assert!(pool.verify(Password::new(PASSWORD.into()), Some(stored.clone())).await.unwrap());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    }))
    .await;
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// Successful logins per second over HTTP with `clients` concurrent clients.
async fn login_rate(settings: Settings, clients: usize) -> f64 {
    let app = Application::build(settings, Arc::new(SystemClock)).await.unwrap();
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    actix_web::rt::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(clients).build().unwrap();
    let body = serde_json::json!({"email": "bench@example.com", "password": PASSWORD, "name": "Bench"});
    let registered = client.post(format!("{base}/api/v1/auth/register")).json(&body).send().await.unwrap();
    assert_eq!(registered.status(), 201);
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + seconds();
    let started = Instant::now();
    join_all((0..clients).map(|_| {
        let (client, base, body, done) = (client.clone(), base.clone(), body.clone(), Arc::clone(&done));
        async move {
            while Instant::now() < deadline {
                let response = client.post(format!("{base}/api/v1/auth/login")).json(&body).send().await.unwrap();
                assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    }))
    .await;
    let rate = done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    handle.stop(true).await;
    rate
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::load(None, Vec::new()).unwrap();
    settings.http.listen = "127.0.0.1:0".parse().unwrap();
    settings.data_dir = dir.path().to_path_buf();
    settings.limits.rate_limit_enabled = false;
    // Enough callers to keep every hashing thread busy, within the queue.
    let clients = (settings.hash.threads * 8).min(settings.hash.queue);
    let cost = settings.hash.cost;
    let threads = settings.hash.threads;
    actix_web::rt::System::new().block_on(async move {
        let raw = raw_rate(&settings, clients).await;
        let login = login_rate(settings, clients).await;
        println!();
        println!(
            "argon2id m={} KiB t={} p={}, {threads} hashing thread(s), {clients} concurrent clients, {} s each",
            cost.memory_kib,
            cost.iterations,
            cost.parallelism,
            seconds().as_secs()
        );
        println!("| measurement | per second | ratio |");
        println!("|---|---:|---:|");
        println!("| raw pool verifications | {raw:.1} | 1.00 |");
        println!("| HTTP password logins | {login:.1} | {:.2} |", login / raw);
        println!("budget: logins >= 0.90 x raw -> {}", if login >= 0.9 * raw { "met" } else { "MISSED" });
    });
}
