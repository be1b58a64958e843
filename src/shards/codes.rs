//! One-time email codes: a presented code is checked against the live code
//! of its (project, purpose, address); a wrong one counts a try (the last
//! allowed try kills the code), a right one is consumed once cluster-wide.

use crate::account::{CodePurpose, ProjectId};
use crate::clock::Timestamp;
use crate::store::Store;

use super::{ShardCommand, ShardError, UserShard, Work};

/// Check a presented code; `true` if it was the live code and this call
/// consumed it. Routed by (project, address), so one address's tries are
/// counted in one place.
#[derive(Debug, Clone)]
pub struct ConsumeCode {
    pub project: ProjectId,
    pub purpose: CodePurpose,
    pub subject: String,
    /// The keyed digest of the presented code.
    pub digest: [u8; 32],
    /// Wrong tries after which the code is dead.
    pub max_attempts: u32,
}

impl ShardCommand for ConsumeCode {
    type Output = bool;

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<bool> {
        let store = shard.store.clone();
        Box::pin(async move { consume(&*store, self, now).await })
    }
}

async fn consume(store: &dyn Store, check: ConsumeCode, now: Timestamp) -> Result<bool, ShardError> {
    let ConsumeCode { project, purpose, subject, digest, max_attempts } = check;
    let Some(mut code) = store.find_code(&project, purpose, &subject).await? else {
        return Ok(false);
    };
    if code.expires_at <= now {
        store.delete_code(&project, purpose, &subject).await?;
        return Ok(false);
    }
    if !bool::from(subtle::ConstantTimeEq::ct_eq(code.digest.as_slice(), digest.as_slice())) {
        code.attempts += 1;
        if code.attempts >= max_attempts {
            store.delete_code(&project, purpose, &subject).await?;
        } else {
            store.put_code(code).await?;
        }
        return Ok(false);
    }
    // Another node may be consuming the same code right now: one wins.
    let won = store.claim_once(code.digest, code.expires_at).await?;
    store.delete_code(&project, purpose, &subject).await?;
    Ok(won)
}
