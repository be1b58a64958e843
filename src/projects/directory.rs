//! The per-node directory of projects: every project with its settings in
//! force, in memory, so no request reads the store to learn its project.
//!
//! Loaded at start, then reloaded whole when the change feed says a project
//! changed (on any node) and on a slow timer as a backstop. A node that
//! changes a project puts the new record in at once (`put`), so its own
//! next request sees it. Readers take a snapshot (`Arc`) and never wait on
//! a reload.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::{Project, ProjectSettings, SettingsDefaults, SettingsOverrides};
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
    /// The projects with a metric label of their own (see `metric_label`).
    labeled: RwLock<Arc<HashSet<ProjectId>>>,
    /// How many projects get one.
    label_cap: usize,
    /// The longest `access_ttl` of any project (seconds), as last loaded.
    max_access_ttl: AtomicU64,
}

impl Directory {
    /// Reads every project from the store.
    /// Reads every project from the store; the oldest `label_cap` projects
    /// get a metric label of their own.
    pub async fn load(store: Arc<dyn Store>, defaults: SettingsDefaults, label_cap: usize) -> StoreResult<Self> {
        let max_access_ttl = AtomicU64::new(defaults.access_ttl.as_secs());
        let directory = Directory {
            store,
            defaults,
            projects: RwLock::new(Arc::default()),
            labeled: RwLock::new(Arc::default()),
            label_cap,
            max_access_ttl,
        };
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

    /// Replaces the directory with what the store holds now (a project this
    /// node put meanwhile at a newer version is kept).
    pub async fn reload(&self) -> StoreResult<()> {
        let projects = self.store.list_projects().await?;
        self.install(|current| {
            let mut fresh: HashMap<_, _> = projects.into_iter().map(|p| (p.id.clone(), self.view(p))).collect();
            for (id, known) in current.iter() {
                if fresh.get(id).is_some_and(|loaded| loaded.project.version < known.project.version) {
                    fresh.insert(id.clone(), Arc::clone(known));
                }
            }
            Some(Arc::new(fresh))
        });
        Ok(())
    }

    /// Puts a project this node just wrote, unless the directory already
    /// holds a newer version of it.
    pub fn put(&self, project: Project) {
        self.install(|current| {
            if current.get(&project.id).is_some_and(|known| known.project.version > project.version) {
                return None;
            }
            let mut next = HashMap::clone(current);
            next.insert(project.id.clone(), self.view(project));
            Some(Arc::new(next))
        });
    }

    /// Replaces the snapshot with what `change` makes of it (`None`: no
    /// change), under the write lock so no change is lost.
    fn install(&self, change: impl FnOnce(&Snapshot) -> Option<Snapshot>) {
        let mut projects = self.projects.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(fresh) = change(&projects) else { return };
        let longest = fresh.values().map(|view| view.settings.access_ttl).max().unwrap_or_default();
        // Never shorter than what tokens already minted may still live.
        self.max_access_ttl.fetch_max(longest.max(self.defaults.access_ttl.as_secs()), Ordering::Relaxed);
        // `default` is always labeled; the cap counts the others.
        let mut by_age: Vec<&ProjectView> = fresh
            .values()
            .map(Arc::as_ref)
            .filter(|v| !v.project.deleted && v.project.id.as_str() != ProjectId::DEFAULT)
            .collect();
        by_age.sort_by(|a, b| (a.project.created_at, &a.project.id).cmp(&(b.project.created_at, &b.project.id)));
        let labeled = by_age.iter().take(self.label_cap).map(|v| v.project.id.clone()).collect();
        *self.labeled.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(labeled);
        *projects = fresh;
    }

    /// The `project` label of metrics about `id`: its id for `default` and
    /// the oldest `label_cap` other projects, else `other`, so a
    /// gateway with thousands of projects keeps a bounded number of series.
    pub fn metric_label(&self, id: &ProjectId) -> String {
        let labeled = self.labeled.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        if id.as_str() == ProjectId::DEFAULT || labeled.contains(id) { id.to_string() } else { "other".to_owned() }
    }

    /// Every `project` label there is now: `default` and the labeled projects
    /// (`other` stands for the rest, once there are any).
    pub fn metric_labels(&self) -> Vec<String> {
        let labeled = self.labeled.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        std::iter::once(ProjectId::DEFAULT.to_owned()).chain(labeled.iter().map(ToString::to_string)).collect()
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

    /// Every project, deleted ones included.
    pub fn all(&self) -> Vec<Arc<ProjectView>> {
        self.snapshot().values().cloned().collect()
    }

    /// Every project not deleted, by id.
    pub fn list(&self) -> Vec<Arc<ProjectView>> {
        let mut all: Vec<_> = self.snapshot().values().filter(|view| !view.project.deleted).cloned().collect();
        all.sort_by(|a, b| a.project.id.cmp(&b.project.id));
        all
    }

    /// The settings in force for `id`; the node's defaults for a project
    /// not (or no longer) known.
    pub fn settings(&self, id: &ProjectId) -> ProjectSettings {
        match self.get(id) {
            Some(view) => view.settings.clone(),
            None => ProjectSettings::merged(&SettingsOverrides::default(), &self.defaults),
        }
    }

    /// How long an access token of project `id` lives.
    pub fn access_ttl(&self, id: &ProjectId) -> Duration {
        self.get(id).map_or(self.defaults.access_ttl, |view| view.settings.access_ttl())
    }

    /// The longest any access token lives (never less than it was: tokens
    /// minted under a longer `access_ttl` still live).
    pub fn max_access_ttl(&self) -> Duration {
        Duration::from_secs(self.max_access_ttl.load(Ordering::Relaxed))
    }

    /// The node's defaults, for a project that sets nothing.
    pub fn defaults(&self) -> &SettingsDefaults {
        &self.defaults
    }
}
