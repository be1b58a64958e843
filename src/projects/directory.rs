//! The per-node directory of projects: every project with its settings in
//! force, in memory, so no request reads the store to learn its project.
//!
//! Loaded at start, then reloaded whole when the change feed says a project
//! changed (on any node) and on a slow timer as a backstop. A node that
//! changes a project puts the new record in at once (`put`), so its own
//! next request sees it. Readers take a snapshot (`Arc`) and never wait on
//! a reload.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::{Project, ProjectSettings, SettingsDefaults};
use crate::account::ProjectId;
use crate::store::{Store, StoreResult};

/// A project and its settings in force.
#[derive(Debug, Clone, PartialEq)]
pub struct ProjectView {
    pub project: Project,
    pub settings: ProjectSettings,
}

type Snapshot = Arc<HashMap<ProjectId, Arc<ProjectView>>>;

pub struct Directory {
    store: Arc<dyn Store>,
    defaults: SettingsDefaults,
    projects: RwLock<Snapshot>,
}

impl Directory {
    /// Reads every project from the store.
    pub async fn load(store: Arc<dyn Store>, defaults: SettingsDefaults) -> StoreResult<Self> {
        let directory = Directory { store, defaults, projects: RwLock::new(Arc::default()) };
        directory.reload().await?;
        Ok(directory)
    }

    fn view(&self, project: Project) -> Arc<ProjectView> {
        let settings = ProjectSettings::merged(&project.settings, &self.defaults);
        Arc::new(ProjectView { project, settings })
    }

    fn snapshot(&self) -> Snapshot {
        Arc::clone(&self.projects.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// Replaces the directory with what the store holds now.
    pub async fn reload(&self) -> StoreResult<()> {
        let projects = self.store.list_projects().await?;
        let fresh: HashMap<_, _> = projects.into_iter().map(|p| (p.id.clone(), self.view(p))).collect();
        *self.projects.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }

    /// Puts a project this node just wrote, unless the directory already
    /// holds a newer version of it.
    pub fn put(&self, project: Project) {
        let mut projects = self.projects.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        if projects.get(&project.id).is_some_and(|known| known.project.version > project.version) {
            return;
        }
        let mut next = HashMap::clone(&projects);
        next.insert(project.id.clone(), self.view(project));
        *projects = Arc::new(next);
    }

    /// The project `id`, live or not (deleted ones included, until gone from the store).
    pub fn get(&self, id: &ProjectId) -> Option<Arc<ProjectView>> {
        self.snapshot().get(id).cloned()
    }

    /// The project `id` if its routes serve and its credentials verify.
    pub fn live(&self, id: &ProjectId) -> Option<Arc<ProjectView>> {
        self.get(id).filter(|view| view.project.is_live())
    }

    /// Whether credentials of project `id` verify: the `default` project
    /// always does (without a lookup: the fast path's common case).
    pub fn is_live(&self, id: &ProjectId) -> bool {
        id.as_str() == ProjectId::DEFAULT || self.snapshot().get(id).is_some_and(|view| view.project.is_live())
    }

    /// Every project not deleted, by id.
    pub fn list(&self) -> Vec<Arc<ProjectView>> {
        let mut all: Vec<_> = self.snapshot().values().filter(|view| !view.project.deleted).cloned().collect();
        all.sort_by(|a, b| a.project.id.cmp(&b.project.id));
        all
    }

    /// The node's defaults, for a project that sets nothing.
    pub fn defaults(&self) -> &SettingsDefaults {
        &self.defaults
    }
}
