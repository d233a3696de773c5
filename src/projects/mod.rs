//! Per-project rules: `<project_id>.json` files in Relay's project-config format, loaded
//! and compiled into a lock-free map, hot-reloaded by polling.
//!
//! The rules of the road:
//!
//! - A file is named `<id>.json` with `id` a decimal u64 (`42.json`, not `042.json`); a
//!   `projectId` inside, when present, must agree. Other files (no `.json` extension, or
//!   a name starting with `.`, such as editor swap files and Kubernetes' `..data`) are
//!   ignored.
//! - [`ProjectStore::get`] is a lock-free `ArcSwap` load; a reload builds a new map and
//!   swaps one `Arc`.
//! - A reload re-reads only files whose size, mtime or content changed. A file that fails
//!   leaves that project's previous config in force, is logged at `warn` with its path
//!   and the problems (never the file's contents) and counted in
//!   `scrubgate_config_reloads_total{result="error"}`; it is not retried until it
//!   changes again. Other files still reload. A deleted file removes its project.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::{Metrics, ReloadResult, RuleLabels};
use crate::scrub::{ConfigErrors, ConfigIssue};

mod config;
pub mod pseudonym;

pub use config::{AttachmentPolicy, ProjectConfig, PublicKey};

/// How the environment is read when resolving `${NAME}` references in project configs.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The process environment, for [`ProjectStore::load_dir`] in production.
pub fn process_env() -> Env {
    Arc::new(env_var)
}

/// The environment variable `name`, when it is set and valid UTF-8: how `${NAME}`
/// references and `SCRUBGATE_*` overrides are read in production.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A file modified this close to the moment it was read may have changed again within the
/// same mtime tick after the read; such a file is re-read (and re-hashed) at the next poll
/// instead of being trusted by its size and mtime ("racy git" rule).
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// One project's config in force.
#[derive(Debug)]
pub struct Project {
    /// The project id (the file name's stem).
    pub id: u64,
    /// The project id as a metric label value.
    pub id_label: String,
    /// The validated, compiled config.
    pub config: ProjectConfig,
    /// The rule ids the config can report (metric label values).
    pub rule_labels: RuleLabels,
    /// The rule ids its shadow rules can report.
    pub shadow_labels: RuleLabels,
    /// The file it was loaded from.
    pub source: PathBuf,
    /// When it was loaded.
    pub loaded_at: SystemTime,
}

/// Why a project file (or the directory) could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The projects directory could not be listed.
    #[error("cannot read project directory {}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A project file could not be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file name is not `<decimal project id>.json`.
    #[error("{}: file name must be <project id>.json with a decimal id, e.g. 42.json", path.display())]
    BadFileName {
        /// The file.
        path: PathBuf,
    },
    /// `projectId` inside the file disagrees with the file name.
    #[error("{}: projectId {found} does not match the file name's id {expected}", path.display())]
    IdMismatch {
        /// The file.
        path: PathBuf,
        /// The id from the file name.
        expected: u64,
        /// The `projectId` in the file.
        found: u64,
    },
    /// The engine refused the config (bad JSON, bad rule, bad selector, …).
    #[error("{}: invalid project config", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Every problem, with its JSON path.
        #[source]
        source: ConfigErrors,
    },
}

impl LoadError {
    /// The file (or directory) the error is about.
    pub fn path(&self) -> &Path {
        match self {
            LoadError::ReadDir { dir, .. } => dir,
            LoadError::Read { path, .. }
            | LoadError::BadFileName { path }
            | LoadError::IdMismatch { path, .. }
            | LoadError::Invalid { path, .. } => path,
        }
    }

    /// Every problem with its JSON path (empty for problems of the file itself).
    pub fn issues(&self) -> Vec<ConfigIssue> {
        match self {
            LoadError::Invalid { source, .. } => source.0.clone(),
            other => other
                .problems()
                .into_iter()
                .map(|message| ConfigIssue {
                    path: String::new(),
                    message,
                })
                .collect(),
        }
    }

    /// Every problem as one line each, without the file path: the config issues
    /// (`config.piiConfig.rules.x.pattern: ...`) for an invalid config, else the error
    /// and its causes.
    pub fn problems(&self) -> Vec<String> {
        match self {
            LoadError::Invalid { source, .. } => source.0.iter().map(ToString::to_string).collect(),
            LoadError::ReadDir { source, .. } | LoadError::Read { source, .. } => {
                vec![source.to_string()]
            }
            LoadError::BadFileName { .. } => {
                vec!["file name must be <project id>.json with a decimal id, e.g. 42.json".into()]
            }
            LoadError::IdMismatch {
                expected, found, ..
            } => vec![format!(
                "projectId {found} does not match the file name's id {expected}"
            )],
        }
    }
}

