//! Projects: list, create, read, change, delete.
//!
//! A project change is read, merged and written only at the version read
//! (`Store::replace_project`), retried on a conflict, so concurrent changes
//! all survive; the writing node puts the record in its directory at once
//! and the feed tells the others.

use std::sync::Arc;

use crate::account::ProjectId;
use crate::projects::{self, Project, ProjectView, SettingsPatch};
use crate::store::StoreError;

use super::Admin;
use crate::auth::audit::kind;
use crate::auth::{AuthError, AuthService, ClientInfo, Conflict, RETRY_AFTER};

/// How often a change is retried when another change got in between (each
/// retry waits a little, at random, so racing changes spread out).
const CHANGE_TRIES: u64 = 50;
/// Accounts of a deleted project erased by the DELETE itself.
const PURGE_NOW: usize = 200;
/// Numbered slugs tried (`name_2` ...) before a random suffix.
const SLUG_TRIES: u32 = 20;

/// A project to create, its fields checked by the caller (`projects::valid_*`).
#[derive(Debug, Clone)]
pub struct NewProject {
    pub name: String,
    /// `None`: made from the name.
    pub id: Option<ProjectId>,
    pub environment: Option<String>,
    pub description: Option<String>,
    pub settings: SettingsPatch,
}

/// What a PATCH changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct ProjectChange {
    pub name: Option<String>,
    pub environment: Option<String>,
    /// `Some(None)` clears it.
    pub description: Option<Option<String>>,
    pub enabled: Option<bool>,
    pub settings: SettingsPatch,
}

impl ProjectChange {
    /// What it changes, for the audit log: `name enabled settings=access_ttl,...`.
    fn describe(&self) -> String {
        let mut parts: Vec<String> = [
            self.name.as_ref().map(|_| "name"),
            self.environment.as_ref().map(|_| "environment"),
            self.description.as_ref().map(|_| "description"),
        ]
        .into_iter()
        .flatten()
        .map(str::to_owned)
        .collect();
        if let Some(enabled) = self.enabled {
            parts.push(format!("enabled={enabled}"));
        }
        let keys: Vec<&str> = self.settings.keys().collect();
        if !keys.is_empty() {
            parts.push(format!("settings={}", keys.join(",")));
        }
        parts.join(" ")
    }
}

impl AuthService {
    /// Every project not deleted, by id.
    pub fn list_projects(&self, _admin: &Admin) -> Vec<Arc<ProjectView>> {
        self.projects.list()
    }

    /// One project, unless it is unknown or deleted.
    pub fn get_project(&self, _admin: &Admin, id: &ProjectId) -> Result<Arc<ProjectView>, AuthError> {
        self.admin_project(id)
    }

    pub async fn create_project(
        &self,
        admin: &Admin,
        new: NewProject,
        client: ClientInfo,
    ) -> Result<Arc<ProjectView>, AuthError> {
        let now = self.clock.now();
        let make = |id: ProjectId| {
            let environment = new.environment.clone().unwrap_or_else(|| projects::DEFAULT_ENVIRONMENT.to_owned());
            let mut project = Project::new(id, new.name.clone(), environment, new.description.clone(), now);
            project.settings = new.settings.apply(&project.settings);
            project
        };
        let created = match &new.id {
            Some(id) => {
                let project = make(id.clone());
                if !self.store.create_project(project.clone()).await? {
                    return Err(AuthError::Conflict(Conflict::ProjectExists));
                }
                project
            }
            None => self.create_with_slug(&projects::slug(&new.name), make).await?,
        };
        self.projects.put(created.clone());
        self.feed.project_changed().await;
        self.audit_admin(admin, kind::PROJECT_CREATED, &client, &format!("project={}", created.id)).await;
        self.projects.get(&created.id).ok_or_else(|| AuthError::internal("created project missing"))
    }

