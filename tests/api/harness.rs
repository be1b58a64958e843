//! `spawn_app()` and typed helpers for talking to it.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use portcullis::app::Application;
use portcullis::auth::AuthService;
use portcullis::clock::ManualClock;
use portcullis::settings::Settings;
use portcullis::store::Store;
use portcullis::store::embedded::EmbeddedStore;
use portcullis::store::fault::FaultyStore;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::keyspaces::{self, KeyspaceGuard};

pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub base: String,
    /// Where mail goes when no SMTP server is set.
    pub outbox: std::path::PathBuf,
    /// The separate `/metrics` listener's port, when `metrics_listen` is set.
    pub metrics_port: Option<u16>,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub auth: Arc<AuthService>,
    handle: ServerHandle,
    /// The app's `run_until_stopped`, until `shut_down` waits for it.
    running: Option<actix_web::rt::task::JoinHandle<anyhow::Result<()>>>,
    keyspace: Option<KeyspaceGuard>,
    _dir: TempDir,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; the server winds down on its own.
        drop(self.handle.stop(false));
        drop(self.keyspace.take());
    }
}

impl TestApp {
    /// Stops the app as SIGTERM would, and waits until its shutdown is over.
    pub async fn shut_down(&mut self) -> anyhow::Result<()> {
        self.handle.stop(true).await;
        let running = self.running.take().expect("the app is running");
        running.await.expect("the app's task ends without panicking")
    }
}

/// An app with the test settings.
pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

/// An app with the test settings changed by `tweak`.
pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_faulty(tweak).await.0
}

/// The store under test: the embedded store, or, when `CQL_TEST_NODES`
/// names a database (the README test command starts Cassandra), a migrated
/// and empty keyspace of its own on it (from the pool: see `keyspaces`).
async fn store_under_test(dir: &std::path::Path, clock: &Arc<ManualClock>) -> (Arc<dyn Store>, Option<KeyspaceGuard>) {
    match std::env::var("CQL_TEST_NODES") {
        Ok(nodes) => {
            let (store, keyspace) = keyspaces::migrated(&nodes, clock, true).await;
            (store, Some(keyspace))
        }
        Err(_) => (Arc::new(EmbeddedStore::open(dir).expect("store opens")), None),
    }
}

/// An app whose store can be made to fail or stall, and the store.
pub async fn spawn_faulty(tweak: impl FnOnce(&mut Settings)) -> (TestApp, Arc<FaultyStore>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let (inner, keyspace) = store_under_test(dir.path(), &clock).await;
    start(dir, tweak, clock, FaultyStore::new(inner), keyspace).await
}

/// An app on a fresh keyspace of the CQL database at `nodes`.
pub async fn spawn_on_cql(nodes: &str) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::starting_now();
    let (store, keyspace) = keyspaces::migrated(nodes, &clock, false).await;
    start(dir, |_| {}, clock, FaultyStore::new(store), Some(keyspace)).await.0
}

/// Two nodes over one CQL keyspace (each with its own driver session and
/// faulty-store wrapper), sharing the clock and the key directory; `None`
/// unless `CQL_TEST_NODES` names a database.
pub async fn spawn_pair() -> Option<[(TestApp, Arc<FaultyStore>); 2]> {
    let nodes = std::env::var("CQL_TEST_NODES").ok()?;
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().to_owned();
    let clock = ManualClock::starting_now();
    let (first, keyspace) = keyspaces::migrated(&nodes, &clock, true).await;
    let second = keyspaces::open(&keyspace.target(), &clock).await;
    // As behind a load balancer: one key directory, one public URL.
    let share_keys = |s: &mut Settings| {
        *s = Settings::for_tests(&shared);
        s.http.public_url = Some("http://auth.test".into());
    };
    let a = start(tempfile::tempdir().unwrap(), share_keys, clock.clone(), FaultyStore::new(first), None).await;
    let b = start(dir, share_keys, clock, FaultyStore::new(second), Some(keyspace)).await;
    Some([a, b])
}

async fn start(
    dir: TempDir,
    tweak: impl FnOnce(&mut Settings),
    clock: Arc<ManualClock>,
    store: Arc<FaultyStore>,
    keyspace: Option<KeyspaceGuard>,
) -> (TestApp, Arc<FaultyStore>) {
    let mut settings = Settings::for_tests(dir.path());
    tweak(&mut settings);
    let outbox = settings.mail.outbox_dir.clone();
    let app = Application::build_on(settings, clock.clone(), store.clone()).await.expect("app builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let metrics_port = app.metrics_port();
    let handle = app.handle();
    let auth = app.auth();
    let running = Some(actix_web::rt::spawn(app.run_until_stopped()));
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
    (TestApp { base, outbox, metrics_port, client, clock, auth, handle, running, keyspace, _dir: dir }, store)
}

/// A response reduced to what tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts an error answer: status, code and the JSON error shape.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.body);
        assert_eq!(self.code(), code, "body: {}", self.body);
        assert!(self.body["error"].is_string(), "no error text: {}", self.body);
    }
}

pub async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
    Answer { status, headers, body }
}

/// A signed-in user as a test sees it.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub user_id: String,
}

