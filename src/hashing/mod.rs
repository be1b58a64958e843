//! The bounded argon2id hashing pool.
//!
//! Owns a fixed set of OS threads and the bounded queue that feeds them.
//! Password work never runs on an actix worker, a shard, or a tokio blocking
//! thread: a full queue is refused at once (`HashError::Overloaded`, mapped to
//! 503 with `Retry-After`), and a job that waited past its deadline is
//! dropped unrun, because its client has likely given up.
//!
//! Each thread keeps one argon2 memory block buffer for its whole life:
//! allocating (and page-faulting) 19 MiB per hash costs milliseconds.
//!
//! Unknown accounts are verified against a dummy hash made at start with the
//! same cost, so a login's timing does not tell whether the account exists.
//!
//! Fair between accounts: a flow takes an [`AccountSlot`] for the account
//! it hashes for, and one account holds at most [`JOBS_PER_ACCOUNT`] at a
//! time (more is `HashError::AccountBusy`, 429), so a single signed-in user
//! or a single targeted address cannot fill the queue for everyone.

mod password;

pub use password::Password;

use std::hash::{Hash, Hasher as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use crossbeam_channel::{Receiver, Sender, TrySendError};
use tokio::sync::oneshot;

use crate::settings::HashCost;
use crate::telemetry::names;

/// How long a refused client should wait before trying again.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);
/// Password jobs one account may have queued or running at once.
pub const JOBS_PER_ACCOUNT: u32 = 2;
const SALT_BYTES: usize = 16;
const OUTPUT_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The queue is full; try again later.
    #[error("hashing pool queue is full")]
    Overloaded,
    /// The job waited longer than the deadline and was dropped.
    #[error("hashing job waited past its deadline")]
    DeadlineExceeded,
    /// The pool's threads are gone (shutdown).
    #[error("hashing pool stopped")]
    Stopped,
    /// The account already has `JOBS_PER_ACCOUNT` password jobs in the pool.
    #[error("this account's password work is at its bound")]
    AccountBusy,
    /// Parameters or a stored hash that argon2 refuses.
    #[error("argon2: {0}")]
    Argon2(String),
}

enum Work {
    Hash(Password),
    /// `None`: verify against the dummy hash and report a mismatch.
    Verify(Password, Option<String>),
}

enum Done {
    Hashed(String),
    Verified(bool),
}

struct Job {
    work: Work,
    enqueued: Instant,
    reply: oneshot::Sender<Result<Done, HashError>>,
}

/// Cloneable handle to the pool.
#[derive(Clone)]
pub struct HashingPool {
    queue: Sender<Job>,
    /// Account (hashed key) → slots held; an entry goes when its last slot does.
    slots: Arc<DashMap<u64, u32>>,
    /// The threads keep running while any handle lives; dropping the last
    /// handle closes the queue and they exit.
    _threads: Arc<Vec<std::thread::JoinHandle<()>>>,
}

/// What a worker needs to hash: parameters, the dummy, and its memory.
struct Hasher {
    params: Params,
    dummy: String,
    memory: Vec<Block>,
}

impl HashingPool {
    /// Starts `threads` workers behind a queue of `capacity` jobs.
    pub fn start(threads: usize, capacity: usize, deadline: Duration, cost: HashCost) -> Result<Self, HashError> {
        let params = Params::new(cost.memory_kib, cost.iterations, cost.parallelism, Some(OUTPUT_BYTES))
            .map_err(|e| HashError::Argon2(e.to_string()))?;
        let mut first = Some(Hasher::new(params.clone(), String::new()));
        let dummy = first.as_mut().map_or(Ok(String::new()), |h| h.hash(DUMMY_PASSWORD))?;
        let (queue, jobs) = crossbeam_channel::bounded::<Job>(capacity);
        let mut handles = Vec::with_capacity(threads);
        for index in 0..threads {
            let jobs = jobs.clone();
            // The first worker reuses the memory already faulted in for the dummy.
            let mut hasher = first.take().unwrap_or_else(|| Hasher::new(params.clone(), String::new()));
            hasher.dummy = dummy.clone();
            let handle = std::thread::Builder::new()
                .name(format!("hash-{index}"))
                .spawn(move || run_worker(hasher, &jobs, deadline))
                .map_err(argon2_error)?;
            handles.push(handle);
        }
        Ok(HashingPool { queue, slots: Arc::default(), _threads: Arc::new(handles) })
    }

    /// One of the [`JOBS_PER_ACCOUNT`] slots of `account`, held while its
    /// password work runs; `AccountBusy` when all are taken.
    pub fn account_slot(&self, account: &impl Hash) -> Result<AccountSlot, HashError> {
        let mut hasher = std::hash::DefaultHasher::new();
        account.hash(&mut hasher);
        let key = hasher.finish();
        let mut held = self.slots.entry(key).or_insert(0);
        if *held >= JOBS_PER_ACCOUNT {
            metrics::counter!(names::HASH_REJECTED).increment(1);
            return Err(HashError::AccountBusy);
        }
        *held += 1;
        Ok(AccountSlot { slots: Arc::clone(&self.slots), key })
    }

