//! Ctrl-C and SIGTERM, decided by us: long-lived children run in their own
//! process group (a terminal's Ctrl-C reaches only us). The first signal calls
//! [`request`]: the interruptible child running now is stopped and the caller
//! goes on to teardown. A second calls [`abandon`]: teardown is stopped too.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
/// Process groups running now, and whether the first Ctrl-C stops them.
static RUNNING: Mutex<Vec<(i32, bool)>> = Mutex::new(Vec::new());

/// Marks the run interrupted and stops every interruptible child group.
/// (To stop one piece of work, stop its [`crate::Group`] or [`crate::Scope`].)
pub fn request() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    signal_groups(|interruptible| interruptible);
}

/// Stops every child, teardown included: the user gave up waiting.
pub fn abandon() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    signal_groups(|_| true);
}

pub fn is_requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

fn signal_groups(which: impl Fn(bool) -> bool) {
    let groups = RUNNING.lock().map(|g| g.clone()).unwrap_or_default();
    for (pgid, interruptible) in groups {
        if which(interruptible) {
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
        }
    }
}

/// Where each interruptible group's start (`group PGID`) and end (`gone
/// PGID`) is written as it happens: the reaper's pipe, so that a run killed
/// outright still has its builds and tests stopped (they run in groups of
/// their own, which a SIGKILL of the run does not reach).
static REPORT: Mutex<Option<std::io::PipeWriter>> = Mutex::new(None);

/// Reports interruptible groups to `to` from now on (`None`: no longer).
pub fn report_groups(to: Option<std::io::PipeWriter>) {
    if let Ok(mut r) = REPORT.lock() {
        *r = to;
    }
}

fn report(line: std::fmt::Arguments<'_>) {
    use std::io::Write as _;
    if let Ok(mut r) = REPORT.lock()
        && let Some(w) = r.as_mut()
    {
        // A reaper that is gone reads nothing: nothing to do about it here.
        let _ = writeln!(w, "{line}");
    }
}

pub(crate) fn register(pid: u32, interruptible: bool) {
    let pgid = pid as i32;
    if let Ok(mut g) = RUNNING.lock() {
        g.push((pgid, interruptible));
    }
    if interruptible {
        report(format_args!("group {pgid}"));
    }
    // A signal that came between spawn and registration still stops the child.
    if interruptible && is_requested() {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    }
}

pub(crate) fn unregister(pid: u32) {
    if let Ok(mut g) = RUNNING.lock() {
        g.retain(|&(p, _)| p != pid as i32);
    }
    report(format_args!("gone {pid}"));
}