/// What one reload did.
#[derive(Debug, Default)]
pub struct ReloadSummary {
    /// Projects whose config was (re)loaded and is now in force, ascending.
    pub loaded: Vec<u64>,
    /// Projects removed because their file disappeared, ascending.
    pub removed: Vec<u64>,
    /// Files found unchanged since the last reload.
    pub unchanged: usize,
    /// Files that failed this time (their previous config, if any, stays in force).
    pub errors: Vec<LoadError>,
}

impl ReloadSummary {
    /// True when nothing changed and nothing failed.
    pub fn is_noop(&self) -> bool {
        self.loaded.is_empty() && self.removed.is_empty() && self.errors.is_empty()
    }
}

/// The result of checking one project file with [`check_dir`].
#[derive(Debug)]
pub struct FileCheck {
    /// The file.
    pub path: PathBuf,
    /// Its project id, when the file name is valid.
    pub project_id: Option<u64>,
    /// Errors (the server would refuse the file), one line each.
    pub errors: Vec<String>,
    /// Warnings (the file loads), one line each, e.g. a hash rule without a key.
    pub warnings: Vec<String>,
}

impl FileCheck {
    /// True when the file would load.
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

/// What the store remembers about a file between reloads.
#[derive(Debug, Clone, Copy)]
struct FileState {
    /// The id from the file name, when valid.
    id: Option<u64>,
    mtime: Option<SystemTime>,
    len: u64,
    hash: u64,
    read_at: SystemTime,
}

impl FileState {
    /// True when size and mtime match and the mtime is old enough to be trusted.
    fn matches(&self, meta: &std::fs::Metadata) -> bool {
        let Some(mtime) = self.mtime else {
            return false;
        };
        let racy = mtime
            .checked_add(RACY_WINDOW)
            .is_none_or(|settled| settled > self.read_at);
        meta.len() == self.len && meta.modified().ok() == Some(mtime) && !racy
    }
}

/// The project configs in force, by project id.
pub struct ProjectStore {
    dir: PathBuf,
    env: Env,
    metrics: Metrics,
    projects: ArcSwap<HashMap<u64, Arc<Project>>>,
    /// Per-file state; the mutex also serialises reloads (watcher and SIGHUP).
    files: Mutex<HashMap<PathBuf, FileState>>,
    /// The problems of each project's last failed load, until it loads again.
    failures: Mutex<HashMap<u64, Vec<ConfigIssue>>>,
}

impl std::fmt::Debug for ProjectStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectStore")
            .field("dir", &self.dir)
            .field("projects", &self.len())
            .finish_non_exhaustive()
    }
}

impl ProjectStore {
    /// Loads every project file in `dir`. Files that fail are returned as errors (and
    /// logged, and counted); the store holds every project that loaded. A missing or
    /// unreadable directory gives an empty store and a [`LoadError::ReadDir`].
    pub fn load_dir(dir: &Path, env: Env, metrics: Metrics) -> (ProjectStore, Vec<LoadError>) {
        let store = ProjectStore {
            dir: dir.to_owned(),
            env,
            metrics,
            projects: ArcSwap::from_pointee(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
        };
        let summary = store.reload();
        (store, summary.errors)
    }

    /// The directory this store reads.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The config in force for project `id` (lock-free).
    pub fn get(&self, id: u64) -> Option<Arc<Project>> {
        self.projects.load().get(&id).cloned()
    }

    /// Number of projects with a config in force.
    pub fn len(&self) -> usize {
        self.projects.load().len()
    }

    /// True when no project has a config in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The problems of project `id`'s last failed load (empty when its last load
    /// succeeded), each with its JSON path.
    pub fn last_failure(&self, id: u64) -> Vec<ConfigIssue> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.get(&id).cloned().unwrap_or_default()
    }

    /// The ids of every project in force, ascending.
    pub fn ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.projects.load().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// Re-reads files that changed (size, mtime or content), adds new ones and removes
    /// projects whose file is gone. Blocking file I/O: call it from a blocking context
    /// (the watcher uses `spawn_blocking`).
    pub fn reload(&self) -> ReloadSummary {
        self.reload_inner(false)
    }

    /// Like [`ProjectStore::reload`] but re-reads and recompiles every file, changed or
    /// not (SIGHUP).
    pub fn reload_all(&self) -> ReloadSummary {
        self.reload_inner(true)
    }

