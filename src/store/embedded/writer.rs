//! The embedded store's one writer thread, and what keeps the database
//! whole when the disk fills.
//!
//! Owns: the queue's consuming end, group commit (the jobs waiting run in
//! one transaction and one fsync serves them), the free-space reserve, and
//! the handle every reader opens its transactions from.
//!
//! Disk full. redb fails every later read and write of a `Database` once one
//! I/O has failed (`StorageError::PreviousIo`), until the file is reopened
//! (and repaired). So the writer never lets redb reach the end of the disk:
//! before each batch it checks the free space of the data directory's file
//! system, and below the reserve (`embedded_min_free_mb`) it refuses the
//! batch with `Unavailable` (503 `store_unavailable`) while reads go on. As
//! a safety net, for a disk filled between the check and the commit, a batch
//! that fails on I/O makes the writer drop the poisoned database and reopen
//! the file as soon as space is back; until then reads and writes answer
//! `Unavailable`, and no restart is needed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redb::{CommitError, Database, ReadTransaction, StorageError, TransactionError, WriteTransaction};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

use crate::store::{StoreError, StoreResult, unavailable};

/// The most jobs one transaction carries, so one commit's latency stays bounded.
const MAX_BATCH: usize = 256;
/// How often a writer whose database failed looks for space to reopen it.
const RECOVERY_POLL: Duration = Duration::from_millis(200);

const REOPENING: &str = "embedded store reopening after an I/O error";

/// How the embedded store uses its disk and memory (`embedded_min_free_mb`,
/// `embedded_cache_mb`).
#[derive(Debug, Clone, Copy)]
pub struct EmbeddedOptions {
    /// Bytes kept free on the data directory's disk; 0 turns the check off.
    pub min_free: u64,
    /// The most memory redb's page cache takes (its own default is 1 GiB).
    pub cache_bytes: usize,
}

/// A write job as the writer thread sees it.
pub(super) trait WriteJob: Send {
    /// Runs the job inside `txn`; the returned completion is called with the
    /// commit's outcome.
    fn run(self: Box<Self>, txn: &WriteTransaction) -> Box<dyn FnOnce(StoreResult<()>) + Send>;
    /// The transaction could not even start.
    fn fail(self: Box<Self>, error: StoreError);
}

