//! The tests' CQL keyspaces. Creating and migrating a keyspace costs about
//! 3 s of schema changes on the test node, and dropping it 2.5 s more, so the
//! API suite keeps a pool: a test's migrated keyspace is emptied (TRUNCATE of
//! every table but `schema_migrations`, 0.5 s, off the test's thread) and
//! handed to the next test. Keyspaces that must start unmigrated (the crash
//! test's `serve --migrate`) or live on a node that a test stops (the fault
//! test) are made fresh and dropped instead.

use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use portcullis::clock::{ManualClock, SharedClock};
use portcullis::store::Store;
use portcullis::store::cql::{self, CqlStore, CqlTarget};
use scylla::client::session::Session;
use scylla::statement::Statement;

/// Long enough for schema changes and truncation on a busy test node.
const DDL_TIMEOUT: Duration = Duration::from_secs(60);

/// A test's own CQL keyspace: dropped with the guard, or, when pooled,
/// emptied and given to a later test. Either way they never pile up
/// (hundreds of live keyspaces would exhaust the test node's heap): a
/// process leaves at most its pool, which the next run sweeps.
pub struct KeyspaceGuard {
    pub(crate) name: String,
    pub(crate) nodes: Vec<String>,
    pooled: bool,
}

impl KeyspaceGuard {
    /// A fresh keyspace name on `nodes` (comma-separated), dropped with the guard.
    pub fn fresh(nodes: &str, prefix: &str) -> Self {
        let n = NEXT_KEYSPACE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        KeyspaceGuard {
            name: format!("{prefix}_{}_{n}", std::process::id()),
            nodes: nodes.split(',').map(str::to_owned).collect(),
            pooled: false,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn target(&self) -> CqlTarget {
        CqlTarget {
            hosts: self.nodes.clone(),
            keyspace: self.name.clone(),
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}".into(),
            keyspace_options: String::new(),
            consistency: Default::default(),
            serial_consistency: Default::default(),
        }
    }
}

impl Drop for KeyspaceGuard {
    fn drop(&mut self) {
        let target = self.target();
        if self.pooled {
            // The janitor empties it in the background; the test goes on.
            janitor().send(target);
            return;
        }
        // Off the test's runtime, and waited for, so keyspaces never pile up.
        let dropper = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async {
                let session = cql::connect(&target).await.ok()?;
                drop_keyspace(&session, &target.keyspace).await.ok()
            })
        });
        let _ = dropper.join();
    }
}

static NEXT_KEYSPACE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// A migrated, empty keyspace on `nodes`, and its store: one from the pool
/// when `pooled` and one is ready, else a new one.
pub async fn migrated(nodes: &str, clock: &Arc<ManualClock>, pooled: bool) -> (Arc<dyn Store>, KeyspaceGuard) {
    let hosts: Vec<String> = nodes.split(',').map(str::to_owned).collect();
    let ready = if pooled { janitor().take(&hosts) } else { None };
    let guard = match ready {
        Some(name) => KeyspaceGuard { name, nodes: hosts, pooled },
        None => {
            let prefix = if pooled { "pool" } else { "api" };
            let mut guard = KeyspaceGuard::fresh(nodes, prefix);
            guard.pooled = pooled;
            let target = guard.target();
            let session = cql::connect(&target).await.expect("CQL_TEST_NODES answers");
            cql::migrate::apply(&session, &target).await.expect("migrations apply");
            guard
        }
    };
    let store = open(&guard.target(), clock).await;
    (store, guard)
}

/// Another store (its own driver session) on an existing keyspace.
pub async fn open(target: &CqlTarget, clock: &Arc<ManualClock>) -> Arc<dyn Store> {
    let session = cql::connect(target).await.expect("CQL_TEST_NODES answers");
    let clock: SharedClock = clock.clone();
    Arc::new(CqlStore::open(session, target, clock).await.expect("statements prepare"))
}

