//! `portcullis admin create`: the first superadmin of an install, made from
//! the command line, for installs where the first web registration (which
//! makes its account the superadmin) is not wanted.
//!
//! Owns only that: it refuses when the install has an enabled superadmin
//! (the admin API manages admins from then on), and it writes through the
//! same store, hashing and project record the gateway uses. Never prints a
//! secret: without a password the account signs in by email code and sets
//! one (`me/set-initial-password`).

use std::sync::Arc;

use anyhow::{Context, bail};

use crate::account::{ProjectId, Role, User, UserId, normalize_email, validate_password};
use crate::clock::{Clock, SystemClock};
use crate::hashing::{HashingPool, Password};
use crate::projects::Project;
use crate::settings::Settings;
use crate::store::StoreError;

/// Makes `email` a superadmin of the `default` project, with `password`
/// if given; refused when the install has an enabled superadmin already.
pub async fn create_superadmin(settings: &Settings, email: &str, password: Option<Password>) -> anyhow::Result<UserId> {
    let email = normalize_email(email).map_err(|problem| anyhow::anyhow!("--email {problem}"))?;
    if let Some(password) = &password {
        let min = crate::account::PASSWORD_MIN_CHARS;
        validate_password(password.expose(), min).map_err(|problem| anyhow::anyhow!("the password {problem}"))?;
    }
    crate::app::guard_data_dir(settings)?;
    let clock: crate::clock::SharedClock = Arc::new(SystemClock);
    let store = crate::app::open_store(settings, &clock).await?;
    let default = ProjectId::default_project();
    let now = SystemClock.now();
    if store.find_project(&default).await?.is_none() {
        store.create_project(Project::default_project(now)).await.context("creating the default project")?;
    }
    if !store.enabled_superadmins(&default).await?.is_empty() {
        bail!("this install has a superadmin already; make further admins with the admin API");
    }
    let password_hash = match password {
        Some(password) => {
            let hash = &settings.hash;
            let pool = HashingPool::start(1, 1, hash.deadline, hash.cost).context("starting argon2")?;
            Some(pool.hash(password).await.context("hashing the password")?)
        }
        None => None,
    };
    let user = User {
        role: Role::Superadmin,
        // The operator vouches for the address.
        email_verified_at: Some(now),
        ..User::fresh(default.clone(), email, "Admin".into(), password_hash, now)
    };
    let created = match store.create_user(user).await {
        Ok(created) => created,
        Err(StoreError::AlreadyExists(_)) => {
            bail!("an account with this address exists; promote it with the admin API")
        }
        Err(e) => return Err(e.into()),
    };
    // The record keeps the list of superadmins the admin API checks.
    for _ in 0..16 {
        let project = store.find_project(&default).await?.context("the default project vanished")?;
        let read = project.version;
        let next = Project { superadmins: vec![created.id], version: read + 1, updated_at: now, ..project };
        match store.replace_project(next, read).await {
            Ok(()) => break,
            Err(StoreError::Conflict) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    store.flush().await?;
    Ok(created.id)
}