    fn submit(&self, work: Work) -> Result<oneshot::Receiver<Result<Done, HashError>>, HashError> {
        let (reply, answer) = oneshot::channel();
        let job = Job { work, enqueued: Instant::now(), reply };
        match self.queue.try_send(job) {
            Ok(()) => {
                metrics::gauge!(names::HASH_QUEUE_DEPTH).set(self.queue.len() as f64);
                Ok(answer)
            }
            Err(TrySendError::Full(_)) => {
                metrics::counter!(names::HASH_REJECTED).increment(1);
                Err(HashError::Overloaded)
            }
            Err(TrySendError::Disconnected(_)) => Err(HashError::Stopped),
        }
    }

    /// Hashes a new password into a PHC string.
    pub async fn hash(&self, password: Password) -> Result<String, HashError> {
        match self.submit(Work::Hash(password))?.await.map_err(|_| HashError::Stopped)?? {
            Done::Hashed(phc) => Ok(phc),
            Done::Verified(_) => Err(HashError::Stopped),
        }
    }

    /// Checks `password` against `stored`; with no stored hash, spends the
    /// same work on the dummy and answers `false`.
    pub async fn verify(&self, password: Password, stored: Option<String>) -> Result<bool, HashError> {
        match self.submit(Work::Verify(password, stored))?.await.map_err(|_| HashError::Stopped)?? {
            Done::Verified(ok) => Ok(ok),
            Done::Hashed(_) => Err(HashError::Stopped),
        }
    }

    /// Refuses at once, before any other work is spent on a request that
    /// would need a hash, while the queue is full. (The submit itself stays
    /// the authority: a slot seen free here may be gone by then.)
    pub fn admit(&self) -> Result<(), HashError> {
        if self.queue.is_full() {
            metrics::counter!(names::HASH_REJECTED).increment(1);
            return Err(HashError::Overloaded);
        }
        Ok(())
    }

    /// Jobs waiting now.
    pub fn queue_depth(&self) -> usize {
        self.queue.len()
    }
}

/// A held slot of an account's password work; given back when dropped.
pub struct AccountSlot {
    slots: Arc<DashMap<u64, u32>>,
    key: u64,
}

impl Drop for AccountSlot {
    fn drop(&mut self) {
        self.slots.remove_if_mut(&self.key, |_, held| {
            *held = held.saturating_sub(1);
            *held == 0
        });
    }
}

/// The hashing threads' nice value: when they and the HTTP workers want the
/// same core (a login flood on a small machine), token checks and the 503s
/// for the flood's excess run first; on an idle core hashing runs at full
/// speed all the same.
const HASH_THREAD_NICE: i32 = 10;

fn run_worker(mut hasher: Hasher, jobs: &Receiver<Job>, deadline: Duration) {
    // On Linux, PRIO_PROCESS of "this process" (None) is the calling thread.
    // Raising one's own nice value needs no privilege; failing is harmless.
    if let Err(e) = rustix::process::setpriority_process(None, HASH_THREAD_NICE) {
        tracing::debug!(error = %e, "hashing thread priority unchanged");
    }
    for job in jobs.iter() {
        metrics::gauge!(names::HASH_QUEUE_DEPTH).set(jobs.len() as f64);
        let waited = job.enqueued.elapsed();
        metrics::histogram!(names::HASH_WAIT).record(waited.as_secs_f64());
        if waited > deadline || job.reply.is_closed() {
            let _ = job.reply.send(Err(HashError::DeadlineExceeded));
            continue;
        }
        let started = Instant::now();
        let done = match job.work {
            Work::Hash(password) => hasher.hash(password.expose().as_bytes()).map(Done::Hashed),
            Work::Verify(password, stored) => {
                hasher.verify(password.expose().as_bytes(), stored.as_deref()).map(Done::Verified)
            }
        };
        metrics::histogram!(names::HASH_DURATION).record(started.elapsed().as_secs_f64());
        let _ = job.reply.send(done);
    }
}

fn argon2_error(e: impl std::fmt::Display) -> HashError {
    HashError::Argon2(e.to_string())
}

/// Hashed once at start; unknown accounts are checked against it.
const DUMMY_PASSWORD: &[u8] = b"portcullis dummy password, never a real one";

impl Hasher {
    fn new(params: Params, dummy: String) -> Self {
        Hasher { memory: vec![Block::default(); params.block_count()], params, dummy }
    }

    fn compute(&mut self, params: Params, password: &[u8], salt: &[u8], out: &mut [u8]) -> Result<(), HashError> {
        if self.memory.len() < params.block_count() {
            self.memory.resize(params.block_count(), Block::default());
        }
        let blocks = params.block_count();
        Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
            .hash_password_into_with_memory(password, salt, out, &mut self.memory[..blocks])
            .map_err(argon2_error)
    }

