//! `migrations/NNNN_name.cql`, embedded in the binary and applied in order.
//!
//! Every statement in a migration is idempotent DDL (`IF NOT EXISTS`,
//! `DROP TABLE IF EXISTS`, or `ALTER TABLE t WITH` table options), so a
//! migration interrupted half-way is simply applied again. After a
//! migration's statements have run (and the cluster agrees on the schema) it
//! is recorded in `schema_migrations` with its checksum; recorded migrations
//! are skipped, so running `migrate` twice is harmless, and a recorded
//! migration whose file changed since is refused. Migrations are
//! forward-only: fixes are new files.
//!
//! File rules: statements end with `;`, `--` starts a comment to the end of
//! the line, and neither may appear inside a string literal.

use scylla::client::session::Session;
use scylla::statement::Statement;

use super::{CqlError, CqlTarget};

/// A migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub text: &'static str,
}

/// Every migration, in order. A test checks this list against `migrations/`.
pub const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, name: "0001_core.cql", text: include_str!("../../../migrations/0001_core.cql") },
    Migration {
        version: 2,
        name: "0002_codes_and_audit.cql",
        text: include_str!("../../../migrations/0002_codes_and_audit.cql"),
    },
    Migration { version: 3, name: "0003_projects.cql", text: include_str!("../../../migrations/0003_projects.cql") },
    Migration {
        version: 4,
        name: "0004_users_by_project.cql",
        text: include_str!("../../../migrations/0004_users_by_project.cql"),
    },
    Migration {
        version: 5,
        name: "0005_audit_by_user.cql",
        text: include_str!("../../../migrations/0005_audit_by_user.cql"),
    },
    Migration { version: 6, name: "0006_passkeys.cql", text: include_str!("../../../migrations/0006_passkeys.cql") },
    Migration {
        version: 7,
        name: "0007_identities.cql",
        text: include_str!("../../../migrations/0007_identities.cql"),
    },
    Migration {
        version: 8,
        name: "0008_speculative_retry.cql",
        text: include_str!("../../../migrations/0008_speculative_retry.cql"),
    },
    Migration {
        version: 9,
        name: "0009_overview_counts.cql",
        text: include_str!("../../../migrations/0009_overview_counts.cql"),
    },
];

impl Migration {
    /// The statements of the file, comments removed.
    pub fn statements(&self) -> Vec<String> {
        let without_comments: String = self
            .text
            .lines()
            .map(|line| line.split_once("--").map_or(line, |(code, _)| code))
            .collect::<Vec<_>>()
            .join("\n");
        without_comments
            .split(';')
            .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn checksum(&self) -> String {
        blake3::hash(self.text.as_bytes()).to_hex()[..16].to_owned()
    }
}

/// What `apply` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub applied: Vec<u32>,
    pub already: Vec<u32>,
}

/// Maps a driver error to the statement it failed on (cut to 120 characters).
fn failed<E: std::fmt::Display>(statement: &str) -> impl FnOnce(E) -> CqlError + '_ {
    move |e| CqlError::Statement { statement: statement.chars().take(120).collect(), message: e.to_string() }
}

/// How long one schema statement may take. Far above the 2 s of ordinary
/// statements: a schema change waits for the whole cluster, and several
/// at once (two nodes starting with `--migrate`) queue behind each other.
const DDL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

async fn run(session: &Session, statement: &str) -> Result<(), CqlError> {
    let mut query = Statement::new(statement);
    query.set_request_timeout(Some(DDL_TIMEOUT));
    session.query_unpaged(query, &[]).await.map(|_| ()).map_err(failed(statement))
}

/// Creates the keyspace if needed and applies every pending migration.
pub async fn apply(session: &Session, target: &CqlTarget) -> Result<Applied, CqlError> {
    apply_through(session, target, u32::MAX).await
}

