//! Account records: creating a user, profile changes, and checked edits
//! (a check and a change of the latest stored record in one step, such as
//! turning two-factor on only if it is still off).

use crate::account::{User, UserId, full_name};
use crate::clock::Timestamp;
use crate::store::{Store, StoreError};

use super::{ShardCommand, ShardError, UserShard, Work};

/// Store a new user. Routed by (project, normalized email), so racing
/// registrations of one address meet in one shard; the store's uniqueness
/// decides across nodes.
pub struct CreateUser {
    pub user: User,
}

impl ShardCommand for CreateUser {
    type Output = User;

    fn run(self, shard: &mut UserShard, _now: Timestamp) -> Work<User> {
        let store = shard.store.clone();
        Box::pin(async move { Ok(store.create_user(self.user).await?) })
    }
}

/// A change to a user record, applied to its latest stored version.
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    pub name: Option<String>,
    /// `Some(None)` clears the username.
    pub username: Option<Option<String>>,
    pub company: Option<Option<String>>,
    /// `Some(None)` clears a part. Changing a part without a `name` names
    /// the user after the parts ("first last"), if any is left.
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub password_hash: Option<String>,
    pub disabled: Option<bool>,
}

impl UserChange {
    fn apply(self, user: &mut User) {
        if let Some(name) = &self.name {
            user.name.clone_from(name);
        }
        if let Some(username) = self.username {
            user.username = username;
        }
        if let Some(company) = self.company {
            user.company = company;
        }
        let parts_changed = self.first_name.is_some() || self.last_name.is_some();
        if let Some(first) = self.first_name {
            user.first_name = first;
        }
        if let Some(last) = self.last_name {
            user.last_name = last;
        }
        if parts_changed
            && self.name.is_none()
            && let Some(name) = full_name(user.first_name.as_deref(), user.last_name.as_deref())
        {
            user.name = name;
        }
        if let Some(hash) = self.password_hash {
            user.set_password(hash);
        }
        if let Some(disabled) = self.disabled {
            user.disabled = disabled;
        }
    }
}

/// Apply `change` to the stored user and write it back; answers the stored user.
pub struct UpdateUser {
    pub user: UserId,
    pub change: UserChange,
}

impl ShardCommand for UpdateUser {
    type Output = User;

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<User> {
        let store = shard.store.clone();
        let UpdateUser { user, change } = self;
        Box::pin(async move {
            rewrite(&*store, user, now, |u| {
                change.apply(u);
                Ok(())
            })
            .await
        })
    }
}

/// A check-and-change of a user record, run inside its shard.
pub type UserEdit = Box<dyn FnOnce(&mut User) -> Result<(), Declined> + Send>;

/// Why a `UserEdit` did not apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declined {
    /// Two-factor is on already.
    AlreadyEnabled,
    /// There is no pending two-factor setup (or it changed meanwhile).
    NotSetUp,
    /// Two-factor is off.
    NotEnabled,
    /// The account has a password already.
    PasswordAlreadySet,
}

/// Apply `edit` to the latest stored user and write it back, unless the
/// edit declines (it checks and changes in one step).
pub struct EditUser {
    pub user: UserId,
    pub edit: UserEdit,
}

impl ShardCommand for EditUser {
    type Output = User;

    fn run(self, shard: &mut UserShard, now: Timestamp) -> Work<User> {
        let store = shard.store.clone();
        let EditUser { user, edit } = self;
        Box::pin(async move { rewrite(&*store, user, now, |u| edit(u).map_err(ShardError::Declined)).await })
    }
}

/// Reads the latest record of `id`, changes it, stamps `updated_at`, writes it back.
async fn rewrite(
    store: &dyn Store,
    id: UserId,
    now: Timestamp,
    change: impl FnOnce(&mut User) -> Result<(), ShardError>,
) -> Result<User, ShardError> {
    let mut user = store.find_user(id).await?.ok_or(StoreError::NotFound)?;
    change(&mut user)?;
    user.updated_at = now;
    Ok(store.update_user(user).await?)
}
