//! Ed25519 signatures of concurrent first-sight tokens, verified together.
//!
//! A first-sight check is mostly one Ed25519 verification. `ed25519-dalek`
//! verifies n signatures at once for about 0.6 of n single verifications
//! (from 4 up), so the checks that arrive together share one: the first to
//! come leads, yields once to its executor so that the checks ready beside
//! it can join, then verifies the whole batch and hands each its verdict.
//! A lone check is verified alone, at once; a batch never exceeds `MAX`.
//!
//! A batch that fails (one bad signature or more) is verified again one by
//! one, so each check gets its own verdict; after a failure the next
//! `SINGLES_AFTER_FAILURE` checks are verified alone, so a stream of forged
//! tokens cannot make every batch pay twice.
//!
//! A batch passes what the single check passes. It may also pass a genuine
//! signature whose `R` was given a small-order component (batch verification
//! checks the cofactored equation): another encoding of a token we signed,
//! carrying the same claims, which only our key could have made.
//! Never: awaits anything but the one yield, or holds its lock while
//! verifying.

use std::future::poll_fn;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};

use ed25519_dalek::{Signature, Verifier, VerifyingKey};

/// The most signatures verified together (about 0.4 ms of work).
const MAX: usize = 16;

/// How many checks are verified alone after a batch failed.
const SINGLES_AFTER_FAILURE: u32 = 64;

/// One signature to check.
pub struct Job {
    pub message: Vec<u8>,
    pub signature: Signature,
    pub key: VerifyingKey,
}

impl Job {
    /// The single (strict) verification of this signature.
    pub fn verifies_alone(&self) -> bool {
        self.key.verify(&self.message, &self.signature).is_ok()
    }
}

struct Waiting {
    job: Job,
    verdict: Mutex<Verdict>,
}

enum Verdict {
    Pending(Option<Waker>),
    Done(bool),
}

#[derive(Default)]
pub struct BatchVerifier {
    /// The batch being gathered, and whether a check leads it.
    gathering: Mutex<(Vec<Arc<Waiting>>, bool)>,
    singles: AtomicU32,
}