    fn reload_inner(&self, force: bool) -> ReloadSummary {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let mut summary = ReloadSummary::default();

        let paths = match list_dir(&self.dir) {
            Ok(paths) => paths,
            Err(error) => {
                // Keep everything in force: a directory briefly missing during a deploy
                // must not unload every project.
                tracing::warn!(
                    dir = %self.dir.display(),
                    error = %error.source_text(),
                    "cannot list project directory; previous configs stay in force"
                );
                self.metrics.record_config_reload(ReloadResult::Error);
                summary.errors.push(error);
                return summary;
            }
        };

        let current = self.projects.load_full();
        let mut next: Option<HashMap<u64, Arc<Project>>> = None;
        let mut seen = HashSet::with_capacity(paths.len());

        for path in paths {
            seen.insert(path.clone());
            match self.reload_file(&path, files.get(&path).copied(), force) {
                FileOutcome::Unchanged(state) => {
                    summary.unchanged += 1;
                    files.insert(path, state);
                }
                FileOutcome::Loaded(project, state) => {
                    let id = project.id;
                    self.failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    self.log_loaded(&project);
                    self.metrics.record_config_reload(ReloadResult::Ok);
                    next.get_or_insert_with(|| (*current).clone())
                        .insert(id, Arc::new(*project));
                    summary.loaded.push(id);
                    files.insert(path, state);
                }
                FileOutcome::Failed(error, state) => {
                    self.log_failed(&error, state.and_then(|s| s.id));
                    if let Some(id) = state.and_then(|s| s.id) {
                        self.failures
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(id, error.issues());
                    }
                    self.metrics.record_config_reload(ReloadResult::Error);
                    summary.errors.push(error);
                    match state {
                        // Remember the failing content so that the warning is not repeated
                        // at every poll; it is retried once the file changes.
                        Some(state) => {
                            files.insert(path, state);
                        }
                        None => {
                            files.remove(&path);
                        }
                    }
                }
            }
        }

        let gone: Vec<PathBuf> = files
            .keys()
            .filter(|path| !seen.contains(*path))
            .cloned()
            .collect();
        for path in gone {
            let state = files.remove(&path);
            let Some(id) = state.and_then(|s| s.id) else {
                continue;
            };
            let map = next.get_or_insert_with(|| (*current).clone());
            if map.get(&id).is_some_and(|p| p.source == path) {
                map.remove(&id);
                tracing::info!(project_id = id, path = %path.display(), "project config file removed; project unloaded");
                summary.removed.push(id);
            }
        }

        if let Some(map) = next {
            self.metrics.set_project_configs_loaded(map.len());
            self.projects.store(Arc::new(map));
        } else {
            self.metrics.set_project_configs_loaded(current.len());
        }
        summary.loaded.sort_unstable();
        summary.removed.sort_unstable();
        summary
    }

    fn reload_file(&self, path: &Path, previous: Option<FileState>, force: bool) -> FileOutcome {
        let read_error = |source| LoadError::Read {
            path: path.to_owned(),
            source,
        };
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(source) => return FileOutcome::Failed(read_error(source), previous),
        };
        if let Some(state) = previous.filter(|p| !force && p.matches(&meta)) {
            return FileOutcome::Unchanged(state);
        }
        let read_at = SystemTime::now();
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(source) => return FileOutcome::Failed(read_error(source), previous),
        };
        let id = file_id(path);
        let state = FileState {
            id,
            mtime: meta.modified().ok(),
            len: bytes.len() as u64,
            hash: content_hash(&bytes),
            read_at,
        };
        if !force && previous.is_some_and(|p| p.hash == state.hash && p.len == state.len) {
            return FileOutcome::Unchanged(state);
        }
        match load_project(path, &bytes, &*self.env) {
            Ok(project) => FileOutcome::Loaded(Box::new(project), state),
            Err(error) => FileOutcome::Failed(error, Some(state)),
        }
    }

    fn log_loaded(&self, project: &Project) {
        tracing::info!(
            project_id = project.id,
            path = %project.source.display(),
            "project config loaded"
        );
        for warning in &project.config.warnings {
            tracing::warn!(
                project_id = project.id,
                path = %project.source.display(),
                %warning,
                "project config warning"
            );
        }
    }

    fn log_failed(&self, error: &LoadError, id: Option<u64>) {
        let in_force = id.is_some_and(|id| self.projects.load().contains_key(&id));
        tracing::warn!(
            path = %error.path().display(),
            problems = %error.problems().join("; "),
            previous_config_in_force = in_force,
            "project config not loaded"
        );
    }

    /// Spawns a task that calls [`ProjectStore::reload`] every `interval` (on the blocking
    /// pool) until `shutdown` turns true or its sender is dropped.
    pub fn spawn_watcher(
        self: Arc<Self>,
        interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let start = tokio::time::Instant::now() + interval;
            let mut ticker = tokio::time::interval_at(start, interval);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            if *shutdown.borrow_and_update() {
                return;
            }
            loop {
                tokio::select! {
                    _ = ticker.tick() => {
                        let store = Arc::clone(&self);
                        match tokio::task::spawn_blocking(move || store.reload()).await {
                            Ok(summary) if !summary.is_noop() => tracing::debug!(
                                loaded = summary.loaded.len(),
                                removed = summary.removed.len(),
                                failed = summary.errors.len(),
                                "project configs reloaded"
                            ),
                            Ok(_) => {}
                            Err(error) => tracing::error!(%error, "project reload task failed"),
                        }
                    }
                    changed = shutdown.changed() => {
                        if changed.is_err() || *shutdown.borrow_and_update() {
                            return;
                        }
                    }
                }
            }
        })
    }
}