/// [`apply`], up to migration `last` (tests: a keyspace as an older release left it).
async fn apply_through(session: &Session, target: &CqlTarget, last: u32) -> Result<Applied, CqlError> {
    let keyspace = &target.keyspace;
    run(
        session,
        &format!(
            "CREATE KEYSPACE IF NOT EXISTS {keyspace} WITH replication = {} {}",
            target.replication, target.keyspace_options
        ),
    )
    .await?;
    run(
        session,
        &format!(
            "CREATE TABLE IF NOT EXISTS {keyspace}.schema_migrations \
             (version int PRIMARY KEY, name text, checksum text, applied_at timestamp)"
        ),
    )
    .await?;
    agree(session).await?;
    session.use_keyspace(keyspace, false).await.map_err(failed("USE keyspace"))?;
    let mut outcome = Applied::default();
    for migration in MIGRATIONS.iter().filter(|m| m.version <= last) {
        let recorded = session
            .query_unpaged(
                format!("SELECT checksum FROM {keyspace}.schema_migrations WHERE version = ?"),
                (migration.version as i32,),
            )
            .await
            .map_err(failed("SELECT schema_migrations"))?
            .into_rows_result()
            .map_err(failed("SELECT schema_migrations"))?
            .maybe_first_row::<(Option<String>,)>()
            .map_err(failed("SELECT schema_migrations"))?;
        let checksum = migration.checksum();
        if let Some((recorded,)) = recorded {
            let recorded = recorded.unwrap_or_default();
            if recorded != checksum {
                return Err(CqlError::ChecksumMismatch {
                    version: migration.version,
                    name: migration.name.to_owned(),
                    recorded,
                    current: checksum,
                });
            }
            outcome.already.push(migration.version);
            continue;
        }
        for statement in migration.statements() {
            run(session, &statement).await?;
            agree(session).await?;
        }
        if migration.version == USERS_BY_PROJECT {
            index_users_by_project(session, keyspace).await?;
        }
        if migration.version == ACCOUNT_COUNTS {
            count_accounts(session, keyspace).await?;
        }
        session
            .query_unpaged(
                format!(
                    "INSERT INTO {keyspace}.schema_migrations (version, name, checksum, applied_at) \
                     VALUES (?, ?, ?, toTimestamp(now()))"
                ),
                (migration.version as i32, migration.name, checksum.as_str()),
            )
            .await
            .map_err(failed("INSERT schema_migrations"))?;
        tracing::info!(version = migration.version, name = migration.name, "migration applied");
        outcome.applied.push(migration.version);
    }
    Ok(outcome)
}

/// The migration that made `users_by_project`.
const USERS_BY_PROJECT: u32 = 4;

/// Lists every user made before `users_by_project` existed in it: once, as
/// migration 4 is applied (before it is recorded, so an interrupted run
/// does it again; the writes are idempotent).
async fn index_users_by_project(session: &Session, keyspace: &str) -> Result<(), CqlError> {
    use futures_util::TryStreamExt;
    let select = format!("SELECT user_id, project_id FROM {keyspace}.users");
    let insert = format!("INSERT INTO {keyspace}.users_by_project (project_id, bucket, user_id) VALUES (?, ?, ?)");
    let insert = session.prepare(insert.as_str()).await.map_err(failed("PREPARE users_by_project"))?;
    let pager = session.query_iter(select.as_str(), &[]).await.map_err(failed(&select))?;
    let mut rows = pager.rows_stream::<(uuid::Uuid, Option<String>)>().map_err(failed(&select))?;
    let mut indexed = 0u64;
    while let Some((id, project)) = rows.try_next().await.map_err(failed(&select))? {
        let project = project.unwrap_or_else(|| crate::account::ProjectId::DEFAULT.to_owned());
        let bucket = super::store::user_bucket(crate::account::UserId(id));
        session.execute_unpaged(&insert, (project, bucket, id)).await.map_err(failed("INSERT users_by_project"))?;
        indexed += 1;
    }
    tracing::info!(indexed, "existing users listed in users_by_project");
    Ok(())
}

/// The migration that made `account_counts`.
const ACCOUNT_COUNTS: u32 = 9;

