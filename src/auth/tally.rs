//! Sign-ins and failed sign-ins, counted per project and minute on this
//! node and written to the store as the node's tallies (`flush`: every
//! few seconds, before the overview is read, and at shutdown), so the admin
//! overview can tell the last hour's logins of every node without a write
//! per login.
//!
//! Which audit events count, and how, is `audit::kind::login_outcome`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::account::ProjectId;
use crate::clock::Timestamp;
use crate::store::{LOGIN_TALLY_KEPT_MINUTES, LoginCounts, LoginTally, Store, StoreResult};

const MINUTE_MS: i64 = 60_000;

/// This node's counts of one project's minute.
#[derive(Clone, Copy)]
struct Open {
    counts: LoginCounts,
    /// Counted since last written.
    dirty: bool,
}

pub struct LoginTallies {
    /// This node's name in the tallies (random, per process).
    node: String,
    open: Mutex<HashMap<(ProjectId, i64), Open>>,
}

impl Default for LoginTallies {
    fn default() -> Self {
        LoginTallies { node: crate::token::b64url(&crate::token::random_bytes::<9>()), open: Mutex::default() }
    }
}

impl LoginTallies {
    fn open(&self) -> MutexGuard<'_, HashMap<(ProjectId, i64), Open>> {
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn note(&self, project: &ProjectId, at: Timestamp, succeeded: bool) {
        let minute = at.0.div_euclid(MINUTE_MS);
        let mut open = self.open();
        let entry =
            open.entry((project.clone(), minute)).or_insert(Open { counts: LoginCounts::default(), dirty: false });
        if succeeded {
            entry.counts.succeeded += 1;
        } else {
            entry.counts.failed += 1;
        }
        entry.dirty = true;
    }

    /// Writes every minute counted since the last flush (its totals so
    /// far), and forgets the minutes that are written and past. A minute
    /// whose write failed is written again next time, until it is older
    /// than the store keeps tallies.
    pub async fn flush(&self, store: &Arc<dyn Store>, now: Timestamp) -> StoreResult<usize> {
        let current = now.0.div_euclid(MINUTE_MS);
        let due: Vec<((ProjectId, i64), LoginCounts)> = {
            let mut open = self.open();
            open.retain(|(_, minute), entry| {
                *minute > current - LOGIN_TALLY_KEPT_MINUTES && (entry.dirty || *minute >= current)
            });
            open.iter_mut()
                .filter(|(_, entry)| entry.dirty)
                .map(|(key, entry)| {
                    entry.dirty = false;
                    (key.clone(), entry.counts)
                })
                .collect()
        };
        let mut result = Ok(due.len());
        for ((project, minute), counts) in due {
            let tally = LoginTally { project: project.clone(), minute, node: self.node.clone(), counts };
            if let Err(e) = store.put_login_tally(tally).await {
                if let Some(entry) = self.open().get_mut(&(project, minute)) {
                    entry.dirty = true;
                }
                result = Err(e);
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::embedded::EmbeddedStore;
    use crate::store::fault::FaultyStore;

    const NOW: Timestamp = Timestamp(1_800_000_000_000);

    #[tokio::test]
    async fn counts_reach_the_store_once_written_and_again_after_a_failed_write() {
        let dir = tempfile::tempdir().unwrap();
        let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let faulty = FaultyStore::new(Arc::clone(&embedded));
        let store: Arc<dyn Store> = faulty.clone();
        let (project, tallies) = (ProjectId::default_project(), LoginTallies::default());
        let minute = NOW.0 / MINUTE_MS;
        let sum = || async { embedded.sum_login_tallies(&project, minute - 59, minute).await.unwrap() };

        tallies.note(&project, NOW, true);
        tallies.note(&project, NOW, false);
        tallies.note(&project, Timestamp(NOW.0 - MINUTE_MS), true);
        faulty.fail_op("put_login_tally", true);
        assert!(tallies.flush(&store, NOW).await.is_err());
        assert_eq!(sum().await, LoginCounts::default());
        faulty.fail_op("put_login_tally", false);
        assert_eq!(tallies.flush(&store, NOW).await.unwrap(), 2, "both minutes written after the failure");
        assert_eq!(sum().await, LoginCounts { succeeded: 2, failed: 1 });
        assert_eq!(tallies.flush(&store, NOW).await.unwrap(), 0, "nothing new");

        // The current minute goes on counting from its totals; the past one is forgotten.
        tallies.note(&project, NOW, true);
        assert_eq!(tallies.flush(&store, NOW).await.unwrap(), 1);
        assert_eq!(sum().await, LoginCounts { succeeded: 3, failed: 1 });
        assert_eq!(tallies.open().len(), 1);
    }
}