enum FileOutcome {
    Unchanged(FileState),
    Loaded(Box<Project>, FileState),
    /// The state is the failing file's (so it is not retried until it changes), or
    /// the previous one when the file could not even be read.
    Failed(LoadError, Option<FileState>),
}

impl LoadError {
    /// The cause's text (for the directory error log line).
    fn source_text(&self) -> String {
        self.problems().join("; ")
    }
}

/// Validates every project file in `dir` exactly as the server would load it, for
/// `scrubgate check`. Files come back in name order.
///
/// # Errors
///
/// [`LoadError::ReadDir`] when the directory cannot be listed.
pub fn check_dir(
    dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<FileCheck>, LoadError> {
    let mut checks = Vec::new();
    for path in list_dir(dir)? {
        let project_id = file_id(&path);
        let result = std::fs::read(&path)
            .map_err(|source| LoadError::Read {
                path: path.clone(),
                source,
            })
            .and_then(|bytes| load_project(&path, &bytes, env));
        let (errors, warnings) = match result {
            Ok(project) => (
                Vec::new(),
                project
                    .config
                    .warnings
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
            ),
            Err(error) => (error.problems(), Vec::new()),
        };
        checks.push(FileCheck {
            path,
            project_id,
            errors,
            warnings,
        });
    }
    Ok(checks)
}

/// The candidate project files of `dir`, sorted: `*.json` regular files (or symlinks to
/// them) whose name does not start with `.`.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let read_dir_error = |source| LoadError::ReadDir {
        dir: dir.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read_dir_error)? {
        let entry = entry.map_err(read_dir_error)?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        if name.starts_with('.') || !name.ends_with(".json") {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks (Kubernetes ConfigMap volumes link every file).
        if std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}

/// The project id in a file name: the stem, a canonical decimal u64.
fn file_id(path: &Path) -> Option<u64> {
    let stem = path.file_stem()?.to_str()?;
    let id: u64 = stem.parse().ok()?;
    (id.to_string() == stem).then_some(id)
}

fn content_hash(bytes: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(bytes);
    hasher.finish()
}

/// Parses and compiles one project file.
fn load_project(
    path: &Path,
    bytes: &[u8],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Project, LoadError> {
    let id = file_id(path).ok_or_else(|| LoadError::BadFileName {
        path: path.to_owned(),
    })?;
    let config = ProjectConfig::from_json(bytes, env).map_err(|source| LoadError::Invalid {
        path: path.to_owned(),
        source,
    })?;
    if let Some(found) = config.project_id {
        if found != id {
            return Err(LoadError::IdMismatch {
                path: path.to_owned(),
                expected: id,
                found,
            });
        }
    }
    Ok(Project::new(id, config, path.to_owned()))
}

impl Project {
    /// Project `id` with `config`, loaded now from `source` (also for tools that hold a
    /// project outside any store: `scrubgate test`, the console's playground).
    pub fn new(id: u64, config: ProjectConfig, source: PathBuf) -> Project {
        Project {
            id,
            id_label: id.to_string(),
            rule_labels: RuleLabels::new(config.rules.rule_ids()),
            shadow_labels: RuleLabels::new(
                config
                    .shadow
                    .as_ref()
                    .map(|s| s.rule_ids())
                    .unwrap_or_default(),
            ),
            config,
            source,
            loaded_at: SystemTime::now(),
        }
    }
}

#[cfg(test)]
mod tests;
