//! Long-lived children in process groups of their own, each with a handle
//! that stops exactly its own group ([`Group`]), and [`Scope`]: the groups
//! one piece of work started on a thread, stopped together by whoever owns
//! that work (a build beside the phases that is no longer wanted).

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use camino::Utf8Path;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::Cmd;
use crate::error::Result;

/// How [`Cmd::run_group`] runs a child.
#[derive(Debug, Clone, Copy)]
pub struct GroupOptions {
    /// Capture stdout and stderr (returned); otherwise they go to our terminal.
    pub capture: bool,
    /// The first Ctrl-C stops it (build, up, tests); teardown is not.
    pub interruptible: bool,
}

/// What a process-group child left behind.
#[derive(Debug, Clone)]
pub struct GroupOutput {
    /// `None` when a signal ended it.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl GroupOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// A child running in its own process group. Dropped before it was waited
/// for, it is stopped (SIGTERM to its group) and waited for: nothing it
/// started outlives its handle.
#[derive(Debug)]
pub struct Group {
    handle: Option<duct::Handle>,
    pgid: i32,
    cmd: Cmd,
}

impl Group {
    /// Stops its process group (SIGTERM, as a Ctrl-C would: buildx then
    /// cancels its build in the engine); only its own.
    pub fn stop(&self) {
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGTERM);
    }

    /// Its output once it has exited; `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<GroupOutput>> {
        let Some(handle) = &self.handle else {
            return Ok(None);
        };
        match handle.try_wait() {
            Ok(None) => Ok(None),
            Ok(Some(out)) => {
                let out = output(out);
                self.done();
                Ok(Some(out))
            }
            Err(source) => {
                self.done();
                Err(self.cmd.spawn_error(source))
            }
        }
    }

    /// Waits for it to exit.
    pub fn wait(mut self) -> Result<GroupOutput> {
        let handle = self.handle.as_ref().expect("a group is waited for once");
        let out = handle.wait().map(output);
        self.done();
        out.map_err(|source| self.cmd.spawn_error(source))
    }

    fn done(&mut self) {
        if self.handle.take().is_some() {
            crate::interrupt::unregister(self.pgid as u32);
            SCOPE.with(|s| {
                if let Some(scope) = &*s.borrow() {
                    scope.forget(self.pgid);
                }
            });
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(handle) = &self.handle {
            self.stop();
            let _ = handle.wait();
            self.done();
        }
    }
}

fn output(out: &std::process::Output) -> GroupOutput {
    GroupOutput {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl Cmd {
    /// Starts it in its own process group, so a terminal's Ctrl-C reaches
    /// only us; [`crate::interrupt`] decides when it is stopped, and so does
    /// the returned handle, for its own group alone.
    pub fn start_group(&self, dir: &Utf8Path, opts: GroupOptions) -> Result<Group> {
        let mut e = self.expression(dir).unchecked();
        if opts.capture {
            e = e.stdout_capture().stderr_capture();
        }
        let handle = e.start().map_err(|source| self.spawn_error(source))?;
        // The program is the group's leader: its pid is the group's id.
        let pgid = handle.pids().first().copied().unwrap_or_default() as i32;
        crate::interrupt::register(pgid as u32, opts.interruptible);
        SCOPE.with(|s| {
            if let Some(scope) = &*s.borrow() {
                scope.add(pgid);
            }
        });
        Ok(Group {
            handle: Some(handle),
            pgid,
            cmd: self.clone(),
        })
    }

    /// Runs it in its own process group to the end (see [`Cmd::start_group`]).
    pub fn run_group(&self, dir: &Utf8Path, opts: GroupOptions) -> Result<GroupOutput> {
        self.start_group(dir, opts)?.wait()
    }
}

thread_local! {
    /// The scope the work on this thread runs in, if any.
    static SCOPE: RefCell<Option<Scope>> = const { RefCell::new(None) };
}

/// The process groups started by one piece of work on one thread (see
/// [`Scope::enter`]): [`Scope::stop`] stops those and no other, and any
/// started after it is stopped at once.
#[derive(Debug, Clone, Default)]
pub struct Scope(Arc<Mutex<ScopeState>>);

#[derive(Debug, Default)]
struct ScopeState {
    groups: Vec<i32>,
    stopped: bool,
}

impl Scope {
    /// Runs `work` with the groups it starts (on this thread) in this scope.
    pub fn enter<T>(&self, work: impl FnOnce() -> T) -> T {
        let before = SCOPE.with(|s| s.replace(Some(self.clone())));
        let out = work();
        SCOPE.with(|s| *s.borrow_mut() = before);
        out
    }

    /// Stops every group the work started and still runs, and any it starts later.
    pub fn stop(&self) {
        let Ok(mut state) = self.0.lock() else {
            return;
        };
        state.stopped = true;
        for &g in &state.groups {
            let _ = killpg(Pid::from_raw(g), Signal::SIGTERM);
        }
    }

    fn add(&self, pgid: i32) {
        if let Ok(mut state) = self.0.lock() {
            state.groups.push(pgid);
            if state.stopped {
                let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
            }
        }
    }

    fn forget(&self, pgid: i32) {
        if let Ok(mut state) = self.0.lock() {
            state.groups.retain(|&g| g != pgid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper(seconds: &str) -> Cmd {
        Cmd::new("sleep", [seconds])
    }

    const QUIET: GroupOptions = GroupOptions {
        capture: true,
        interruptible: false,
    };

    #[test]
    fn a_handle_stops_its_own_group_and_no_other() {
        let here = Utf8Path::new(".");
        let mut mine = sleeper("30").start_group(here, QUIET).unwrap();
        let mut other = sleeper("30").start_group(here, QUIET).unwrap();
        assert!(mine.try_wait().unwrap().is_none());
        mine.stop();
        let out = mine.wait().unwrap();
        assert_eq!(out.code, None, "ended by a signal");
        assert!(other.try_wait().unwrap().is_none(), "the other still runs");
        other.stop();
        other.wait().unwrap();
    }

    #[test]
    fn a_scope_stops_what_its_work_started_even_later() {
        let here = Utf8Path::new(".");
        let scope = Scope::default();
        let outside = sleeper("30").start_group(here, QUIET).unwrap();
        let work = {
            let scope = scope.clone();
            std::thread::spawn(move || {
                scope.enter(|| {
                    let first = sleeper("30").run_group(here, QUIET).unwrap();
                    // Started after the stop: stopped at once.
                    let second = sleeper("30").run_group(here, QUIET).unwrap();
                    (first.code, second.code)
                })
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(300));
        scope.stop();
        // Both ended by a signal: a sleep that ran its course exits 0.
        assert_eq!(work.join().unwrap(), (None, None));
        let mut outside = outside;
        assert!(outside.try_wait().unwrap().is_none(), "outside the scope");
    }
}