    fn hash(&mut self, password: &[u8]) -> Result<String, HashError> {
        let mut salt = [0u8; SALT_BYTES];
        getrandom::getrandom(&mut salt).map_err(argon2_error)?;
        let mut out = [0u8; OUTPUT_BYTES];
        self.compute(self.params.clone(), password, &salt, &mut out)?;
        let salt = SaltString::encode_b64(&salt).map_err(argon2_error)?;
        let phc = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(argon2_error)?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(argon2_error)?),
        };
        Ok(phc.to_string())
    }

    fn verify(&mut self, password: &[u8], stored: Option<&str>) -> Result<bool, HashError> {
        let Some(stored) = stored else {
            let dummy = self.dummy.clone();
            self.verify(password, Some(&dummy))?;
            return Ok(false);
        };
        let parsed = PasswordHash::new(stored).map_err(argon2_error)?;
        if parsed.algorithm != argon2::ARGON2ID_IDENT {
            return Err(HashError::Argon2("stored hash is not argon2id".into()));
        }
        let params = Params::try_from(&parsed).map_err(argon2_error)?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(HashError::Argon2("stored hash lacks salt or output".into()));
        };
        let mut salt_bytes = [0u8; 64];
        let salt = salt.decode_b64(&mut salt_bytes).map_err(argon2_error)?;
        let mut out = vec![0u8; expected.len()];
        self.compute(params, password, salt, &mut out)?;
        // `Output`'s equality is constant-time.
        Ok(Output::new(&out).map_err(argon2_error)? == expected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: HashCost = HashCost { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[test]
    fn an_account_holds_at_most_its_slots() {
        let pool = pool(1, 8);
        let (first, second) = (pool.account_slot(&"a").unwrap(), pool.account_slot(&"a").unwrap());
        assert!(matches!(pool.account_slot(&"a"), Err(HashError::AccountBusy)));
        assert!(pool.account_slot(&"b").is_ok(), "another account is not held up");
        drop(first);
        let third = pool.account_slot(&"a").unwrap();
        drop((second, third));
        assert!(pool.slots.is_empty(), "entries go with their last slot");
    }

    fn pool(threads: usize, capacity: usize) -> HashingPool {
        HashingPool::start(threads, capacity, Duration::from_secs(5), CHEAP).unwrap()
    }

    #[tokio::test]
    async fn hash_then_verify_round_trips() {
        let pool = pool(1, 4);
        let phc = pool.hash(Password::new("correct horse".into())).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"), "{phc}");
        assert!(pool.verify(Password::new("correct horse".into()), Some(phc.clone())).await.unwrap());
        assert!(!pool.verify(Password::new("wrong horse".into()), Some(phc)).await.unwrap());
    }

    #[tokio::test]
    async fn unknown_account_spends_work_and_fails() {
        let pool = pool(1, 4);
        assert!(!pool.verify(Password::new("anything".into()), None).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_made_with_other_costs_still_verify() {
        let strong = pool(1, 4);
        let other = HashingPool::start(
            1,
            4,
            Duration::from_secs(5),
            HashCost { memory_kib: 256, iterations: 2, parallelism: 1 },
        )
        .unwrap();
        let phc = other.hash(Password::new("rotated cost".into())).await.unwrap();
        assert!(strong.verify(Password::new("rotated cost".into()), Some(phc)).await.unwrap());
    }

    #[tokio::test]
    async fn full_queue_is_refused_at_once() {
        // A heavy cost on one thread with a queue of one: the third job cannot wait.
        let heavy = HashCost { memory_kib: 65_536, iterations: 3, parallelism: 1 };
        let pool = HashingPool::start(1, 1, Duration::from_secs(30), heavy).unwrap();
        let mut pending = Vec::new();
        let mut refused = 0;
        for _ in 0..8 {
            match pool.submit(Work::Hash(Password::new("x".repeat(8)))) {
                Ok(answer) => pending.push(answer),
                Err(HashError::Overloaded) => refused += 1,
                Err(e) => panic!("unexpected {e}"),
            }
        }
        assert!(refused >= 6, "only {refused} refused");
        for answer in pending {
            assert!(answer.await.unwrap().is_ok());
        }
    }

    #[tokio::test]
    async fn job_past_deadline_is_dropped() {
        let heavy = HashCost { memory_kib: 65_536, iterations: 3, parallelism: 1 };
        let pool = HashingPool::start(1, 4, Duration::from_millis(1), heavy).unwrap();
        let first = pool.submit(Work::Hash(Password::new("x".repeat(8)))).unwrap();
        let second = pool.submit(Work::Hash(Password::new("y".repeat(8)))).unwrap();
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        // The second waited behind a hash that takes far longer than 1 ms.
        assert!(matches!(second, Err(HashError::DeadlineExceeded)), "{:?}", second.is_ok());
        drop(first);
    }
}
