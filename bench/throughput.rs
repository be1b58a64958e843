//! The throughput harness: one command, one table.
//!
//! Builds the gateway and the bare baseline (`bench/bare.rs`) in release,
//! installs wrk if missing (Debian's package), starts both on loopback with
//! the gateway's per-IP limits off, and measures with wrk in this one run:
//! the bare route, `/introspect` and `/verify` on cached credentials,
//! `/introspect` on first-sight tokens (more distinct tokens than the cache
//! holds), and `/introspect` latency while a second load floods
//! `/auth/login` past the hashing pool (with the latency of the 503s the
//! flood's excess gets), and the bare route beside the same flood on the
//! same cores, the floor those latencies are read against. Each row
//! carries its ratio to the bare route of the same shape (POST with a body
//! for `/introspect`, GET for `/verify`).
//!
//! Run: `cargo bench --bench throughput` (`BENCH_SECONDS`, default 10).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const PASSWORD: &str = "throughput password";
/// The gateway's token cache for this run; first-sight tokens are 4x this.
const CACHE: usize = 1000;
const FIRST_SIGHT_TOKENS: usize = 4 * CACHE;

fn seconds() -> u64 {
    std::env::var("BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn ensure_wrk() {
    if Command::new("wrk").arg("--version").output().is_ok() {
        return;
    }
    eprintln!("wrk is missing; installing Debian's package");
    let sudo =
        if Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false) { "" } else { "sudo " };
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{sudo}apt-get update -qq && DEBIAN_FRONTEND=noninteractive {sudo}apt-get install -y -qq wrk"))
        .status()
        .unwrap();
    assert!(status.success(), "could not install wrk");
}

fn build() {
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--bin", "portcullis", "--example", "bare"])
        .current_dir(root())
        .status()
        .unwrap();
    assert!(status.success(), "release build failed");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// What wrk reported for one run.
#[derive(Debug, Default, Clone)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    non_2xx: u64,
}

fn parse_latency(text: &str) -> f64 {
    let text = text.trim();
    let (number, factor) = if let Some(n) = text.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (text, 1.0)
    };
    number.trim().parse::<f64>().unwrap_or(f64::NAN) * factor
}

fn parse_wrk(output: &str) -> Run {
    let mut run = Run::default();
    for line in output.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("Requests/sec:") {
            run.rps = rest.trim().parse().unwrap_or(0.0);
        } else if let Some(rest) = line.strip_prefix("50%") {
            run.p50_ms = parse_latency(rest);
        } else if let Some(rest) = line.strip_prefix("99%") {
            run.p99_ms = parse_latency(rest);
        } else if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.non_2xx = rest.trim().parse().unwrap_or(0);
        }
    }
    run
}

/// `wrk`, or `taskset -c <cpus> wrk` when the load generator is pinned.
fn wrk_on(cpus: Option<&str>) -> Command {
    match cpus {
        Some(cpus) => {
            let mut command = Command::new("taskset");
            command.args(["-c", cpus, "wrk"]);
            command
        }
        None => Command::new("wrk"),
    }
}

fn wrk_command(threads: u32, connections: u32, script: &str, url: &str, env: &[(&str, String)]) -> Command {
    pinned_wrk_command(None, threads, connections, script, url, env)
}

fn pinned_wrk_command(
    cpus: Option<&str>,
    threads: u32,
    connections: u32,
    script: &str,
    url: &str,
    env: &[(&str, String)],
) -> Command {
    let mut command = wrk_on(cpus);
    command
        .args(["-t", &threads.to_string(), "-c", &connections.to_string(), "-d", &format!("{}s", seconds())])
        .args(["--latency", "-s"])
        .arg(root().join("load-tests/wrk").join(script))
        .arg(url)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    command
}

