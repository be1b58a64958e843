//! The embedded store's figures for the admin overview, kept in memory: each
//! project's accounts (counted from `users_by_project` at open, then moved
//! by every create and delete that commits), and the login tallies of the
//! last two hours (one node writes them, so a restart starts them again).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use crate::account::ProjectId;
use crate::store::{LOGIN_TALLY_KEPT_MINUTES, LoginCounts, LoginTally};

#[derive(Default)]
pub(super) struct Counts {
    accounts: Mutex<HashMap<ProjectId, u64>>,
    /// (project, minute, node) → that node's totals.
    tallies: Mutex<BTreeMap<(ProjectId, i64, String), LoginCounts>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Counts {
    /// Counts one key of `users_by_project` ("project\0" ++ 16-byte id), at open.
    pub(super) fn count_index_key(&self, key: &[u8]) {
        let project = key.len().checked_sub(17).and_then(|end| std::str::from_utf8(&key[..end]).ok());
        if let Some(project) = project {
            *lock(&self.accounts).entry(ProjectId(project.to_owned())).or_default() += 1;
        }
    }

    pub(super) fn account_created(&self, project: &ProjectId) {
        *lock(&self.accounts).entry(project.clone()).or_default() += 1;
    }

    pub(super) fn account_deleted(&self, project: &ProjectId) {
        if let Some(count) = lock(&self.accounts).get_mut(project) {
            *count = count.saturating_sub(1);
        }
    }

    pub(super) fn accounts(&self, project: &ProjectId) -> u64 {
        lock(&self.accounts).get(project).copied().unwrap_or(0)
    }

    /// Keeps `tally`, and forgets every tally older than the kept window.
    pub(super) fn put_tally(&self, tally: LoginTally) {
        let mut tallies = lock(&self.tallies);
        let oldest = tally.minute - LOGIN_TALLY_KEPT_MINUTES;
        tallies.retain(|(_, minute, _), _| *minute > oldest);
        tallies.insert((tally.project, tally.minute, tally.node), tally.counts);
    }

    pub(super) fn sum_tallies(&self, project: &ProjectId, from: i64, to: i64) -> LoginCounts {
        let mut sum = LoginCounts::default();
        let start = (project.clone(), from, String::new());
        for ((of, minute, _), counts) in lock(&self.tallies).range(start..) {
            if of != project || *minute > to {
                break;
            }
            sum.add(*counts);
        }
        sum
    }
}
