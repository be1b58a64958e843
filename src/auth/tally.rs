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
    /// One flush at a time: two at once could land an older total of a
    /// minute after a newer one.
    flushing: tokio::sync::Mutex<()>,
}

impl Default for LoginTallies {
    fn default() -> Self {
        LoginTallies {
            node: crate::token::b64url(&crate::token::random_bytes::<9>()),
            open: Mutex::default(),
            flushing: tokio::sync::Mutex::default(),
        }
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
    /// far), and forgets the written minutes before the last one (a sign-in
    /// timed just before a minute ended may be noted just after: its
    /// minute's totals are still there to add to). A minute whose write
    /// failed is written again next time, until it is older than the store
    /// keeps tallies.
    pub async fn flush(&self, store: &Arc<dyn Store>, now: Timestamp) -> StoreResult<usize> {
        let _one_at_a_time = self.flushing.lock().await;
        let current = now.0.div_euclid(MINUTE_MS);
        let due: Vec<((ProjectId, i64), LoginCounts)> = {
            let mut open = self.open();
            open.retain(|(_, minute), entry| {
                *minute > current - LOGIN_TALLY_KEPT_MINUTES && (entry.dirty || *minute >= current - 1)
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

    /// An embedded store, and a faulty wrapper of it to flush through.
    fn stores() -> (tempfile::TempDir, Arc<dyn Store>, Arc<FaultyStore>) {
        let dir = tempfile::tempdir().unwrap();
        let embedded: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
        let faulty = FaultyStore::new(Arc::clone(&embedded));
        (dir, embedded, faulty)
    }

    #[tokio::test]
    async fn counts_reach_the_store_once_written_and_again_after_a_failed_write() {
        let (_dir, embedded, faulty) = stores();
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

        // A minute goes on counting from its totals, the last one too (a
        // sign-in noted just after its minute ended).
        tallies.note(&project, NOW, true);
        tallies.note(&project, Timestamp(NOW.0 - MINUTE_MS), false);
        assert_eq!(tallies.flush(&store, NOW).await.unwrap(), 2);
        assert_eq!(sum().await, LoginCounts { succeeded: 3, failed: 2 });
        // Written minutes before the last are forgotten; the store keeps them.
        let later = Timestamp(NOW.0 + 2 * MINUTE_MS);
        assert_eq!(tallies.flush(&store, later).await.unwrap(), 0);
        assert_eq!(tallies.open().len(), 0);
        assert_eq!(sum().await, LoginCounts { succeeded: 3, failed: 2 });

        // A minute whose write keeps failing is dropped once the store would no longer keep it.
        tallies.note(&project, later, true);
        faulty.fail_op("put_login_tally", true);
        assert!(tallies.flush(&store, later).await.is_err());
        let gone = Timestamp(later.0 + LOGIN_TALLY_KEPT_MINUTES * MINUTE_MS);
        assert_eq!(tallies.flush(&store, gone).await.unwrap(), 0);
        assert_eq!(tallies.open().len(), 0);
    }

    #[tokio::test]
    async fn a_flush_waits_for_the_one_under_way_so_the_newest_totals_land_last() {
        let (_dir, embedded, faulty) = stores();
        let store: Arc<dyn Store> = faulty.clone();
        let (project, tallies) = (ProjectId::default_project(), Arc::new(LoginTallies::default()));
        let minute = NOW.0 / MINUTE_MS;

        tallies.note(&project, NOW, true);
        faulty.hold_next("put_login_tally");
        let first = tokio::spawn({
            let (tallies, store) = (Arc::clone(&tallies), Arc::clone(&store));
            async move { tallies.flush(&store, NOW).await }
        });
        tokio::task::yield_now().await;
        tallies.note(&project, NOW, true);
        let second = tokio::spawn({
            let (tallies, store) = (Arc::clone(&tallies), Arc::clone(&store));
            async move { tallies.flush(&store, NOW).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        faulty.release_held();
        first.await.unwrap().unwrap();
        second.await.unwrap().unwrap();
        let stored = embedded.sum_login_tallies(&project, minute, minute).await.unwrap();
        assert_eq!(stored, LoginCounts { succeeded: 2, failed: 0 }, "the older total of 1 did not land last");
    }
}