fn wrk(script: &str, url: &str, env: &[(&str, String)]) -> Run {
    let output = wrk_command(2, 50, script, url, env).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let run = parse_wrk(&text);
    assert!(run.rps > 0.0, "wrk reported nothing:\n{text}");
    run
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while client.get(url).send().await.is_err() {
        assert!(Instant::now() < deadline, "{url} did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn post(client: &reqwest::Client, url: &str, bearer: Option<&str>, body: Value) -> Value {
    let mut request = client.post(url).json(&body);
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{url}: {status} {body}");
    body
}

/// `FIRST_SIGHT_TOKENS` distinct access tokens, minted by refresh chains.
async fn mint_tokens(client: &reqwest::Client, base: &str) -> Vec<String> {
    let chains = 8;
    let mut tasks = Vec::new();
    for _ in 0..chains {
        // One login at a time: an account may have only a few password
        // jobs at once (more is 429 `rate_limited`); the chains then run
        // side by side.
        let login = post(
            client,
            &format!("{base}/api/v1/auth/login"),
            None,
            json!({"email": "admin@bench.test", "password": PASSWORD}),
        )
        .await;
        let (client, base) = (client.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let mut refresh = login["refresh_token"].as_str().unwrap().to_owned();
            let mut tokens = Vec::new();
            for _ in 0..FIRST_SIGHT_TOKENS / chains {
                let next =
                    post(&client, &format!("{base}/api/v1/auth/refresh"), None, json!({"refresh_token": refresh}))
                        .await;
                tokens.push(next["token"].as_str().unwrap().to_owned());
                refresh = next["refresh_token"].as_str().unwrap().to_owned();
            }
            tokens
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Single requests, one every 20 ms, sent while the flood runs: how many
/// were sent, and the sorted latencies of those answered with `wanted`.
async fn probe(client: &reqwest::Client, url: &str, wanted: u16, during: Duration) -> (usize, Vec<f64>) {
    let deadline = Instant::now() + during;
    let (mut sent, mut answered) = (0, Vec::new());
    while Instant::now() < deadline {
        let started = Instant::now();
        let response =
            client.post(url).json(&json!({"email": "admin@bench.test", "password": PASSWORD})).send().await.unwrap();
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        sent += 1;
        if response.status() == wanted {
            answered.push(elapsed);
        }
        let _ = response.bytes().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    answered.sort_by(f64::total_cmp);
    (sent, answered)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("model name")).map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cores} cores, {cpu}")
}

/// Pins this process (the probe) to core 0 and the servers (the gateway and
/// the bare baseline) to the other cores; `None` (nothing pinned) on one
/// core or without taskset.
fn pin_generators(servers: &[u32]) -> Option<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores < 2 {
        return None;
    }
    let server_cpus = format!("1-{}", cores - 1);
    let pin = |cpus: &str, pid: u32| {
        Command::new("taskset")
            .args(["-a", "-p", "-c", cpus, &pid.to_string()])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    (servers.iter().all(|&pid| pin(&server_cpus, pid)) && pin("0", std::process::id())).then(|| {
        format!("load generators (wrk, probe) on core 0, the gateway and the bare baseline on cores {server_cpus}")
    })
}

fn start(binary: &Path, args: &[&str], env: &[(&str, String)]) -> Process {
    Process(
        Command::new(binary)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    )
}

fn main() {
    ensure_wrk();
    build();
    let release = target_dir().join("release");
    let data = tempfile::tempdir().unwrap();
    let (gateway_port, bare_port) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{gateway_port}");
    let gateway = start(
        &release.join("portcullis"),
        &["serve"],
        &[
            ("PORTCULLIS_LISTEN", format!("127.0.0.1:{gateway_port}")),
            ("PORTCULLIS_DATA_DIR", data.path().display().to_string()),
            ("PORTCULLIS_RATE_LIMIT", "off".into()),
            ("PORTCULLIS_TOKEN_CACHE_CAPACITY", CACHE.to_string()),
            ("PORTCULLIS_LOG_LEVEL", "warn".into()),
        ],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let client = reqwest::Client::builder().no_proxy().build().unwrap();

    let (admin, introspect_key, api_key, introspect_body, tokens) = runtime.block_on(async {
        wait_ready(&client, &format!("{base}/healthz")).await;
        let admin = post(
            &client,
            &format!("{base}/api/v1/auth/register"),
            None,
            json!({"email": "admin@bench.test", "password": PASSWORD, "name": "Bench"}),
        )
        .await;
        let access = admin["token"].as_str().unwrap().to_owned();
        let keys = format!("{base}/api/v1/auth/api-keys");
        let introspect_key = post(&client, &keys, Some(&access), json!({"name": "gw", "scopes": ["introspect"]})).await;
        let api_key = post(&client, &keys, Some(&access), json!({"name": "svc", "scopes": ["read"]})).await;
        let introspect_key = introspect_key["api_key"].as_str().unwrap().to_owned();
        let body = client
            .post(format!("{base}/api/v1/introspect"))
            .bearer_auth(&introspect_key)
            .form(&[("token", access.as_str())])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let tokens = mint_tokens(&client, &base).await;
        (access, introspect_key, api_key["api_key"].as_str().unwrap().to_owned(), body, tokens)
    });
    let tokens_file = data.path().join("tokens.txt");
    std::fs::write(&tokens_file, tokens.join("\n")).unwrap();

    let bare = start(
        &release.join("examples").join("bare"),
        &[&format!("127.0.0.1:{bare_port}")],
        &[("BARE_BODY", introspect_body.clone())],
    );
    runtime.block_on(wait_ready(&client, &format!("http://127.0.0.1:{bare_port}/bare")));

    let bare_url = format!("http://127.0.0.1:{bare_port}/bare");
    let introspect_url = format!("{base}/api/v1/introspect");
    let verify_url = format!("{base}/api/v1/verify");
    let token_env = |extra: &[(&'static str, String)]| {
        let mut env = vec![("TOKEN", admin.clone()), ("INTROSPECT_KEY", introspect_key.clone())];
        env.extend_from_slice(extra);
        env
    };

    // The machine is shared and noisy: every row is measured in each of
    // several rounds, right after its baseline, and the medians are reported
    // (the ratio is the median of the per-round ratios).
    let rounds = std::env::var("BENCH_ROUNDS").ok().and_then(|s| s.parse().ok()).unwrap_or(3usize).max(1);
    eprintln!("measuring: {rounds} rounds of {} s per row", seconds());
    let mut samples: Vec<[Run; 6]> = Vec::new();
    for round in 0..rounds {
        eprintln!("round {}", round + 1);
        let bare_post = wrk("introspect.lua", &bare_url, &token_env(&[]));
        let introspect = wrk("introspect.lua", &introspect_url, &token_env(&[]));
        let bare_get = wrk("verify.lua", &bare_url, &[("TOKEN", admin.clone())]);
        let verify_jwt = wrk("verify.lua", &verify_url, &[("TOKEN", admin.clone())]);
        let verify_key = wrk("verify.lua", &verify_url, &[("API_KEY", api_key.clone())]);
        let first_sight = wrk(
            "introspect_cycle.lua",
            &introspect_url,
            &token_env(&[("TOKENS_FILE", tokens_file.display().to_string())]),
        );
        samples.push([bare_post, bare_get, introspect, verify_jwt, verify_key, first_sight]);
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let summary = |index: usize, baseline: usize| {
        let run = Run {
            rps: median(samples.iter().map(|s| s[index].rps).collect()),
            p50_ms: median(samples.iter().map(|s| s[index].p50_ms).collect()),
            p99_ms: median(samples.iter().map(|s| s[index].p99_ms).collect()),
            non_2xx: samples.iter().map(|s| s[index].non_2xx).sum(),
        };
        (run, median(samples.iter().map(|s| s[index].rps / s[baseline].rps).collect()))
    };
    // The spread of a row's per-round ratios: how far one round can be from the median.
    let spread = |index: usize, baseline: usize| {
        let ratios: Vec<f64> = samples.iter().map(|s| s[index].rps / s[baseline].rps).collect();
        let (low, high) = ratios.iter().fold((f64::INFINITY, 0.0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        format!("{low:.2}-{high:.2}")
    };
    let (bare_post, _) = summary(0, 0);
    let (bare_get, _) = summary(1, 1);
    let (introspect, introspect_ratio) = summary(2, 0);
    let (verify_jwt, verify_jwt_ratio) = summary(3, 1);
    let (verify_key, verify_key_ratio) = summary(4, 1);
    let (first_sight, first_sight_ratio) = summary(5, 0);

    // The flood: many connections logging in past the pool, and beside it a
    // modest introspection load whose latency must not suffer.
    let login_url = format!("{base}/api/v1/auth/login");
    // More connections than the hashing queue holds (64 by default), each
    // login a new unknown email, so every request costs a hash and the
    // excess must be refused.
    // The load generators (both wrks and this process's probe) get core 0
    // and the gateway the others, so the latencies are the gateway's and not
    // a starved generator's (taskset, from util-linux).
    let machine = machine();
    let pinning = pin_generators(&[gateway.0.id(), bare.0.id()]);
    let generator_cpus = pinning.as_ref().map(|_| "0");
    let probe_for = Duration::from_secs(seconds().saturating_sub(2).max(1));
    // One flood phase: the flood, a 16-connection load on `beside_url`, and
    // single probes of `probe_url` (their latencies when answered `wanted`).
    let flooded = |beside_url: &str, probe_url: &str, wanted: u16| {
        let flood = pinned_wrk_command(generator_cpus, 1, 256, "login_flood.lua", &login_url, &[]).spawn().unwrap();
        let beside =
            pinned_wrk_command(generator_cpus, 1, 16, "introspect.lua", beside_url, &token_env(&[])).spawn().unwrap();
        let (probed, latencies) = runtime.block_on(probe(&client, probe_url, wanted, probe_for));
        let flood_text = String::from_utf8_lossy(&flood.wait_with_output().unwrap().stdout).into_owned();
        for line in flood_text.lines().filter(|l| l.contains("Socket errors") || l.contains("requests in")) {
            eprintln!("login flood: {}", line.trim());
        }
        let beside = parse_wrk(&String::from_utf8_lossy(&beside.wait_with_output().unwrap().stdout));
        (parse_wrk(&flood_text), beside, probed, latencies)
    };
    let (flood, under_flood, probed, refused) = flooded(&introspect_url, &login_url, 503);
    // The floor, in the same run: the bare route on the same cores beside
    // the same flood. Whatever shares a saturated core waits for the
    // scheduler; the gateway's figures are read against these.
    eprintln!("the same flood beside the bare route");
    let (_, bare_under_flood, _, bare_probes) = flooded(&bare_url, &bare_url, 200);

    let row = |name: &str, run: &Run, ratio: f64| {
        println!("| {name} | {:.0} | {:.2} | {:.2} | {} | {ratio:.2} |", run.rps, run.p50_ms, run.p99_ms, run.non_2xx);
    };
    println!();
    println!(
        "Machine: {}; wrk -t2 -c50 -d{}s per row, median of {rounds} interleaved rounds; token cache {CACHE}, first-sight tokens {}",
        machine,
        seconds(),
        tokens.len()
    );
    println!();
    println!("| route | requests/s | p50 ms | p99 ms | non-2xx | ratio to bare |");
    println!("|---|---:|---:|---:|---:|---:|");
    row("bare POST (reads body, same JSON)", &bare_post, 1.0);
    row("bare GET (same JSON)", &bare_get, 1.0);
    row("/introspect, cached JWT", &introspect, introspect_ratio);
    row("/verify, cached JWT", &verify_jwt, verify_jwt_ratio);
    row("/verify, cached API key", &verify_key, verify_key_ratio);
    row("/introspect, first-sight JWTs", &first_sight, first_sight_ratio);
    row("/introspect while login is flooded (wrk -t1 -c16)", &under_flood, under_flood.rps / bare_post.rps);
    row("bare POST beside the same flood (wrk -t1 -c16)", &bare_under_flood, bare_under_flood.rps / bare_post.rps);
    println!();
    println!(
        "Per-round ratios (lowest-highest of {rounds}): introspect {}, verify JWT {}, verify key {}, first sight {}",
        spread(2, 0),
        spread(3, 1),
        spread(4, 1),
        spread(5, 0)
    );
    println!();
    println!(
        "Login flood (wrk -t1 -c256): {:.0} requests/s, {} non-2xx; probe: {probed} single logins, {} answered 503, 503 latency p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        flood.rps,
        flood.non_2xx,
        refused.len(),
        percentile(&refused, 0.5),
        percentile(&refused, 0.99),
        refused.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "Bare route beside the same flood: single POSTs every 20 ms, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&bare_probes, 0.5),
        percentile(&bare_probes, 0.99),
        bare_probes.last().copied().unwrap_or(f64::NAN),
    );
    println!("Flood rows: {}", pinning.unwrap_or_else(|| "not pinned (taskset missing or one core)".into()));
    println!();
    let budget = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("Budgets:");
    println!(
        "- cached >= 0.90 of bare: introspect {introspect_ratio:.2}, verify JWT {verify_jwt_ratio:.2}, verify key {verify_key_ratio:.2} -> {}",
        budget(introspect_ratio >= 0.9 && verify_jwt_ratio >= 0.9 && verify_key_ratio >= 0.9)
    );
    println!(
        "- first sight >= 0.30 of bare (ARCHITECTURE.md's budget is 0.20): {first_sight_ratio:.2} -> {}",
        budget(first_sight_ratio >= 0.3)
    );
    println!(
        "- introspect p99 under login flood <= 10 ms: {:.2} ms -> {} (the bare route beside the same flood: {:.2} ms)",
        under_flood.p99_ms,
        budget(under_flood.p99_ms <= 10.0),
        bare_under_flood.p99_ms
    );
    println!(
        "- login excess answered 503 within 5 ms (p99 of probed 503s): {:.2} ms -> {} (single bare POSTs beside the same flood: {:.2} ms)",
        percentile(&refused, 0.99),
        budget(!refused.is_empty() && percentile(&refused, 0.99) <= 5.0),
        percentile(&bare_probes, 0.99)
    );
}