impl BatchVerifier {
    /// Whether `job`'s signature verifies.
    pub async fn verify(&self, job: Job) -> bool {
        if self.singles.load(Ordering::Relaxed) > 0 {
            self.singles.fetch_sub(1, Ordering::Relaxed);
            return job.verifies_alone();
        }
        let waiting = Arc::new(Waiting { job, verdict: Mutex::new(Verdict::Pending(None)) });
        let role = {
            let mut gathering = self.gathering.lock().unwrap_or_else(PoisonError::into_inner);
            gathering.0.push(Arc::clone(&waiting));
            if gathering.0.len() >= MAX {
                gathering.1 = false;
                Role::Full(std::mem::take(&mut gathering.0))
            } else if gathering.1 {
                Role::Follow
            } else {
                gathering.1 = true;
                Role::Lead
            }
        };
        match role {
            Role::Full(batch) => self.run(batch),
            Role::Lead => {
                let mut lead = Lead { verifier: self, led: false };
                tokio::task::yield_now().await;
                lead.run();
            }
            Role::Follow => {}
        }
        poll_fn(|cx| {
            let mut verdict = waiting.verdict.lock().unwrap_or_else(PoisonError::into_inner);
            match &mut *verdict {
                Verdict::Done(ok) => Poll::Ready(*ok),
                Verdict::Pending(waker) => {
                    *waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Verifies what is gathered now, if anything.
    fn run_gathered(&self) {
        let batch = {
            let mut gathering = self.gathering.lock().unwrap_or_else(PoisonError::into_inner);
            gathering.1 = false;
            std::mem::take(&mut gathering.0)
        };
        self.run(batch);
    }

    fn run(&self, batch: Vec<Arc<Waiting>>) {
        let together = match batch.as_slice() {
            [] => return,
            [one] => one.job.verifies_alone(),
            _ => {
                let messages: Vec<&[u8]> = batch.iter().map(|w| w.job.message.as_slice()).collect();
                let signatures: Vec<Signature> = batch.iter().map(|w| w.job.signature).collect();
                let keys: Vec<VerifyingKey> = batch.iter().map(|w| w.job.key).collect();
                ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok()
            }
        };
        if !together && batch.len() > 1 {
            self.singles.store(SINGLES_AFTER_FAILURE, Ordering::Relaxed);
        }
        for waiting in &batch {
            let ok = together || (batch.len() > 1 && waiting.job.verifies_alone());
            let done = std::mem::replace(
                &mut *waiting.verdict.lock().unwrap_or_else(PoisonError::into_inner),
                Verdict::Done(ok),
            );
            if let Verdict::Pending(Some(waker)) = done {
                waker.wake();
            }
        }
    }
}

enum Role {
    /// This check filled the batch and verifies it now.
    Full(Vec<Arc<Waiting>>),
    /// This check verifies the batch after one yield.
    Lead,
    /// Another check verifies the batch.
    Follow,
}

/// The leader's duty: if its check is dropped during the yield (a client
/// gone), the batch is verified on the way out, so no follower waits for
/// a leader that will not come.
struct Lead<'a> {
    verifier: &'a BatchVerifier,
    led: bool,
}

impl Lead<'_> {
    fn run(&mut self) {
        self.led = true;
        self.verifier.run_gathered();
    }
}

impl Drop for Lead<'_> {
    fn drop(&mut self) {
        if !self.led {
            self.verifier.run_gathered();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;

    use ed25519_dalek::{Signer, SigningKey};
    use futures_util::future::join_all;

    use super::*;

    fn job(key: &SigningKey, message: &[u8], signed: &[u8]) -> Job {
        Job { message: message.to_vec(), signature: key.sign(signed), key: key.verifying_key() }
    }

    #[tokio::test]
    async fn concurrent_checks_share_a_batch_and_each_gets_its_verdict() {
        let verifier = BatchVerifier::default();
        let (a, b) = (SigningKey::from_bytes(&[1; 32]), SigningKey::from_bytes(&[2; 32]));
        // Alone.
        assert!(verifier.verify(job(&a, b"m", b"m")).await);
        assert!(!verifier.verify(job(&a, b"m", b"other")).await);
        // Together, all good: one batch (and full batches are cut at MAX).
        let good: Vec<_> =
            (0..40u8).map(|i| verifier.verify(job(if i % 2 == 0 { &a } else { &b }, &[i], &[i]))).collect();
        assert!(join_all(good).await.into_iter().all(|ok| ok));
        // Together, one forged: the batch fails, each is judged alone.
        let mut mixed: Vec<_> = (0..5u8).map(|i| job(&a, &[i], &[i])).collect();
        mixed[3] = job(&a, b"claims", b"other claims");
        mixed.push(Job { key: b.verifying_key(), ..job(&a, b"x", b"x") });
        let verdicts = join_all(mixed.into_iter().map(|j| verifier.verify(j))).await;
        assert_eq!(verdicts, [true, true, true, false, true, false]);
        // After a failed batch, checks go alone for a while (same verdicts).
        assert!(verifier.singles.load(Ordering::Relaxed) > 0);
        let after = join_all((0..3u8).map(|i| verifier.verify(job(&a, &[i], &[i])))).await;
        assert_eq!(after, [true, true, true]);
    }

    #[tokio::test]
    async fn a_leader_dropped_during_its_yield_leaves_no_follower_waiting() {
        let verifier = BatchVerifier::default();
        let key = SigningKey::from_bytes(&[3; 32]);
        let mut cx = std::task::Context::from_waker(Waker::noop());
        let mut leader = Box::pin(verifier.verify(job(&key, b"lead", b"lead")));
        // Polled once: it gathers, then yields.
        assert!(leader.as_mut().poll(&mut cx).is_pending());
        let mut follower = Box::pin(verifier.verify(job(&key, b"follow", b"follow")));
        assert!(follower.as_mut().poll(&mut cx).is_pending());
        drop(leader);
        assert!(follower.await);
    }
}
