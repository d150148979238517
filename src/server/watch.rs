//! Watched files: a change to any TLS or JWKS file the configuration names
//! requests the same validated reload as SIGHUP, with no signal. The parent
//! directories are watched (not the files), so a file replaced by rename
//! (how editors, `cert-manager` and `mv` install a new one) is seen like one
//! written in place. Changes are debounced: the reload runs once the files
//! have been quiet for [`QUIET`] (at most [`MAX_WAIT`] after the first
//! change), well within 2 s; a file caught half-written fails validation, the
//! running configuration stays, and its next change triggers again.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::conn::Shared;

/// Quiet time after the last change before the reload.
const QUIET: Duration = Duration::from_millis(300);
/// Longest wait after the first change, even if changes go on.
const MAX_WAIT: Duration = Duration::from_millis(1000);

/// Directory (canonical) -> names of the watched files in it.
type WatchSet = BTreeMap<PathBuf, BTreeSet<OsString>>;

/// Starts watching the files of the configuration in force; the receiver
/// yields a changed file's path each time a reload is due. After each reload
/// call [`FileWatch::refresh`], as the files may have changed.
pub(super) struct FileWatch {
    watcher: Option<RecommendedWatcher>,
    watched: WatchSet,
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<PathBuf>,
}

impl FileWatch {
    pub(super) fn start(shared: Arc<Shared>) -> FileWatch {
        let (tx, events) = mpsc::unbounded_channel();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            for path in event.paths {
                let _ = tx.send(path);
            }
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "cannot watch files; reload with SIGHUP");
                None
            }
        };
        let mut watch = FileWatch {
            watcher,
            watched: WatchSet::new(),
            shared,
            events,
        };
        watch.refresh();
        watch
    }

    /// Watches the directories of the files the configuration in force names.
    pub(super) fn refresh(&mut self) {
        let wanted = watch_set(&self.shared.live().config.watched_files());
        let Some(watcher) = self.watcher.as_mut() else {
            return;
        };
        for dir in self.watched.keys().filter(|d| !wanted.contains_key(*d)) {
            let _ = watcher.unwatch(dir);
        }
        for dir in wanted.keys().filter(|d| !self.watched.contains_key(*d)) {
            match watcher.watch(dir, RecursiveMode::NonRecursive) {
                Ok(()) => debug!(dir = %dir.display(), "watching"),
                Err(e) => warn!(dir = %dir.display(), error = %e, "cannot watch directory"),
            }
        }
        self.watched = wanted;
    }

    /// Waits for a change to a watched file, then for the files to be quiet;
    /// the first changed file. `None` when watching has stopped.
    pub(super) async fn changed(&mut self) -> Option<PathBuf> {
        let first = loop {
            let path = self.events.recv().await?;
            if self.is_watched(&path) {
                break path;
            }
        };
        let give_up = Instant::now() + MAX_WAIT;
        loop {
            let quiet_until = (Instant::now() + QUIET).min(give_up);
            match tokio::time::timeout_at(quiet_until, self.events.recv()).await {
                Ok(Some(_)) if Instant::now() < give_up => continue,
                Ok(None) => return None,
                _ => break,
            }
        }
        info!(file = %first.display(), "watched file changed; reloading");
        Some(first)
    }

    fn is_watched(&self, path: &Path) -> bool {
        let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
            return false;
        };
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        self.watched
            .get(&dir)
            .is_some_and(|names| names.contains(name))
    }
}

/// The canonical directories of `files` and the names watched in each.
fn watch_set(files: &[PathBuf]) -> WatchSet {
    let mut set = WatchSet::new();
    for file in files {
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            continue;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        set.entry(dir).or_default().insert(name.to_os_string());
    }
    set
}
