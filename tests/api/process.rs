//! The real binary as an operator runs it: settings errors, SIGTERM, SIGKILL
//! durability, and key rotation across restarts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;

use crate::harness::{PASSWORD, Tokens, answer};

const BINARY: &str = env!("CARGO_BIN_EXE_portcullis");
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A gateway process on a free loopback port; killed when dropped.
pub(crate) struct Gateway {
    child: Child,
    pub(crate) base: String,
    pub(crate) client: reqwest::Client,
    /// Every line the process wrote to stdout (its log).
    pub(crate) log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn command(data_dir: &Path) -> Command {
    let mut command = Command::new(BINARY);
    command
        .env_clear()
        .env("PORTCULLIS_DATA_DIR", data_dir)
        .env("PORTCULLIS_LISTEN", "127.0.0.1:0")
        // Fixed, as in production: the issuer must not change across restarts.
        .env("PORTCULLIS_PUBLIC_URL", "http://auth.test")
        .env("PORTCULLIS_LOG_FORMAT", "json")
        .env("PORTCULLIS_HASH_MEMORY_KIB", "1024")
        .env("PORTCULLIS_HASH_ITERATIONS", "1")
        .env("PORTCULLIS_RATE_LIMIT", "off");
    command
}

/// Starts `serve` and waits for its "listening" log line to learn the port.
fn start(data_dir: &Path) -> Gateway {
    start_with(data_dir, &[])
}

pub(crate) fn start_with(data_dir: &Path, env: &[(&str, &str)]) -> Gateway {
    start_serving(data_dir, env, &[])
}

/// `serve` with `args` (such as `--migrate`) and `env`.
pub(crate) fn start_serving(data_dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Gateway {
    let mut child = command(data_dir)
        .envs(env.iter().copied())
        .arg("serve")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (found, port) = std::sync::mpsc::channel();
    let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let lines = std::sync::Arc::clone(&log);
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if !sent && line.contains("portcullis listening") {
                let json: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                let _ = found.send(json["port"].as_u64());
                sent = true;
            }
            lines.lock().unwrap().push(line);
        }
    });
    let port = port.recv_timeout(START_DEADLINE).expect("gateway did not start").expect("port in log line");
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(30)).build().unwrap();
    Gateway { child, base: format!("http://127.0.0.1:{port}"), client, log }
}

impl Gateway {
    pub(crate) async fn post(&self, path: &str, body: serde_json::Value) -> crate::harness::Answer {
        answer(self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap()).await
    }

    pub(crate) async fn get(&self, path: &str, bearer: Option<&str>) -> crate::harness::Answer {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        answer(request.send().await.unwrap()).await
    }

    async fn login(&self, email: &str) -> crate::harness::Answer {
        self.post("/api/v1/auth/login", serde_json::json!({"email": email, "password": PASSWORD})).await
    }

    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits (bounded) for the process to exit; returns its exit code.
    pub(crate) fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + START_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            std::thread::park_timeout(Duration::from_millis(50));
        }
        panic!("gateway did not exit");
    }
}

