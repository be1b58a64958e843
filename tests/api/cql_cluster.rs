//! A real three-node cluster: Cassandra on 127.0.0.1, .2 and .3 (one JVM
//! each, 1 GiB heaps, one token each), a keyspace with replication factor 3
//! made by `portcullis migrate`, and two gateway processes over it at the
//! default consistency (LOCAL_QUORUM, LWTs at LOCAL_SERIAL). Under load
//! through both gateways one node is killed: after the first seconds nothing
//! fails (the load goes on 20 s with the node down); then, the load paused
//! and the node still down, 50 racing registrations of one email across both
//! gateways make one account and 20 racing refreshes of one token make one
//! successor; the load resumes, the node comes back and everything
//! acknowledged signs in. Runs only when `CQL_CLUSTER_TEST=1`: the README test command
//! sets it in a step of its own, after the shared test node (which holds
//! 127.0.0.1) has stopped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cql_fault::{Node, node_script};
use crate::harness::PASSWORD;
use crate::keyspaces::KeyspaceGuard;
use crate::process::{Gateway, command, start_with};

/// Each node's address and token (the ring split in three).
const NODES: [(&str, &str); 3] = [
    ("127.0.0.1", "-9223372036854775808"),
    ("127.0.0.2", "-3074457345618258603"),
    ("127.0.0.3", "3074457345618258602"),
];
const SEEDS: &str = "127.0.0.1,127.0.0.2,127.0.0.3";
/// The node the test kills and brings back.
const VICTIM: usize = 2;
/// How long after the kill errors may still be seen. A statement in flight
/// on the dead node as coordinator fails with its connection (an LWT is not
/// retried: its outcome is unknown). Reads that picked the dead node as a
/// replica no longer wait for its conviction (about 18 s): the tables
/// speculate after 50 ms (migration 0008). Before that migration they timed
/// out for up to 10 s after the kill; since, only requests in flight at the
/// kill have failed.
const SETTLE: Duration = Duration::from_secs(10);

async fn start_node(index: usize, node: &Node) {
    let (address, token) = NODES[index];
    let env = [("CASSANDRA_ADDRESS", address), ("CASSANDRA_SEEDS", SEEDS), ("CASSANDRA_TOKEN", token)];
    node_script("start", node.0.path(), &env).await;
}

