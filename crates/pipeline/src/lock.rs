//! One run per project at a time. Two runs of one project at once race each
//! other's `up` (Docker's "container name already in use", and once two
//! networks of one name that wedged the project until removed by hand). A run
//! holds an exclusive `flock` on a file named after the project and the
//! engine, in the user's runtime folder, so runs from other checkouts of the
//! same user are covered too. The kernel drops the lock when the holder dies,
//! however it dies: nothing to unlock by hand. The file says who holds it and
//! what it is doing, for the run that waits.

use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};

use camino::Utf8PathBuf;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// Who holds a project's lock.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Holder {
    pub pid: u32,
    /// Seconds since the epoch.
    pub since: u64,
    pub workspace: String,
    /// The phase it is in.
    pub doing: String,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ago = crate::config::unix_time().saturating_sub(self.since);
        write!(
            f,
            "run {} from {} ({}, started {ago} s ago)",
            self.pid, self.workspace, self.doing
        )
    }
}

/// A held project lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct ProjectLock {
    file: Flock<File>,
    holder: Holder,
    pub path: Utf8PathBuf,
}

impl ProjectLock {
    /// Takes the lock of `project`. When another run holds it: with `wait`,
    /// polls until it is free (an interruption gives up), calling `waiting`
    /// with the holder each time it changes; without, fails naming the holder.
    pub fn acquire(
        project: &str,
        workspace: &str,
        wait: bool,
        mut waiting: impl FnMut(&str),
    ) -> crate::Result<ProjectLock> {
        use crate::Error;
        let path = lock_path(project);
        if let Some(locks) = path.parent() {
            // The folder above (`cargo-e2e`, or `cargo-e2e-<uid>` in a shared
            // temp folder) and `locks` itself: this user's alone, no link.
            if let Some(base) = locks.parent() {
                crate::guard::own_dir(base)?;
            }
            crate::guard::own_dir(locks)?;
        }
        let mut last = String::new();
        loop {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(Error::io(&path))?;
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(file) => {
                    let mut lock = ProjectLock {
                        file,
                        holder: Holder {
                            pid: std::process::id(),
                            since: crate::config::unix_time(),
                            workspace: workspace.to_owned(),
                            doing: "starting".into(),
                        },
                        path,
                    };
                    lock.write();
                    return Ok(lock);
                }
                Err((mut file, nix::errno::Errno::EWOULDBLOCK)) => {
                    let mut text = String::new();
                    let _ = file.read_to_string(&mut text);
                    let parsed = serde_json::from_str::<Holder>(&text).ok();
                    // Told again when the holder or its phase changes, not its age.
                    let who = parsed
                        .as_ref()
                        .map_or_else(String::new, |h| format!("{} {}", h.pid, h.doing));
                    let holder = parsed.map_or_else(|| "another run".to_owned(), |h| h.to_string());
                    if !wait {
                        return Err(Error::Stack(format!(
                            "project {project} is in use by {holder}; wait for it (drop --no-wait), \
                             or pick another project with --project"
                        )));
                    }
                    if who != last {
                        waiting(&format!(
                            "project {project} is in use by {holder}: waiting (Ctrl-C gives up)"
                        ));
                        last = who;
                    }
                    if process::interrupt::is_requested() {
                        return Err(Error::Stack(format!(
                            "interrupted while waiting for project {project}"
                        )));
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err((_, e)) => {
                    return Err(Error::Io {
                        path,
                        source: e.into(),
                    });
                }
            }
        }
    }

    /// Another handle on the same open lock: whoever holds it holds the lock
    /// too, after this process is gone (the reaper's stdout).
    pub fn share(&self) -> std::io::Result<File> {
        let f: &File = &self.file;
        f.try_clone()
    }

    /// Records what the run is doing now, for a run that waits.
    pub fn doing(&mut self, what: &str) {
        self.holder.doing = what.to_owned();
        self.write();
    }

    fn write(&mut self) {
        let f: &mut File = &mut self.file;
        self.holder.write_to(f);
    }
}

impl Holder {
    /// Replaces what a lock file (this run's, or one it shares) says of its
    /// holder. What the file says is for people: a failed write loses nothing.
    pub fn write_to(&self, lock: &mut File) {
        let text = serde_json::to_string(self).unwrap_or_default();
        let _ = lock
            .set_len(0)
            .and_then(|()| lock.rewind())
            .and_then(|()| lock.write_all(text.as_bytes()));
    }
}

/// `<runtime dir>/cargo-e2e/locks/<project>@<engine>.lock`: per user (the
/// runtime folder, else one in the temp folder named by the uid) and per
/// engine, since one project name on two engines is two stacks.
fn lock_path(project: &str) -> Utf8PathBuf {
    let base = std::env::var("XDG_RUNTIME_DIR")
        .ok()
        .filter(|d| !d.is_empty() && std::path::Path::new(d).is_dir())
        .map(Utf8PathBuf::from)
        .unwrap_or_else(|| {
            let tmp = Utf8PathBuf::from_path_buf(std::env::temp_dir())
                .unwrap_or_else(|_| Utf8PathBuf::from("/tmp"));
            tmp.join(format!("cargo-e2e-{}", nix::unistd::getuid()))
        });
    base.join("cargo-e2e/locks").join(format!(
        "{project}@{}.lock",
        file_safe(&compose::Engine::endpoint())
    ))
}

fn file_safe(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(80)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_run_of_a_project_waits_or_is_told_who_holds_it() {
        let project = format!("lock-test-{}", std::process::id());
        let mut first = ProjectLock::acquire(&project, "/w/one", false, |_| {}).unwrap();
        first.doing("up");
        let busy = ProjectLock::acquire(&project, "/w/two", false, |_| {})
            .unwrap_err()
            .to_string();
        assert!(
            busy.contains(&format!(
                "in use by run {} from /w/one (up, started",
                std::process::id()
            )),
            "{busy}"
        );
        // A waiting run is told once who it waits for, and gets the lock
        // as soon as the holder goes, whichever way it goes.
        let released = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(1500));
            drop(first);
        });
        let mut told = Vec::new();
        let second =
            ProjectLock::acquire(&project, "/w/two", true, |m| told.push(m.to_owned())).unwrap();
        released.join().unwrap();
        assert_eq!(told.len(), 1, "{told:?}");
        assert!(told[0].contains("waiting"), "{told:?}");
        let _ = std::fs::remove_file(&second.path);
    }

    #[test]
    fn engines_and_odd_names_make_plain_file_names() {
        assert_eq!(file_safe("tcp://10.0.0.2:2376"), "tcp___10_0_0_2_2376");
        assert_eq!(file_safe("context-remote"), "context-remote");
    }
}