/// Sets each project's account counter to the users made before it
/// existed: once, as migration 9 is applied (before it is recorded). The
/// counter is moved by the difference between the users counted and its
/// value, so an interrupted run done again lands on the same count.
async fn count_accounts(session: &Session, keyspace: &str) -> Result<(), CqlError> {
    use futures_util::TryStreamExt;
    let select = format!("SELECT project_id FROM {keyspace}.users");
    let pager = session.query_iter(select.as_str(), &[]).await.map_err(failed(&select))?;
    let mut rows = pager.rows_stream::<(Option<String>,)>().map_err(failed(&select))?;
    let mut counted: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
    while let Some((project,)) = rows.try_next().await.map_err(failed(&select))? {
        let project = project.unwrap_or_else(|| crate::account::ProjectId::DEFAULT.to_owned());
        *counted.entry(project).or_default() += 1;
    }
    let read = format!("SELECT accounts FROM {keyspace}.account_counts WHERE project_id = ?");
    let add = format!("UPDATE {keyspace}.account_counts SET accounts = accounts + ? WHERE project_id = ?");
    for (project, users) in &counted {
        let now = session
            .query_unpaged(read.as_str(), (project,))
            .await
            .map_err(failed(&read))?
            .into_rows_result()
            .map_err(failed(&read))?
            .maybe_first_row::<(Option<scylla::value::Counter>,)>()
            .map_err(failed(&read))?
            .and_then(|(count,)| count)
            .map_or(0, |count| count.0);
        if users - now != 0 {
            let by = scylla::value::Counter(users - now);
            session.query_unpaged(add.as_str(), (by, project)).await.map_err(failed(&add))?;
        }
    }
    tracing::info!(projects = counted.len(), "existing accounts counted in account_counts");
    Ok(())
}

