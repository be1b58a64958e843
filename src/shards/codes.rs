//! One-time email codes, each of (project, purpose, address) owned by the
//! shard of (project, address): a new code is stored there ([`IssueCode`])
//! and a presented one checked there ([`ConsumeCode`]), so a check's
//! read-modify-write of the try count never writes an old code back over a
//! fresh one. A wrong code counts a try (the last allowed try kills the
//! code); a right one is consumed once cluster-wide. While the address's
//! code failures are locked (`LockKey::Codes`), no new code is issued; the
//! live one still works.

use std::time::Duration;

use crate::account::{CodePurpose, OneTimeCode, ProjectId};
use crate::clock::Timestamp;
use crate::store::Store;

use super::lockout::LockKey;
use super::{ShardCommand, ShardError, UserShard, Work};

/// What became of a code to issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Issued {
    /// Stored: it is the live code now (mail it).
    Stored,
    /// A code issued less than the resend interval ago is still live: kept.
    StillFresh,
    /// The address's code failures are locked: nothing issued.
    HeldBack,
}

/// Store `code` as the live code of its (project, purpose, address), unless
/// a fresh one is live or the address's codes are locked. Routed by
/// (project, address).
pub struct IssueCode {
    pub code: OneTimeCode,
    /// A live code younger than this is not replaced (bounds mail to one inbox).
    pub resend_after: Duration,
}

impl ShardCommand for IssueCode {
    type Output = Issued;

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<Issued> {
        let IssueCode { code, resend_after } = self;
        let key = LockKey::Codes(code.project.clone(), code.subject.clone());
        if shard.lockout.locked_for(&key, now).is_some() {
            return super::done(Ok(Issued::HeldBack));
        }
        let store = shard.store.clone();
        Box::pin(async move {
            if let Some(live) = store.find_code(&code.project, code.purpose, &code.subject).await?
                && live.created_at.plus(resend_after) > now
                && live.expires_at > now
            {
                return Ok(Issued::StillFresh);
            }
            store.put_code(code).await?;
            Ok(Issued::Stored)
        })
    }
}

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