    /// Creates under `slug`, else the first free `slug_2`, `slug_3` ..., else
    /// `slug_<random>`.
    async fn create_with_slug(&self, slug: &str, make: impl Fn(ProjectId) -> Project) -> Result<Project, AuthError> {
        let random = || projects::numbered(slug, u32::from_be_bytes(crate::token::random_bytes::<4>()) | (1 << 31));
        let candidates = std::iter::once(slug.to_owned())
            .chain((2..=SLUG_TRIES).map(|n| projects::numbered(slug, n)))
            .chain(std::iter::repeat_with(random).take(3));
        for candidate in candidates {
            let project = make(ProjectId(candidate));
            if self.store.create_project(project.clone()).await? {
                return Ok(project);
            }
        }
        Err(AuthError::Conflict(Conflict::ProjectExists))
    }

    /// Applies `change` to the project at the version read, retried while
    /// other changes get in between.
    pub async fn update_project(
        &self,
        admin: &Admin,
        id: &ProjectId,
        change: ProjectChange,
        client: ClientInfo,
    ) -> Result<Arc<ProjectView>, AuthError> {
        if id.as_str() == ProjectId::DEFAULT && change.enabled == Some(false) {
            return Err(AuthError::Conflict(Conflict::DefaultProject));
        }
        let updated = self
            .change_project(id, |project| {
                if let Some(name) = &change.name {
                    project.name.clone_from(name);
                }
                if let Some(environment) = &change.environment {
                    project.environment.clone_from(environment);
                }
                if let Some(description) = &change.description {
                    project.description.clone_from(description);
                }
                if let Some(enabled) = change.enabled {
                    project.enabled = enabled;
                }
                project.settings = change.settings.apply(&project.settings);
            })
            .await?;
        self.audit_admin(admin, kind::PROJECT_CHANGED, &client, &format!("project={id} {}", change.describe())).await;
        Ok(updated)
    }

    /// Deletes a project: at once it serves no route and its credentials
    /// verify nowhere; its accounts (with their sessions, keys and codes)
    /// are erased, the first `PURGE_NOW` at once and the rest in the
    /// background. Its record stays as a tombstone, so its id stays taken.
    pub async fn delete_project(&self, admin: &Admin, id: &ProjectId, client: ClientInfo) -> Result<(), AuthError> {
        if id.as_str() == ProjectId::DEFAULT {
            return Err(AuthError::Conflict(Conflict::DefaultProject));
        }
        self.change_project(id, |project| {
            project.enabled = false;
            project.deleted = true;
        })
        .await?;
        self.audit_admin(admin, kind::PROJECT_DELETED, &client, &format!("project={id}")).await;
        // A first batch of its accounts now; the rest on the timer.
        self.purge_deleted_projects(PURGE_NOW).await?;
        Ok(())
    }

    /// Reads the project, applies `edit`, and writes it at the version read
    /// (`updated_at` now); on a conflict, again from a fresh read. Other
    /// nodes hear of it through the feed.
    pub(super) async fn change_project(
        &self,
        id: &ProjectId,
        edit: impl Fn(&mut Project),
    ) -> Result<Arc<ProjectView>, AuthError> {
        let now = self.clock.now();
        self.rewrite_project(id, |project| {
            edit(project);
            project.updated_at = now;
            Ok(())
        })
        .await?;
        self.feed.project_changed().await;
        self.projects.get(id).ok_or(AuthError::NotFound)
    }

    /// Writes what `edit` makes of project `id` at the version read, from a
    /// fresh read after each conflict (waiting a little, at random, so
    /// racing changes spread out), and puts it in this node's directory. A
    /// deleted project is `NotFound`; an error of `edit` ends the change.
    pub(super) async fn rewrite_project(
        &self,
        id: &ProjectId,
        edit: impl Fn(&mut Project) -> Result<(), AuthError>,
    ) -> Result<Project, AuthError> {
        for attempt in 0..CHANGE_TRIES {
            let mut next = self.store.find_project(id).await?.filter(|p| !p.deleted).ok_or(AuthError::NotFound)?;
            let read_version = next.version;
            edit(&mut next)?;
            next.version = read_version + 1;
            match self.store.replace_project(next.clone(), read_version).await {
                Ok(()) => {
                    self.projects.put(next.clone());
                    return Ok(next);
                }
                Err(StoreError::Conflict) => {
                    let jitter = u64::from(crate::token::random_bytes::<1>()[0]) % (attempt.min(10) + 1);
                    tokio::time::sleep(std::time::Duration::from_millis(jitter * 2)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AuthError::Overloaded(RETRY_AFTER))
    }
}
