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

/// Which of a child's output streams is read as it comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// Both as one, in the order written (read as stdout).
    Both,
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
    /// The stream read as it comes, and the thread reading it, which
    /// returns all of it.
    streamed: Option<(Stream, std::thread::JoinHandle<String>)>,
}

impl Group {
    /// Stops its process group (SIGTERM, as a Ctrl-C would: buildx then
    /// cancels its build in the engine); only its own.
    pub fn stop(&self) {
        let _ = killpg(Pid::from_raw(self.pgid), Signal::SIGTERM);
    }

    /// Its output once it has exited; `None` while it runs.
    pub fn try_wait(&mut self) -> Result<Option<GroupOutput>> {
        let Some(handle) = self.handle.take() else {
            return Ok(None);
        };
        let done = handle.try_wait().map(|o| o.map(|o| self.output(o)));
        self.handle = Some(handle);
        match done {
            Ok(None) => Ok(None),
            Ok(Some(out)) => {
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
        let handle = self.handle.take().expect("a group is waited for once");
        let out = handle.wait().map(|o| self.output(o));
        self.handle = Some(handle);
        self.done();
        out.map_err(|source| self.cmd.spawn_error(source))
    }

    /// What it left; the streamed stream from its reading thread (which ends
    /// when the last process holding the pipe does).
    fn output(&mut self, out: &std::process::Output) -> GroupOutput {
        let mut output = GroupOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        if let Some((stream, reader)) = self.streamed.take() {
            let text = reader.join().unwrap_or_default();
            match stream {
                Stream::Stdout | Stream::Both => output.stdout = text,
                Stream::Stderr => output.stderr = text,
            }
        }
        output
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
        if let Some((_, reader)) = self.streamed.take() {
            let _ = reader.join();
        }
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
        self.start(e, opts, None)
    }

    /// Starts it like [`Cmd::start_group`], reading `stream` as it comes:
    /// each line goes to `on_line` (`\r` ends one too: cargo redraws its
    /// progress bar with it), and the whole of it is in the output; the
    /// other stream is captured.
    pub fn start_group_streaming(
        &self,
        dir: &Utf8Path,
        interruptible: bool,
        stream: Stream,
        mut on_line: impl FnMut(&str) + Send + 'static,
    ) -> Result<Group> {
        let (reader, writer) = std::io::pipe().map_err(|source| self.spawn_error(source))?;
        let e = self.expression(dir).unchecked();
        let e = match stream {
            Stream::Stderr => e.stdout_capture().stderr_file(writer),
            Stream::Stdout => e.stderr_capture().stdout_file(writer),
            Stream::Both => e.stderr_to_stdout().stdout_file(writer),
        };
        let thread = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut line = Vec::new();
            let mut reader = std::io::BufReader::new(reader);
            let mut buf = [0u8; 8192];
            while let Ok(n) = std::io::Read::read(&mut reader, &mut buf) {
                if n == 0 {
                    break;
                }
                all.extend_from_slice(&buf[..n]);
                for &b in &buf[..n] {
                    if b == b'\n' || b == b'\r' {
                        if !line.is_empty() {
                            on_line(&String::from_utf8_lossy(&line));
                            line.clear();
                        }
                    } else {
                        line.push(b);
                    }
                }
            }
            if !line.is_empty() {
                on_line(&String::from_utf8_lossy(&line));
            }
            String::from_utf8_lossy(&all).into_owned()
        });
        let opts = GroupOptions {
            capture: true,
            interruptible,
        };
        self.start(e, opts, Some((stream, thread)))
    }

    fn start(
        &self,
        e: duct::Expression,
        opts: GroupOptions,
        streamed: Option<(Stream, std::thread::JoinHandle<String>)>,
    ) -> Result<Group> {
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
            streamed,
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
    fn stderr_streams_line_by_line_and_stays_whole() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let cmd = Cmd::new(
            "sh",
            ["-c", "printf 'a\\rb\\n' >&2; echo out; printf 'c' >&2"],
        );
        let group = cmd
            .start_group_streaming(Utf8Path::new("."), false, Stream::Stderr, move |l| {
                sink.lock().unwrap().push(l.to_owned())
            })
            .unwrap();
        let out = group.wait().unwrap();
        assert_eq!(*seen.lock().unwrap(), ["a", "b", "c"]);
        assert_eq!(out.stderr, "a\rb\nc");
        assert_eq!(out.stdout, "out\n");
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