#[actix_web::test]
async fn store_stats_tells_where_the_bytes_go_and_refuses_while_the_gateway_runs() {
    let dir = tempfile::tempdir().unwrap();
    let nothing = command(dir.path()).arg("store-stats").output().unwrap();
    assert!(!nothing.status.success());
    assert!(String::from_utf8_lossy(&nothing.stderr).contains("no embedded store"), "{nothing:?}");
    assert!(!dir.path().join("portcullis.redb").exists(), "looking created nothing");

    let mut gateway = start(dir.path());
    for i in 0..3 {
        let email = format!("stats{i}@example.com");
        let registered = gateway
            .post("/api/v1/auth/register", serde_json::json!({"email": email, "password": PASSWORD, "name": "S"}))
            .await;
        assert_eq!(registered.status, reqwest::StatusCode::CREATED, "{}", registered.body);
    }
    let busy = command(dir.path()).arg("store-stats").output().unwrap();
    assert!(!busy.status.success(), "the running gateway holds the file");
    assert!(String::from_utf8_lossy(&busy.stderr).contains("is a gateway running on it?"), "{busy:?}");
    gateway.signal("TERM");
    assert_eq!(gateway.wait_exit(), Some(0));

    let output = command(dir.path()).arg("store-stats").output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    let rows = |table: &str| -> u64 {
        let line =
            stdout.lines().find(|l| l.split_whitespace().next() == Some(table)).unwrap_or_else(|| panic!("{stdout}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    assert_eq!((rows("users"), rows("users_by_email"), rows("sessions")), (3, 3, 3), "{stdout}");
    assert!(stdout.contains("B allocated, file"), "{stdout}");
}

#[test]
fn invalid_setting_stops_the_start_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let output = command(dir.path()).env("PORTCULLIS_SHARDS", "lots").arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("PORTCULLIS_SHARDS"), "{stderr}");
    let unknown = command(dir.path()).env("PORTCULLIS_SHARDZ", "4").arg("serve").output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
}

#[actix_web::test]
async fn acknowledged_registration_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(dir.path());
    let registered = gateway
        .post(
            "/api/v1/auth/register",
            serde_json::json!({"email": "durable@example.com", "password": PASSWORD, "name": "D"}),
        )
        .await;
    assert_eq!(registered.status, StatusCode::CREATED);
    gateway.signal("KILL");
    drop(gateway);
    let restarted = start(dir.path());
    let login = restarted.login("durable@example.com").await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    // The refresh token issued before the crash still works too.
    let refreshed = restarted
        .post("/api/v1/auth/refresh", serde_json::json!({"refresh_token": registered.body["refresh_token"]}))
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
}

#[actix_web::test]
async fn sigterm_shuts_down_cleanly_with_exit_code_0() {
    let dir = tempfile::tempdir().unwrap();
    let mut gateway = start(dir.path());
    assert_eq!(gateway.get("/healthz", None).await.status, StatusCode::OK);
    gateway.signal("TERM");
    assert_eq!(gateway.wait_exit(), Some(0));
}

#[actix_web::test]
async fn sigterm_lets_in_flight_requests_finish() {
    let dir = tempfile::tempdir().unwrap();
    // A costly hash keeps the login in flight while the signal arrives.
    let mut gateway =
        start_with(dir.path(), &[("PORTCULLIS_HASH_MEMORY_KIB", "65536"), ("PORTCULLIS_HASH_ITERATIONS", "3")]);
    let request = gateway
        .client
        .post(format!("{}/api/v1/auth/login", gateway.base))
        .json(&serde_json::json!({"email": "nobody@example.com", "password": "in flight"}))
        .send();
    let in_flight = actix_web::rt::spawn(request);
    tokio::time::sleep(Duration::from_millis(300)).await;
    gateway.signal("TERM");
    let response = in_flight.await.unwrap().expect("the in-flight request was answered");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(gateway.wait_exit(), Some(0));
}