async fn agree(session: &Session) -> Result<(), CqlError> {
    session.await_schema_agreement().await.map(|_| ()).map_err(|e| CqlError::Agreement(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_matches_the_migrations_directory() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".cql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.name).collect();
        assert_eq!(files, listed);
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version as usize, index + 1, "versions are 1, 2, 3, ...");
            assert!(migration.name.starts_with(&format!("{:04}_", migration.version)));
        }
    }

    #[test]
    fn statements_drop_comments_and_split_on_semicolons() {
        let m = Migration {
            version: 9,
            name: "0009_x.cql",
            text: "-- header\nCREATE TABLE a (x int PRIMARY KEY); -- trailing\n\n-- only a comment\nCREATE TABLE b (\n  y int PRIMARY KEY\n);\n",
        };
        assert_eq!(m.statements(), vec!["CREATE TABLE a (x int PRIMARY KEY)", "CREATE TABLE b ( y int PRIMARY KEY )"]);
    }

    /// Creating only what is missing, dropping only what is there, or
    /// setting a table's options (`ALTER TABLE t WITH ...`; adding, dropping
    /// or renaming a column is not idempotent).
    fn is_idempotent_ddl(statement: &str) -> bool {
        let words: Vec<&str> = statement.split_whitespace().collect();
        statement.contains("IF NOT EXISTS")
            || statement.starts_with("DROP TABLE IF EXISTS")
            || matches!(words.as_slice(), ["ALTER", "TABLE", _, "WITH", ..])
    }

    #[test]
    fn only_options_are_altered() {
        assert!(is_idempotent_ddl("ALTER TABLE users WITH speculative_retry = '50ms'"));
        assert!(!is_idempotent_ddl("ALTER TABLE users ADD nickname text"));
        assert!(!is_idempotent_ddl("ALTER TABLE users DROP nickname"));
        assert!(!is_idempotent_ddl("CREATE TABLE users (id uuid PRIMARY KEY)"));
    }

    #[test]
    fn every_core_statement_is_idempotent_ddl() {
        for migration in MIGRATIONS {
            for statement in migration.statements() {
                assert!(is_idempotent_ddl(&statement), "{}: {statement}", migration.name);
            }
        }
    }

    /// A keyspace of its own on the database `CQL_TEST_NODES` names (the
    /// test command starts Cassandra); `None` (the test is skipped) without one.
    fn test_target(name: &str) -> Option<CqlTarget> {
        let Ok(nodes) = std::env::var("CQL_TEST_NODES") else {
            eprintln!("skipped: CQL_TEST_NODES not set");
            return None;
        };
        Some(CqlTarget {
            hosts: nodes.split(',').map(str::to_owned).collect(),
            keyspace: format!("{name}_{}", std::process::id()),
            replication: "{'class': 'NetworkTopologyStrategy', 'replication_factor': 1}".into(),
            keyspace_options: String::new(),
            consistency: Default::default(),
            serial_consistency: Default::default(),
        })
    }

    async fn drop_keyspace(session: &Session, keyspace: &str) {
        // Schema changes wait on every node's agreement: longer than a request's 2 s under load.
        let mut drop = scylla::statement::Statement::new(format!("DROP KEYSPACE {keyspace}"));
        drop.set_request_timeout(Some(std::time::Duration::from_secs(60)));
        session.query_unpaged(drop, &[]).await.unwrap();
    }

    #[tokio::test]
    async fn accounts_made_before_the_counters_are_counted_once() {
        let Some(target) = test_target("migrate_counts") else { return };
        let session = super::super::connect(&target).await.unwrap();
        apply_through(&session, &target, ACCOUNT_COUNTS - 1).await.unwrap();
        let insert = format!(
            "INSERT INTO {}.users (user_id, project_id, record, updated_at) VALUES (?, ?, 0x00, toTimestamp(now()))",
            target.keyspace
        );
        for project in ["default", "default", "default", "mobile", "mobile"] {
            session.query_unpaged(insert.as_str(), (uuid::Uuid::new_v4(), project)).await.unwrap();
        }
        let read = |project: &'static str| {
            let (session, keyspace) = (&session, target.keyspace.clone());
            async move {
                let select = format!("SELECT accounts FROM {keyspace}.account_counts WHERE project_id = ?");
                let rows = session.query_unpaged(select, (project,)).await.unwrap().into_rows_result().unwrap();
                rows.maybe_first_row::<(scylla::value::Counter,)>().unwrap().map_or(0, |(count,)| count.0)
            }
        };
        assert_eq!(apply(&session, &target).await.unwrap().applied, vec![ACCOUNT_COUNTS]);
        assert_eq!((read("default").await, read("mobile").await), (3, 2));
        // Counting again (a run interrupted before the migration was
        // recorded) lands on the same numbers.
        count_accounts(&session, &target.keyspace).await.unwrap();
        assert_eq!((read("default").await, read("mobile").await, read("none").await), (3, 2, 0));
        drop_keyspace(&session, &target.keyspace).await;
    }

    #[tokio::test]
    async fn applying_twice_is_harmless() {
        let Some(target) = test_target("migrate_test") else { return };
        let session = super::super::connect(&target).await.unwrap();
        let every: Vec<_> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(every, (1..=every.len() as u32).collect::<Vec<_>>(), "numbered 1, 2, ... in order");
        let first = apply(&session, &target).await.unwrap();
        assert_eq!(first.applied, every);
        let second = apply(&session, &target).await.unwrap();
        assert_eq!(second, Applied { applied: vec![], already: every });
        // 0008's option reached the tables (Cassandra writes it back as '50ms').
        let rows = session
            .query_unpaged(
                "SELECT speculative_retry FROM system_schema.tables WHERE keyspace_name = ? AND table_name = ?",
                (&target.keyspace, "sessions"),
            )
            .await
            .unwrap()
            .into_rows_result()
            .unwrap();
        let (speculative_retry,): (String,) = rows.single_row().unwrap();
        assert_eq!(speculative_retry.to_lowercase(), "50ms");
        drop_keyspace(&session, &target.keyspace).await;
    }
}
