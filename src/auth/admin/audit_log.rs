//! The audit log, as the admin API reads it: one project's events (the
//! `default` project's unless named), optionally one user's, optionally
//! one kind, newest first, a page at a time.

use crate::account::{AuditEvent, ProjectId, UserId};
use crate::clock::Timestamp;
use crate::store::AuditQuery;

use super::{Admin, CURSOR_REFUSED};
use crate::auth::{AuthError, AuthService};

/// The most events one request reads looking for a kind before it answers
/// with what it found and a cursor to go on from.
const MAX_SCANNED: usize = 2_000;

/// Which events, and from where.
#[derive(Debug, Clone)]
pub struct AuditFilter {
    pub project: ProjectId,
    pub user: Option<UserId>,
    pub kind: Option<String>,
    /// A cursor of this same filter (as `AuditPage::next_cursor` gave it).
    pub cursor: Option<String>,
    pub limit: usize,
}

impl AuditFilter {
    /// The list its cursors belong to: the same project, user and kind.
    fn list(&self) -> String {
        let user = self.user.map(|u| u.to_string()).unwrap_or_default();
        format!("audit\0{}\0{user}\0{}", self.project, self.kind.as_deref().unwrap_or_default())
    }
}

/// One page, newest first.
#[derive(Debug)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// Where the next page begins, when there may be more.
    pub next_cursor: Option<String>,
}

/// A cursor's contents: the `at` (8 bytes) and id (16) of the last event seen.
fn position(event: &AuditEvent) -> Vec<u8> {
    let mut bytes = event.at.0.to_be_bytes().to_vec();
    bytes.extend_from_slice(event.id.as_bytes());
    bytes
}

fn read_position(bytes: &[u8]) -> Option<(Timestamp, uuid::Uuid)> {
    let at = i64::from_be_bytes(bytes.get(..8)?.try_into().ok()?);
    let id = uuid::Uuid::from_slice(bytes.get(8..)?).ok()?;
    Some((Timestamp(at), id))
}

impl AuthService {
    pub async fn audit_log(&self, _admin: &Admin, filter: AuditFilter) -> Result<AuditPage, AuthError> {
        self.admin_project(&filter.project)?;
        let list = filter.list();
        let mut before = match &filter.cursor {
            Some(cursor) => Some(read_position(&self.open_cursor(&list, cursor)?).ok_or(CURSOR_REFUSED)?),
            None => None,
        };
        let since =
            Timestamp(self.clock.now().0 - i64::try_from(self.policy.audit_retention.as_millis()).unwrap_or(i64::MAX));
        let (mut events, mut scanned) = (Vec::new(), 0);
        loop {
            let wanted = filter.limit - events.len();
            let query = AuditQuery { project: filter.project.clone(), user: filter.user, before, since, limit: wanted };
            let page = self.store.list_audit_page(query).await?;
            let Some(last) = page.last() else {
                return Ok(AuditPage { events, next_cursor: None });
            };
            let full = page.len() == wanted;
            before = Some((last.at, last.id));
            scanned += page.len();
            let resume = position(last);
            events.extend(page.into_iter().filter(|e| filter.kind.as_deref().is_none_or(|kind| e.kind == kind)));
            if events.len() >= filter.limit || !full || scanned >= MAX_SCANNED {
                // More may follow only if the store filled what was asked.
                let next_cursor = full.then(|| self.seal_cursor(&list, &resume));
                return Ok(AuditPage { events, next_cursor });
            }
        }
    }
}