/// Waits until every node lists the other two as peers (the ring is whole).
async fn ring_formed(deadline: Duration) {
    let started = Instant::now();
    for (address, _) in NODES {
        loop {
            let session = scylla::client::session_builder::SessionBuilder::new()
                .known_node(format!("{address}:9042"))
                .build()
                .await;
            let known = session.map(|s| s.get_cluster_state().get_nodes_info().len()).unwrap_or(0);
            if known == NODES.len() {
                break;
            }
            assert!(started.elapsed() < deadline, "{address} knows {known} nodes after {deadline:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// One load request: when it was sent and answered, what it was, and its
/// status (0 for a transport error).
struct Request {
    sent: Instant,
    answered: Instant,
    what: &'static str,
    status: u16,
}

type Seen = Vec<Request>;

async fn send(gateway: &Gateway, path: &str, bearer: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = match body {
        Some(body) => gateway.client.post(format!("{}{path}", gateway.base)).json(&body),
        None => gateway.client.get(format!("{}{path}", gateway.base)),
    };
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    match request.timeout(Duration::from_secs(10)).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            (status, response.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// What the test tells the load workers.
#[derive(Default)]
struct Control {
    stop: AtomicBool,
    /// Held while the races run: their 50 argon2 jobs at once would make
    /// the pool shed the load's own requests (503 `overloaded`), which says
    /// nothing of the node that is down.
    paused: AtomicBool,
    /// Load requests in flight.
    busy: AtomicUsize,
}

impl Control {
    /// Pauses the load and waits (bounded) for its requests in flight.
    async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        for _ in 0..300 {
            if self.busy.load(Ordering::SeqCst) == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("load requests still in flight 15 s after the pause");
    }
}

/// Registrations, logins, refreshes (each worker rotating its own chain)
/// and token checks until `stop`, at most 10,000 rounds; the accounts whose
/// registration was acknowledged go into `made`.
async fn load(gateway: Arc<Gateway>, worker: usize, control: Arc<Control>) -> (Seen, Vec<String>) {
    let (mut seen, mut made) = (Seen::new(), Vec::new());
    let email = format!("worker{worker}@example.com");
    let (status, first) =
        send(&gateway, "/api/v1/auth/register", None, Some(json!({"email": email, "password": PASSWORD, "name": "W"})))
            .await;
    assert_eq!(status, 201, "a worker's own account: {first}");
    let text = |v: &Value, field: &str| v[field].as_str().unwrap_or_else(|| panic!("{field} in {v}")).to_owned();
    let (mut access, mut refresh) = (text(&first, "token"), text(&first, "refresh_token"));
    made.push(email.clone());
    for i in 0..10_000 {
        if control.stop.load(Ordering::SeqCst) {
            break;
        }
        control.busy.fetch_add(1, Ordering::SeqCst);
        if control.paused.load(Ordering::SeqCst) {
            control.busy.fetch_sub(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let sent = Instant::now();
        let (what, status) = match i % 4 {
            0 => {
                let (status, _) =
                    send(&gateway, "/api/v1/auth/login", None, Some(json!({"email": email, "password": PASSWORD})))
                        .await;
                ("login", status)
            }
            1 => {
                let new = format!("w{worker}-{i}@example.com");
                let body = json!({"email": new, "password": PASSWORD, "name": "N"});
                let (status, _) = send(&gateway, "/api/v1/auth/register", None, Some(body)).await;
                if status == 201 {
                    made.push(new);
                }
                ("register", status)
            }
            2 => {
                let body = json!({"refresh_token": refresh});
                let (status, answer) = send(&gateway, "/api/v1/auth/refresh", None, Some(body)).await;
                if status == 200 {
                    refresh = text(&answer, "refresh_token");
                    access = text(&answer, "token");
                }
                ("refresh", status)
            }
            _ => ("verify", send(&gateway, "/api/v1/verify", Some(&access), None).await.0),
        };
        seen.push(Request { sent, answered: Instant::now(), what, status });
        control.busy.fetch_sub(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (seen, made)
}

fn failed(status: u16) -> bool {
    status == 0 || status >= 500
}

/// A registration sent again, as a client would, after a 503 `overloaded`
/// (the gateway shedding load: 50 argon2 jobs at once on this 2-core
/// machine can wait past the pool's 2 s deadline), at most five times and
/// after the `Retry-After` second.
async fn register_as_a_client_would(gateway: &Gateway, body: Value) -> (u16, Value) {
    for _ in 0..4 {
        let (status, answer) = send(gateway, "/api/v1/auth/register", None, Some(body.clone())).await;
        if status != 503 || answer["code"] != "overloaded" {
            return (status, answer);
        }
        eprintln!("a racing registration was shed (503 overloaded); sending it again in 1 s");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    send(gateway, "/api/v1/auth/register", None, Some(body)).await
}

/// 50 registrations of one email, half on each gateway, all at once: one account.
async fn racing_registrations(a: &Gateway, b: &Gateway) {
    let attempts = (0..50).map(|i| {
        let body = json!({"email": "race@example.com", "password": PASSWORD, "name": format!("Race {i}")});
        register_as_a_client_would(if i % 2 == 0 { a } else { b }, body)
    });
    let answers = futures_util::future::join_all(attempts).await;
    let created = answers.iter().filter(|(status, _)| *status == 201).count();
    assert_eq!(created, 1, "one account from 50 racing registrations: {answers:?}");
    for (status, body) in &answers {
        if *status != 201 && *status != 409 {
            print_warnings(a, b).await;
        }
        assert!(*status == 201 || *status == 409, "a racing registration answered {status}: {body}");
    }
    // The one account is the winner's (each racer sent its own name).
    let winner = answers.iter().position(|(status, _)| *status == 201).unwrap();
    for gateway in [a, b] {
        let body = json!({"email": "race@example.com", "password": PASSWORD});
        let (status, login) = send(gateway, "/api/v1/auth/login", None, Some(body)).await;
        assert_eq!(status, 200, "{login}");
        let token = login["token"].as_str().unwrap();
        let (_, me) = send(gateway, "/api/v1/auth/me", Some(token), None).await;
        assert_eq!(me["name"], format!("Race {winner}"), "{me}");
    }
}

/// The gateways' warnings and errors, and their store errors by operation,
/// for a failure's report.
async fn print_warnings(a: &Gateway, b: &Gateway) {
    for gateway in [a, b] {
        for line in gateway.log.lock().unwrap().iter().filter(|l| l.contains("WARN") || l.contains("ERROR")) {
            eprintln!("{line}");
        }
        let metrics = gateway.client.get(format!("{}/metrics", gateway.base)).send().await;
        let text = match metrics {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => continue,
        };
        for line in text.lines() {
            if line.starts_with("portcullis_store_errors_total") && !line.ends_with(" 0") {
                eprintln!("{}: {line}", gateway.base);
            }
        }
    }
}

/// Seconds from `origin` to `at`, negative before it.
fn offset(at: Instant, origin: Instant) -> String {
    match at.checked_duration_since(origin) {
        Some(after) => format!("{:.3}", after.as_secs_f64()),
        None => format!("-{:.3}", (origin - at).as_secs_f64()),
    }
}

/// Now, as the nodes' logs write it (UTC), to line the test's events up with theirs.
fn wall_clock() -> String {
    let output = std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M:%S,%3N"]).output().unwrap();
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// What each node's log says of the others going down and coming up.
fn print_membership(nodes: &[Node]) {
    for (node, (address, _)) in nodes.iter().zip(NODES) {
        let log = std::fs::read_to_string(node.0.path().join("logs/system.log")).unwrap_or_default();
        for line in log.lines().filter(|l| l.contains("is now DOWN") || l.contains("is now UP")) {
            eprintln!("  {address}: {line}");
        }
    }
}

/// Waits (bounded) until both gateways register and sign in ten times in a
/// row: a new cluster's JVMs are still warming up.
async fn warmed_up(a: &Gateway, b: &Gateway) -> Duration {
    let started = Instant::now();
    let mut in_a_row = 0;
    for i in 0..1_000 {
        let gateway = if i % 2 == 0 { a } else { b };
        let body = json!({"email": format!("warm{i}@example.com"), "password": PASSWORD, "name": "Warm"});
        let (registered, _) = send(gateway, "/api/v1/auth/register", None, Some(body)).await;
        let body = json!({"email": format!("warm{i}@example.com"), "password": PASSWORD});
        let (logged_in, _) = send(gateway, "/api/v1/auth/login", None, Some(body)).await;
        in_a_row = if registered == 201 && logged_in == 200 { in_a_row + 1 } else { 0 };
        if in_a_row == 10 {
            return started.elapsed();
        }
        assert!(started.elapsed() < Duration::from_secs(90), "the cluster is not serving after 90 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the cluster never served ten rounds in a row");
}

/// 20 refreshes of one token, half on each gateway, all at once: one successor.
async fn racing_refreshes(a: &Gateway, b: &Gateway) {
    let body = json!({"email": "race@example.com", "password": PASSWORD});
    let (status, login) = send(a, "/api/v1/auth/login", None, Some(body)).await;
    assert_eq!(status, 200, "{login}");
    let body = json!({"refresh_token": login["refresh_token"]});
    let attempts =
        (0..20).map(|i| send(if i % 2 == 0 { a } else { b }, "/api/v1/auth/refresh", None, Some(body.clone())));
    let answers = futures_util::future::join_all(attempts).await;
    let mut successors: Vec<&str> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .filter_map(|(_, body)| body["refresh_token"].as_str())
        .collect();
    successors.sort_unstable();
    successors.dedup();
    assert_eq!(successors.len(), 1, "one successor from 20 racing refreshes: {answers:?}");
    for (status, body) in &answers {
        if *status != 200 && *status != 401 {
            print_warnings(a, b).await;
        }
        assert!(*status == 200 || *status == 401, "a racing refresh answered {status}: {body}");
    }
}

#[actix_web::test]
async fn three_nodes_lose_one_under_load_and_keep_their_guarantees() {
    if std::env::var("CQL_CLUSTER_TEST").as_deref() != Ok("1") {
        eprintln!("skipped: CQL_CLUSTER_TEST=1 not set (the README test command sets it)");
        return;
    }
    let nodes: Vec<Node> = (0..3).map(|_| Node(tempfile::tempdir().unwrap())).collect();
    let started = Instant::now();
    futures_util::future::join_all(nodes.iter().enumerate().map(|(i, node)| start_node(i, node))).await;
    ring_formed(Duration::from_secs(120)).await;
    eprintln!("three nodes up and in one ring after {:?}", started.elapsed());

    let hosts = NODES.map(|(address, _)| format!("{address}:9042")).join(",");
    let keyspace = KeyspaceGuard::fresh(&hosts, "three");
    let store = format!("cql://{hosts}/{}", keyspace.name());
    let dir = tempfile::tempdir().unwrap();
    let replication = "{'class': 'NetworkTopologyStrategy', 'replication_factor': 3}";
    let migrating = Instant::now();
    let migrated = command(dir.path())
        .env("PORTCULLIS_STORE", &store)
        .env("PORTCULLIS_CQL_REPLICATION", replication)
        .arg("migrate")
        .output()
        .unwrap();
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));
    eprintln!("keyspace with RF 3 created and migrated in {:?}", migrating.elapsed());
    let env = [("PORTCULLIS_STORE", store.as_str())];
    let a = Arc::new(start_with(dir.path(), &env));
    let b = Arc::new(start_with(dir.path(), &env));
    eprintln!("both gateways serving steadily after {:?}", warmed_up(&a, &b).await);

    let control = Arc::new(Control::default());
    let workers: Vec<_> = (0..6)
        .map(|w| {
            let gateway = Arc::clone(if w % 2 == 0 { &a } else { &b });
            actix_web::rt::spawn(load(gateway, w, Arc::clone(&control)))
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let victim = &nodes[VICTIM];
    let pid = std::fs::read_to_string(victim.0.path().join("cassandra.pid")).unwrap();
    // Taken before the signal: a request in flight when the node dies fails
    // after this moment (an unanswered LWT's outcome is unknown: 503).
    let killed_at = Instant::now();
    let killed = std::process::Command::new("kill").args(["-KILL", pid.trim()]).status().unwrap();
    assert!(killed.success());
    eprintln!("{} killed at {}", NODES[VICTIM].0, wall_clock());
    // The load goes on with the node down: past SETTLE, nothing may fail.
    tokio::time::sleep(SETTLE + Duration::from_secs(10)).await;
    control.pause().await;
    let racing = Instant::now();
    racing_registrations(&a, &b).await;
    racing_refreshes(&a, &b).await;
    eprintln!("the races, with the node down, took {:?}", racing.elapsed());
    control.paused.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(5)).await;

    let restarting = Instant::now();
    start_node(VICTIM, victim).await;
    let back_at = Instant::now();
    eprintln!(
        "{} down for {:?}; it answered again {:?} after its start",
        NODES[VICTIM].0,
        back_at - killed_at,
        back_at - restarting
    );
    tokio::time::sleep(Duration::from_secs(5)).await;
    control.stop.store(true, Ordering::SeqCst);

    let (mut seen, mut made) = (Seen::new(), Vec::new());
    for worker in workers {
        let (s, m) = worker.await.unwrap();
        seen.extend(s);
        made.extend(m);
    }
    // Early: answered after the kill and sent within SETTLE of it.
    let early = |r: &&Request| r.answered >= killed_at && r.sent < killed_at + SETTLE;
    let (early, late): (Vec<&Request>, Vec<&Request>) = seen.iter().filter(|r| failed(r.status)).partition(early);
    eprintln!(
        "{} load requests through two gateways; {} failed in the first {SETTLE:?} after the kill, {} otherwise",
        seen.len(),
        early.len(),
        late.len()
    );
    for r in early.iter().chain(&late) {
        let (sent, answered) = (offset(r.sent, killed_at), offset(r.answered, killed_at));
        eprintln!("  {} answered {}: sent at {sent} s, answered at {answered} s from the kill", r.what, r.status);
    }
    print_membership(&nodes);
    if !late.is_empty() {
        print_warnings(&a, &b).await;
    }
    assert!(late.is_empty(), "{} failures outside the first seconds after the kill (listed above)", late.len());
    for r in &seen {
        assert!(matches!(r.status, 200 | 201) || failed(r.status), "{} answered {}", r.what, r.status);
    }
    assert!(seen.iter().any(|r| r.sent > back_at), "the load went on after the node came back");

    // Everything acknowledged signs in, through either gateway.
    for (i, email) in made.iter().enumerate() {
        let gateway = if i % 2 == 0 { &a } else { &b };
        let (status, body) =
            send(gateway, "/api/v1/auth/login", None, Some(json!({"email": email, "password": PASSWORD}))).await;
        assert_eq!(status, 200, "{email}: {body}");
    }
    eprintln!("{} acknowledged accounts sign in", made.len());
    drop((a, b));
    drop(keyspace); // while the nodes are up
}
