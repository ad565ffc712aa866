//! The watcher's events as bursts of changed paths: a burst ends after
//! [`DEBOUNCE`] without a change; reads and listings are not changes.

use std::collections::BTreeSet;
use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use notify::event::{AccessKind, EventKind, MetadataKind, ModifyKind};

/// Editors write a file in bursts (temporary file, rename, attributes), all
/// within a few milliseconds: a burst ends after this long without a change.
const DEBOUNCE: Duration = Duration::from_millis(100);

pub(super) type Events = std::sync::mpsc::Receiver<notify::Result<notify::Event>>;

/// The paths of the next burst of changes (everything already waiting is
/// taken too: changes made during a cycle start the next one) and when its
/// first change came, or `None` on Ctrl-C.
pub(super) fn next_batch(rx: &Events) -> Option<(BTreeSet<Utf8PathBuf>, std::time::SystemTime)> {
    let mut paths = BTreeSet::new();
    // Files the burst made: an editor's or sed's temporary file, gone by the
    // end of the burst, changed nothing.
    let mut born = BTreeSet::new();
    // Wait for the first change.
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(event) => {
                if take(event, &mut paths, &mut born) {
                    break;
                }
            }
            Err(RecvTimeoutError::Timeout) if process::interrupt::is_requested() => return None,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
    let first = std::time::SystemTime::now();
    // Then until the burst is over.
    loop {
        match rx.recv_timeout(DEBOUNCE) {
            Ok(event) => {
                take(event, &mut paths, &mut born);
            }
            Err(_) => {
                paths.retain(|p| !born.contains(p) || p.symlink_metadata().is_ok());
                return Some((paths, first));
            }
        }
    }
}

/// Adds a change's paths; `false` for what changes nothing (a file read,
/// a folder listed: the run itself reads the files it watches).
fn take(
    event: notify::Result<notify::Event>,
    paths: &mut BTreeSet<Utf8PathBuf>,
    born: &mut BTreeSet<Utf8PathBuf>,
) -> bool {
    let Ok(event) = event else { return false };
    if let EventKind::Create(_) = event.kind {
        for p in &event.paths {
            if let Some(p) = Utf8Path::from_path(p)
                && !paths.contains(p)
            {
                born.insert(p.to_owned());
            }
        }
    }
    let changes = match event.kind {
        EventKind::Access(AccessKind::Close(notify::event::AccessMode::Write)) => true,
        EventKind::Access(_) | EventKind::Other | EventKind::Any => false,
        EventKind::Modify(ModifyKind::Metadata(MetadataKind::AccessTime)) => false,
        EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_) => true,
    };
    if changes {
        paths.extend(
            event
                .paths
                .into_iter()
                .filter_map(|p| Utf8PathBuf::from_path_buf(p).ok()),
        );
    }
    changes
}