async fn drop_keyspace(session: &Session, keyspace: &str) -> Result<(), scylla::errors::ExecutionError> {
    let mut drop = Statement::new(format!("DROP KEYSPACE IF EXISTS {keyspace}"));
    drop.set_request_timeout(Some(DDL_TIMEOUT));
    session.query_unpaged(drop, &[]).await.map(|_| ())
}

/// The pool's keeper: a thread of its own with one driver session per node
/// list, which empties returned keyspaces and files them as ready.
struct Janitor {
    returned: Mutex<mpsc::Sender<CqlTarget>>,
    /// Emptied keyspaces, by the node list they live on.
    ready: Mutex<HashMap<Vec<String>, Vec<String>>>,
}

impl Janitor {
    fn send(&self, target: CqlTarget) {
        let _ = self.returned.lock().unwrap().send(target);
    }

    fn take(&self, hosts: &[String]) -> Option<String> {
        self.ready.lock().unwrap().get_mut(hosts)?.pop()
    }
}

fn janitor() -> &'static Janitor {
    static JANITOR: OnceLock<Janitor> = OnceLock::new();
    JANITOR.get_or_init(|| {
        let (returned, queue) = mpsc::channel::<CqlTarget>();
        std::thread::Builder::new()
            .name("keyspace-janitor".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
                runtime.block_on(async {
                    let mut sessions: HashMap<Vec<String>, Session> = HashMap::new();
                    while let Ok(target) = queue.recv() {
                        // Writes the finished test's runtime sent last land first.
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        if !sessions.contains_key(&target.hosts) {
                            let Ok(session) = cql::connect(&target).await else { continue };
                            sweep_dead_processes(&session).await;
                            sessions.insert(target.hosts.clone(), session);
                        }
                        let session = &sessions[&target.hosts];
                        if empty(session, &target.keyspace).await {
                            janitor().ready.lock().unwrap().entry(target.hosts).or_default().push(target.keyspace);
                        } else {
                            let _ = drop_keyspace(session, &target.keyspace).await;
                        }
                    }
                });
            })
            .expect("the janitor thread starts");
        Janitor { returned: Mutex::new(returned), ready: Mutex::new(HashMap::new()) }
    })
}

/// Truncates every table of `keyspace` but the migration record, all at
/// once; false if any truncation failed.
async fn empty(session: &Session, keyspace: &str) -> bool {
    let Ok(tables) = tables(session, keyspace).await else { return false };
    let truncations = tables.iter().filter(|table| *table != "schema_migrations").map(|table| {
        let mut truncate = Statement::new(format!("TRUNCATE {keyspace}.{table}"));
        truncate.set_request_timeout(Some(DDL_TIMEOUT));
        session.query_unpaged(truncate, &[])
    });
    futures_util::future::join_all(truncations).await.iter().all(Result::is_ok)
}

async fn tables(session: &Session, keyspace: &str) -> anyhow::Result<Vec<String>> {
    let rows = session
        .query_unpaged("SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", (keyspace,))
        .await?
        .into_rows_result()?;
    Ok(rows.rows::<(String,)>()?.map(|row| row.map(|(name,)| name)).collect::<Result<_, _>>()?)
}

/// Drops the pooled keyspaces of test processes that are gone (`pool_PID_N`
/// with no such process), so runs on one database do not pile them up.
async fn sweep_dead_processes(session: &Session) {
    let Ok(rows) = session.query_unpaged("SELECT keyspace_name FROM system_schema.keyspaces", &[]).await else {
        return;
    };
    let Ok(rows) = rows.into_rows_result() else { return };
    let Ok(names) = rows.rows::<(String,)>() else { return };
    for (name,) in names.flatten() {
        let pid = name.strip_prefix("pool_").and_then(|rest| rest.split('_').next());
        if let Some(pid) = pid.filter(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            eprintln!("keyspaces: dropping {name}, left by test process {pid}");
            let _ = drop_keyspace(session, &name).await;
        }
    }
}