pub(super) struct Job<T, F> {
    pub(super) op: F,
    pub(super) reply: oneshot::Sender<StoreResult<T>>,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send + 'static,
    F: FnOnce(&WriteTransaction) -> StoreResult<T> + Send,
{
    fn run(self: Box<Self>, txn: &WriteTransaction) -> Box<dyn FnOnce(StoreResult<()>) + Send> {
        let Job { op, reply } = *self;
        let outcome = op(txn);
        Box::new(move |committed| {
            // A caller that gave up waiting dropped its receiver; nothing to tell.
            let _ = reply.send(committed.and(outcome));
        })
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// The open database (none while the writer reopens it), its file, and the
/// reserve of free space the writer keeps on the file's disk.
pub(super) struct Handle {
    current: ArcSwapOption<Database>,
    file: PathBuf,
    cache_bytes: usize,
    space: FreeSpace,
}

/// Opens (or creates, or repairs) the database file with a page cache of
/// `cache_bytes`.
pub(super) fn open_file(file: &Path, cache_bytes: usize) -> Result<Database, redb::DatabaseError> {
    Database::builder().set_cache_size(cache_bytes).create(file)
}

impl Handle {
    pub(super) fn new(db: Database, file: PathBuf, options: EmbeddedOptions) -> Self {
        let dir = file.parent().map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        let space = FreeSpace { dir, min_free: options.min_free, short: AtomicBool::new(false) };
        Handle { current: ArcSwapOption::from_pointee(db), file, cache_bytes: options.cache_bytes, space }
    }

    /// (Bytes of the pages allocated, bytes of the file.) Takes a write
    /// transaction and aborts it: for tools, while nothing else writes.
    pub(super) fn file_usage(&self) -> StoreResult<(u64, u64)> {
        let current = self.current.load();
        let db = current.as_ref().ok_or_else(|| StoreError::Unavailable(REOPENING.into()))?;
        let txn = db.begin_write().map_err(unavailable)?;
        let stats = txn.stats().map_err(unavailable)?;
        txn.abort().map_err(unavailable)?;
        let file = std::fs::metadata(&self.file).map_err(unavailable)?.len();
        Ok((stats.allocated_pages().saturating_mul(stats.page_size() as u64), file))
    }

    /// A read transaction on the current database.
    pub(super) fn begin_read(&self) -> StoreResult<ReadTransaction> {
        let current = self.current.load();
        let db = current.as_ref().ok_or_else(|| StoreError::Unavailable(REOPENING.into()))?;
        db.begin_read().map_err(unavailable)
    }
}

/// The free-space check made before every batch.
struct FreeSpace {
    dir: PathBuf,
    /// Bytes that must stay free; 0 turns the check off.
    min_free: u64,
    /// Below the reserve at the last check (logged once per change).
    short: AtomicBool,
}

impl FreeSpace {
    /// `Err` says why writes must wait.
    fn check(&self) -> Result<(), String> {
        if self.min_free == 0 {
            return Ok(());
        }
        // A file system that cannot tell lets the write try.
        let Ok(stats) = rustix::fs::statvfs(&self.dir) else { return Ok(()) };
        let free = stats.f_bavail.saturating_mul(stats.f_frsize);
        if free < self.min_free {
            if !self.short.swap(true, Ordering::Relaxed) {
                tracing::error!(
                    free_bytes = free,
                    reserve_bytes = self.min_free,
                    dir = %self.dir.display(),
                    "embedded store: disk almost full, refusing writes until space is freed"
                );
            }
            return Err(format!(
                "disk full: {free} bytes free under {}, below the {}-byte reserve",
                self.dir.display(),
                self.min_free
            ));
        }
        if self.short.swap(false, Ordering::Relaxed) {
            tracing::info!(free_bytes = free, "embedded store: disk space is back, writes resume");
        }
        Ok(())
    }
}

/// Runs until every sender is gone: batches queued jobs into one
/// transaction each, after the free-space check.
pub(super) fn run(handle: &Handle, mut queue: mpsc::Receiver<Box<dyn WriteJob>>) {
    let Some(mut db) = handle.current.load_full() else { return };
    while let Some(first) = queue.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        if let Err(why) = handle.space.check() {
            fail_all(jobs, &why);
            continue;
        }
        if let Err(Poisoned) = commit(&db, jobs) {
            drop(db);
            match reopen(handle, &mut queue) {
                Some(reopened) => db = reopened,
                None => return,
            }
        }
    }
}

/// The database failed an I/O and refuses everything until reopened.
struct Poisoned;

fn commit(db: &Database, jobs: Vec<Box<dyn WriteJob>>) -> Result<(), Poisoned> {
    let mut txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            let poisoned = matches!(&e, TransactionError::Storage(s) if is_io(s));
            fail_all(jobs, &e.to_string());
            return if poisoned { Err(Poisoned) } else { Ok(()) };
        }
    };
    txn.set_durability(redb::Durability::Immediate);
    let completions: Vec<_> = jobs.into_iter().map(|job| job.run(&txn)).collect();
    let committed = txn.commit();
    if let Err(e) = &committed {
        tracing::error!(error = %e, "embedded store commit failed");
    }
    let poisoned = matches!(&committed, Err(CommitError::Storage(s)) if is_io(s));
    for complete in completions {
        complete(committed.as_ref().map(|_| ()).map_err(unavailable));
    }
    if poisoned { Err(Poisoned) } else { Ok(()) }
}

fn is_io(error: &StorageError) -> bool {
    matches!(error, StorageError::Io(_) | StorageError::PreviousIo)
}

fn fail_all(jobs: Vec<Box<dyn WriteJob>>, why: &str) {
    for job in jobs {
        job.fail(StoreError::Unavailable(why.to_owned()));
    }
}

/// Drops the poisoned database and opens the file again (redb repairs it)
/// once the reserve is free, failing the jobs that arrive meanwhile. `None`
/// when the store closed first.
fn reopen(handle: &Handle, queue: &mut mpsc::Receiver<Box<dyn WriteJob>>) -> Option<Arc<Database>> {
    handle.current.store(None);
    tracing::error!(file = %handle.file.display(), "embedded store: an I/O error failed a commit; reopening the file");
    let mut last_error = String::new();
    loop {
        loop {
            match queue.try_recv() {
                Ok(job) => job.fail(StoreError::Unavailable(REOPENING.into())),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return None,
            }
        }
        if handle.space.check().is_ok() {
            // Readers still in a transaction of the old database hold the
            // file's lock (DatabaseAlreadyOpen) for a moment longer.
            match open_file(&handle.file, handle.cache_bytes) {
                Ok(db) => {
                    let db = Arc::new(db);
                    handle.current.store(Some(Arc::clone(&db)));
                    tracing::info!(file = %handle.file.display(), "embedded store reopened; writes resume");
                    return Some(db);
                }
                Err(e) if e.to_string() != last_error => {
                    tracing::warn!(error = %e, "embedded store: cannot reopen yet");
                    last_error = e.to_string();
                }
                Err(_) => {}
            }
        }
        #[expect(
            clippy::disallowed_methods,
            reason = "the writer's own OS thread, with nothing else to do until the disk allows a reopen"
        )]
        std::thread::sleep(RECOVERY_POLL);
    }
}
