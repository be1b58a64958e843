//! The overview: one project's accounts and the last hour's sign-ins, and
//! the gateway's live sessions, each read from what the store keeps
//! counted (nothing is listed to count it).

use crate::account::ProjectId;
use crate::clock::Timestamp;
use crate::store::LoginCounts;

use super::Admin;
use crate::auth::{AuthError, AuthService};

/// The minutes the login figures cover: the current one and the 59 before.
pub const WINDOW_MINUTES: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Overview {
    pub project: ProjectId,
    pub at: Timestamp,
    pub accounts: u64,
    /// Sign-ins and failed ones in the last `WINDOW_MINUTES`, every node's.
    pub logins: LoginCounts,
    /// Live sessions of every project.
    pub active_sessions: u64,
    /// Whether `active_sessions` is the database's estimate (CQL) rather than a count.
    pub sessions_estimated: bool,
}

impl AuthService {
    pub async fn overview(&self, _admin: &Admin, project: &ProjectId) -> Result<Overview, AuthError> {
        self.admin_project(project)?;
        // This node's latest sign-ins first, so they are in what is read.
        self.flush_login_tallies().await;
        let at = self.clock.now();
        let minute = at.0.div_euclid(60_000);
        Ok(Overview {
            project: project.clone(),
            at,
            accounts: self.store.count_users(project).await?,
            logins: self.store.sum_login_tallies(project, minute - (WINDOW_MINUTES - 1), minute).await?,
            active_sessions: self.store.count_active_sessions(at).await?,
            sessions_estimated: !self.store.counts_sessions_exactly(),
        })
    }
}
