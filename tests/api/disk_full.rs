//! The embedded store on a full disk: the gateway binary with its data
//! directory on a small tmpfs that the test fills. Writes answer 503
//! `store_unavailable`, token checks and reads go on, nothing written is
//! lost, and writes resume once space is freed, without a restart. Mounting
//! needs root (CI runs as root); where it is impossible the test says so and
//! is skipped. The embedded pass only: the CQL store keeps no local files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::harness::{Answer, PASSWORD, Tokens};
use crate::process::{Gateway, start_with};

/// A tmpfs of its own, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size_mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_mib}m,mode=0700"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Tmpfs { dir }),
            Ok(output) => {
                eprintln!(
                    "skipped: cannot mount a tmpfs here (it needs root): {}",
                    String::from_utf8_lossy(&output.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipped: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file until the disk refuses more; its path.
    fn fill(&self) -> PathBuf {
        let path = self.path().join("ballast");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0x5a; 64 * 1024];
        // Bounded: the tmpfs is at most a few hundred chunks.
        for _ in 0..100_000 {
            if file.write_all(&chunk).and_then(|()| file.sync_all()).is_err() {
                return path;
            }
        }
        panic!("the tmpfs never filled");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

fn embedded_only() -> bool {
    if std::env::var("CQL_TEST_NODES").is_ok() {
        eprintln!("skipped: the disk-full test is about the embedded store");
        return false;
    }
    true
}

struct Account {
    email: String,
    tokens: Tokens,
}

async fn register(gateway: &Gateway, email: &str) -> Answer {
    gateway.post("/api/v1/auth/register", json!({"email": email, "password": PASSWORD, "name": "D"})).await
}

async fn login(gateway: &Gateway, email: &str) -> Answer {
    gateway.post("/api/v1/auth/login", json!({"email": email, "password": PASSWORD})).await
}

async fn accounts(gateway: &Gateway, prefix: &str, count: usize) -> Vec<Account> {
    let mut made = Vec::new();
    for i in 0..count {
        let email = format!("{prefix}{i}@example.com");
        let answer = register(gateway, &email).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        made.push(Account { email, tokens: Tokens::from(&answer) });
    }
    made
}

async fn create_key(gateway: &Gateway, access: &str) -> reqwest::Response {
    gateway
        .client
        .post(format!("{}/api/v1/auth/api-keys", gateway.base))
        .bearer_auth(access)
        .json(&json!({"name": "disk"}))
        .send()
        .await
        .unwrap()
}

async fn verify(gateway: &Gateway, credential: &str) -> StatusCode {
    gateway.get("/api/v1/verify", Some(credential)).await.status
}

fn logged(gateway: &Gateway, text: &str) -> bool {
    gateway.log.lock().unwrap().iter().any(|line| line.contains(text))
}

fn assert_store_unavailable(answer: &Answer, what: &str) {
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {}", answer.body);
    assert_eq!(answer.body["code"], "store_unavailable", "{what}: {}", answer.body);
}

/// Registers `email` until it answers 201 (space is back), at most `within`.
async fn register_until_created(gateway: &Gateway, email: &str, within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let answer = register(gateway, email).await;
        if answer.status == StatusCode::CREATED {
            return started.elapsed();
        }
        assert_store_unavailable(&answer, "a write while space comes back");
        assert!(started.elapsed() < within, "writes did not resume within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every account signs in, and the data directory opens again after a kill.
async fn all_sign_in(gateway: &Gateway, accounts: &[&str]) {
    for email in accounts {
        let answer = login(gateway, email).await;
        assert_eq!(answer.status, StatusCode::OK, "{email}: {}", answer.body);
    }
}

#[actix_web::test]
async fn below_the_reserve_writes_wait_and_reads_go_on() {
    if !embedded_only() {
        return;
    }
    let Some(disk) = Tmpfs::mount(48) else { return };
    let env = [("PORTCULLIS_EMBEDDED_MIN_FREE_MB", "8")];
    let gateway = start_with(disk.path(), &env);
    let before = accounts(&gateway, "kept", 5).await;
    let key = create_key(&gateway, &before[0].tokens.access).await;
    assert_eq!(key.status(), StatusCode::CREATED);
    let key = key.json::<serde_json::Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned();

    let ballast = disk.fill();

    // Every kind of write waits, with the store's error.
    assert_store_unavailable(&register(&gateway, "late@example.com").await, "register");
    assert_store_unavailable(&login(&gateway, &before[1].email).await, "login");
    let refreshed = gateway.post("/api/v1/auth/refresh", json!({"refresh_token": before[2].tokens.refresh})).await;
    assert_store_unavailable(&refreshed, "refresh");
    let key_answer = create_key(&gateway, &before[0].tokens.access).await;
    assert_eq!(key_answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Token and key checks, and reads, go on.
    for account in &before {
        assert_eq!(verify(&gateway, &account.tokens.access).await, StatusCode::OK);
        let me = gateway.get("/api/v1/auth/me", Some(&account.tokens.access)).await;
        assert_eq!(me.status, StatusCode::OK, "{}", me.body);
        assert_eq!(me.body["email"], account.email.as_str());
    }
    assert_eq!(verify(&gateway, &key).await, StatusCode::OK);
    assert_eq!(gateway.get("/readyz", None).await.status, StatusCode::OK, "reads work: still ready");

    std::fs::remove_file(&ballast).unwrap();
    let resumed = register_until_created(&gateway, "late@example.com", Duration::from_secs(5)).await;
    eprintln!("writes resumed {} ms after space was freed", resumed.as_millis());
    assert!(logged(&gateway, "disk almost full"), "the reserve, not an I/O error, stopped the writes");
    assert!(!logged(&gateway, "reopening the file"), "redb never met the end of the disk");
    let refreshed = gateway.post("/api/v1/auth/refresh", json!({"refresh_token": before[2].tokens.refresh})).await;
    assert_eq!(refreshed.status, StatusCode::OK, "the refresh token refused while full still works");
    let mut emails: Vec<&str> = before.iter().map(|a| a.email.as_str()).collect();
    emails.push("late@example.com");
    all_sign_in(&gateway, &emails).await;

    // Nothing written is corrupted: the file opens again after a kill.
    gateway.signal("KILL");
    drop(gateway);
    let restarted = start_with(disk.path(), &env);
    all_sign_in(&restarted, &emails).await;
    assert_eq!(verify(&restarted, &key).await, StatusCode::OK);
}

#[actix_web::test]
async fn a_commit_that_hits_the_end_of_the_disk_heals_without_a_restart() {
    if !embedded_only() {
        return;
    }
    let Some(disk) = Tmpfs::mount(24) else { return };
    // No reserve: redb itself meets ENOSPC, and the writer reopens the file.
    let env = [("PORTCULLIS_EMBEDDED_MIN_FREE_MB", "0")];
    let gateway = start_with(disk.path(), &env);
    let before = accounts(&gateway, "early", 3).await;
    let ballast = disk.fill();

    let mut acknowledged: Vec<String> = before.iter().map(|a| a.email.clone()).collect();
    let mut refused = None;
    for i in 0..2_000 {
        let email = format!("filler{i}@example.com");
        let answer = register(&gateway, &email).await;
        match answer.status {
            StatusCode::CREATED => acknowledged.push(email),
            _ => {
                assert_store_unavailable(&answer, "a write on a full disk");
                refused = Some(i);
                break;
            }
        }
    }
    let refused = refused.expect("a full disk refused a registration");
    eprintln!("the disk refused registration {refused}");

    std::fs::remove_file(&ballast).unwrap();
    let resumed = register_until_created(&gateway, "after@example.com", Duration::from_secs(10)).await;
    eprintln!("writes resumed {} ms after space was freed", resumed.as_millis());
    assert!(logged(&gateway, "embedded store reopened"), "the writer reopened the file after the I/O error");
    acknowledged.push("after@example.com".into());
    let emails: Vec<&str> = acknowledged.iter().map(String::as_str).collect();
    all_sign_in(&gateway, &emails).await;
    for account in &before {
        assert_eq!(verify(&gateway, &account.tokens.access).await, StatusCode::OK);
    }

    gateway.signal("KILL");
    drop(gateway);
    let restarted = start_with(disk.path(), &env);
    all_sign_in(&restarted, &emails).await;
}
