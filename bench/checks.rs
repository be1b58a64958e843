//! Micro-benchmarks of the checks on the hot path (criterion):
//! - `gate/cached_jwt`, `gate/cached_api_key`: a hit in the verified-token cache
//! - `gate/first_sight_jwt`: a miss (Ed25519 verify + session and user reads)
//! - `gate/first_sight_api_key`: a miss (keyed digest + key and user reads)
//! - `token/ed25519_verify`: the signature check alone
//! - `hashing/pool_verify`: password verifications through the pool (production cost)
//!
//! Run: `cargo bench --bench checks`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use portcullis::account::{ApiKey, ApiKeyId, ProjectId, RefreshRecord, Session, User};
use portcullis::clock::{Clock, SharedClock, SystemClock, Timestamp};
use portcullis::hashing::{HashingPool, Password};
use portcullis::projects::{Directory, SettingsDefaults};
use portcullis::settings::{HashCost, Settings};
use portcullis::store::Store;
use portcullis::store::embedded::EmbeddedStore;
use portcullis::token::api_key::{ApiKeyHasher, KeyUsage, generate};
use portcullis::token::{AccessGate, GateParts, KeyRing, TokenCache, TokenSigner};

struct Fixture {
    gate: AccessGate,
    tokens: Vec<String>,
    key: String,
    _dir: tempfile::TempDir,
}

/// A store with one user, `sessions` sessions (one token each) and one API key.
async fn fixture(sessions: usize, cache_capacity: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let now = clock.now();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let fresh = User::fresh(ProjectId::default_project(), "bench@example.com".into(), "Bench".into(), None, now);
    let user = store.create_user(User { username: Some("bench".into()), ..fresh }).await.unwrap();
    let keys = Arc::new(KeyRing::open(dir.path(), now).unwrap());
    let signer = Arc::new(TokenSigner::new(keys, "http://bench".into(), Duration::from_secs(3600)));
    let mut tokens = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let session = Session::begin(&user, None, None, now, now.plus(Duration::from_secs(86_400)));
        let refresh =
            RefreshRecord::live(&session, *blake3::hash(&i.to_le_bytes()).as_bytes(), now, session.expires_at);
        store.create_session(session.clone(), refresh).await.unwrap();
        tokens.push(signer.mint(&user, &session, now, Duration::from_secs(3600)).unwrap());
    }
    let hasher = ApiKeyHasher::open(dir.path()).unwrap();
    let minted = generate();
    store
        .create_api_key(ApiKey {
            id: ApiKeyId::generate(),
            project: user.project.clone(),
            user_id: user.id,
            name: "bench".into(),
            prefix: minted.prefix.clone(),
            digest: hasher.digest(&minted.secret),
            scopes: vec!["introspect".into()],
            created_at: now,
            expires_at: None,
            last_used_at: None,
        })
        .await
        .unwrap();
    let cache = Arc::new(TokenCache::new(cache_capacity));
    let defaults = SettingsDefaults::of(&Settings::for_tests(dir.path()));
    let projects = Arc::new(Directory::load(Arc::clone(&store), defaults, 20).await.unwrap());
    let usage = Arc::new(KeyUsage::default());
    let gate = AccessGate::new(GateParts { signer, cache, store, clock, keys: hasher, usage, projects });
    Fixture { gate, tokens, key: minted.secret.to_string(), _dir: dir }
}

fn checks(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("gate");
    group.throughput(Throughput::Elements(1));

    let cached = runtime.block_on(fixture(1, 1024));
    runtime.block_on(cached.gate.check(&cached.tokens[0])).unwrap();
    runtime.block_on(cached.gate.check(&cached.key)).unwrap();
    group.bench_function("cached_jwt", |b| b.to_async(&runtime).iter(|| cached.gate.check(&cached.tokens[0])));
    group.bench_function("cached_api_key", |b| b.to_async(&runtime).iter(|| cached.gate.check(&cached.key)));

    // A cache of one entry and many tokens: every check is a first sight.
    let cold = runtime.block_on(fixture(512, 1));
    let mut next = 0usize;
    group.bench_function("first_sight_jwt", |b| {
        b.to_async(&runtime).iter(|| {
            next = (next + 1) % cold.tokens.len();
            cold.gate.check(&cold.tokens[next])
        })
    });
    let mut flip = 0usize;
    group.bench_function("first_sight_api_key", |b| {
        b.to_async(&runtime).iter(|| {
            flip += 1;
            // Alternate with a token so the single cache slot never holds the key.
            if flip.is_multiple_of(2) { cold.gate.check(&cold.key) } else { cold.gate.check(&cold.tokens[0]) }
        })
    });
    group.finish();

    let signer_fixture = runtime.block_on(fixture(1, 1));
    let signer = TokenSigner::new(
        Arc::new(KeyRing::open(signer_fixture._dir.path(), Timestamp(0)).unwrap()),
        "http://bench".into(),
        Duration::from_secs(3600),
    );
    let token = &signer_fixture.tokens[0];
    let now = SystemClock.now();
    c.benchmark_group("token")
        .throughput(Throughput::Elements(1))
        .bench_function("ed25519_verify", |b| b.iter(|| signer.verify(token, now).unwrap()));

    let pool = HashingPool::start(
        1,
        64,
        Duration::from_secs(30),
        HashCost { memory_kib: 19_456, iterations: 2, parallelism: 1 },
    )
    .unwrap();
    let stored = runtime.block_on(pool.hash(Password::new("bench password".into()))).unwrap();
    let mut hashing = c.benchmark_group("hashing");
    hashing.throughput(Throughput::Elements(1)).sample_size(10);
    hashing.bench_function("pool_verify", |b| {
        b.to_async(&runtime).iter(|| pool.verify(Password::new("bench password".into()), Some(stored.clone())))
    });
    hashing.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