#[actix_web::test]
async fn key_rotation_keeps_old_tokens_valid() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = start(dir.path());
    let old = Tokens::from(
        &gateway
            .post(
                "/api/v1/auth/register",
                serde_json::json!({"email": "k@example.com", "password": PASSWORD, "name": "K"}),
            )
            .await,
    );
    let old_kid = jsonwebtoken::decode_header(&old.access).unwrap().kid.unwrap();
    drop(gateway);

    let rotated = command(dir.path()).args(["keys", "rotate"]).output().unwrap();
    assert!(rotated.status.success(), "{}", String::from_utf8_lossy(&rotated.stderr));

    let gateway = start(dir.path());
    let jwks = gateway.get("/.well-known/jwks.json", None).await;
    let kids: Vec<_> =
        jwks.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    assert_eq!(kids.len(), 2, "{kids:?}");
    assert!(kids.contains(&old_kid));
    // The old token still verifies; new tokens are signed by the new key.
    assert_eq!(gateway.get("/api/v1/auth/me", Some(&old.access)).await.status, StatusCode::OK);
    let fresh = Tokens::from(&gateway.login("k@example.com").await);
    let new_kid = jsonwebtoken::decode_header(&fresh.access).unwrap().kid.unwrap();
    assert_ne!(new_kid, old_kid);
    assert!(kids.contains(&new_kid));
    assert_eq!(gateway.get("/api/v1/auth/me", Some(&fresh.access)).await.status, StatusCode::OK);
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_data_directory_is_private_and_an_exposed_key_stops_the_start() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let gateway = start(&data);
    drop(gateway);
    assert_eq!(mode(&data), 0o700, "the data directory");
    for file in ["portcullis.redb", "secrets.key", "api-key-hash.key"] {
        assert_eq!(mode(&data.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&data.join("keys")), 0o700, "the signing-key directory");
    for key in std::fs::read_dir(data.join("keys")).unwrap() {
        assert_eq!(mode(&key.unwrap().path()), 0o600, "a signing key");
    }
    assert_eq!(mode(&data.join("outbox")), 0o700, "the outbox (mails carry codes)");

    // A secret another user can read may have leaked: the start is refused with one line, exit 2.
    let secrets = data.join("secrets.key");
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = command(&data).arg("serve").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("secrets.key") && stderr.contains("0644"), "{stderr}");

    // A directory made loose by hand is tightened again; the start then goes on.
    std::fs::set_permissions(&secrets, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(data.join("portcullis.redb"), std::fs::Permissions::from_mode(0o644)).unwrap();
    drop(start(&data));
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("portcullis.redb")), 0o600);
}

/// `portcullis admin create --email <email> --password-stdin` on `data_dir`,
/// the password on its standard input: (succeeded, stdout, stderr).
fn admin_create(data_dir: &Path, email: &str, password: &str) -> (bool, String, String) {
    use std::io::Write;
    let mut child = command(data_dir)
        .args(["admin", "create", "--email", email, "--password-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[actix_web::test]
async fn admin_create_makes_the_first_superadmin_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = admin_create(dir.path(), "not-an-address", "a long good password");
    assert!(!ok && stderr.contains("--email"), "{stderr}");
    let (ok, _, stderr) = admin_create(dir.path(), "boss@example.com", "short");
    assert!(!ok && stderr.contains("password"), "{stderr}");
    let (ok, stdout, stderr) = admin_create(dir.path(), "boss@example.com", "a long good password");
    assert!(ok && stdout.contains("superadmin"), "{stderr}");
    let (ok, _, stderr) = admin_create(dir.path(), "other@example.com", "a long good password");
    assert!(!ok && stderr.contains("has a superadmin"), "{stderr}");

    let gateway = start(dir.path());
    let login = gateway
        .post(
            "/api/v1/auth/login",
            serde_json::json!({"email": "boss@example.com", "password": "a long good password"}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(login.body["user"]["role"], "superadmin");
    let boss = Tokens::from(&login);
    assert_eq!(gateway.get("/api/v1/admin/projects", Some(&boss.access)).await.status, StatusCode::OK);
    // The web's first registration is a plain user now, and the superadmin cannot be demoted alone.
    let body = serde_json::json!({"email": "first@example.com", "password": PASSWORD, "name": "First"});
    let registered = gateway.post("/api/v1/auth/register", body).await;
    assert_eq!(registered.body["user"]["role"], "user", "{}", registered.body);
    let demote = gateway
        .client
        .patch(format!("{}/api/v1/admin/projects/default/users/{}", gateway.base, boss.user_id))
        .bearer_auth(&boss.access)
        .json(&serde_json::json!({"role": "user"}))
        .send()
        .await
        .unwrap();
    assert_eq!(demote.status(), StatusCode::CONFLICT);
}