impl Tokens {
    pub fn from(answer: &Answer) -> Self {
        Tokens {
            access: answer.body["token"].as_str().expect("token").to_owned(),
            refresh: answer.body["refresh_token"].as_str().expect("refresh_token").to_owned(),
            user_id: answer.body["user"]["id"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Answer {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.unwrap()).await
    }

    pub async fn send_json(&self, method: reqwest::Method, path: &str, bearer: Option<&str>, body: &Value) -> Answer {
        let mut request = self.client.request(method, self.url(path)).json(body);
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.send_json(reqwest::Method::POST, path, None, body).await
    }

    pub async fn post_auth(&self, path: &str, bearer: &str, body: &Value) -> Answer {
        self.send_json(reqwest::Method::POST, path, Some(bearer), body).await
    }

    pub async fn put_auth(&self, path: &str, bearer: &str, body: &Value) -> Answer {
        self.send_json(reqwest::Method::PUT, path, Some(bearer), body).await
    }

    pub async fn delete_auth(&self, path: &str, bearer: &str) -> Answer {
        answer(self.client.delete(self.url(path)).bearer_auth(bearer).send().await.unwrap()).await
    }

    pub async fn register(&self, email: &str) -> Answer {
        self.post("/api/v1/auth/register", &json!({"email": email, "password": PASSWORD, "name": "Test User"})).await
    }

    /// Registers `email` and returns its tokens (asserting 201).
    pub async fn signed_up(&self, email: &str) -> Tokens {
        let answer = self.register(email).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        Tokens::from(&answer)
    }

    /// `POST /api/v1/projects/{project}/auth/register`.
    pub async fn register_in(&self, project: &str, email: &str, password: &str) -> Answer {
        let path = format!("/api/v1/projects/{project}/auth/register");
        self.post(&path, &json!({"email": email, "password": password, "name": "In Project"})).await
    }

    /// `POST /api/v1/projects/{project}/auth/login`.
    pub async fn login_in(&self, project: &str, email: &str, password: &str) -> Answer {
        self.post(&format!("/api/v1/projects/{project}/auth/login"), &json!({"email": email, "password": password}))
            .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Answer {
        self.post("/api/v1/auth/login", &json!({"email": email, "password": password})).await
    }

    /// Logs `email` in with the standard password (asserting 200).
    pub async fn logged_in(&self, email: &str) -> Tokens {
        let answer = self.login(email, PASSWORD).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        Tokens::from(&answer)
    }

    pub async fn refresh(&self, refresh_token: &str) -> Answer {
        self.post("/api/v1/auth/refresh", &json!({"refresh_token": refresh_token})).await
    }

    pub async fn me(&self, access: &str) -> Answer {
        self.get("/api/v1/auth/me", Some(access)).await
    }
}

impl TestApp {
    /// Creates an API key for the signed-in `access` token.
    pub async fn create_key(&self, access: &str, body: Value) -> Answer {
        self.post_auth("/api/v1/auth/api-keys", access, &body).await
    }

    /// A key with scope `introspect` (the caller must be an admin).
    pub async fn introspect_key(&self, admin_access: &str) -> String {
        let answer = self.create_key(admin_access, json!({"name": "gateway", "scopes": ["introspect"]})).await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
        answer.body["api_key"].as_str().unwrap().to_owned()
    }

    /// `POST /introspect` with a form body, authenticated by `key`.
    pub async fn introspect(&self, key: &str, token: &str) -> Answer {
        let request = self.client.post(self.url("/api/v1/introspect")).bearer_auth(key).form(&[("token", token)]);
        answer(request.send().await.unwrap()).await
    }

    /// The (kind, detail) of `user`'s audit events, newest first, read by `admin`.
    pub async fn audit_events(&self, admin: &str, user: &str) -> Vec<(String, String)> {
        let log = self.get(&format!("/api/v1/admin/audit-log?user={user}&limit=100"), Some(admin)).await;
        assert_eq!(log.status, StatusCode::OK, "{}", log.body);
        let detail = |e: &Value| e["detail"].as_str().unwrap_or_default().to_owned();
        log.body["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["kind"].as_str().unwrap().to_owned(), detail(e)))
            .collect()
    }

    /// `GET /verify` with `credential` as the bearer.
    pub async fn verify(&self, credential: &str) -> Answer {
        self.get("/api/v1/verify", Some(credential)).await
    }
}

/// The messages in a mail directory (an outbox or a maildir) addressed to
/// `to`, as text, oldest first.
pub fn mails_to(dir: &std::path::Path, to: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut found: Vec<(std::time::SystemTime, String)> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(|e| {
            let text = std::fs::read_to_string(e.path()).ok()?;
            let modified = e.metadata().ok()?.modified().ok()?;
            text.lines().any(|l| l.eq_ignore_ascii_case(&format!("To: {to}"))).then_some((modified, text))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, text)| text).collect()
}

/// The 6-digit code in a message's plain-text part ("... is 123456").
pub fn code_in(mail: &str) -> String {
    let at = mail.find(" is ").expect("a code sentence") + 4;
    let code: String = mail[at..].chars().take(6).collect();
    assert!(code.len() == 6 && code.chars().all(|c| c.is_ascii_digit()), "no code in:\n{mail}");
    code
}

/// Waits (up to 10 s) for the `n`th message to `to` in `dir`; its code.
pub async fn nth_code(dir: &std::path::Path, to: &str, n: usize) -> String {
    for _ in 0..500 {
        if let Some(mail) = mails_to(dir, to).get(n - 1) {
            return code_in(mail);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no message #{n} to {to} in {}", dir.display());
}

impl TestApp {
    /// Asks for a code and returns it from the outbox (the `n`th mail to `email`).
    pub async fn mailed_code(&self, email: &str, purpose: &str, n: usize) -> String {
        let sent = self.post("/api/v1/auth/otp/send", &json!({"email": email, "purpose": purpose})).await;
        assert_eq!(sent.status, StatusCode::ACCEPTED, "{}", sent.body);
        nth_code(&self.outbox, email, n).await
    }
}
