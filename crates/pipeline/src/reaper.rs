//! The reaper: whatever kills a run (SIGKILL, the OOM killer, a CI runner
//! tearing the job down), its stack goes by the run's policy. At the start
//! of a run the tool starts itself again as a reaper (`__reaper`), in its own
//! process group, with a pipe as stdin that only the run writes to, and the
//! run's project lock as stdout (the same open file: the lock is held by both).
//! A run that finishes writes `done`; a run that dies closes the pipe
//! unwritten, and the reaper, still holding the project's lock (so no new run
//! of the project starts under it), applies the policy and releases the lock
//! by exiting. Like testcontainers' Ryuk it reacts to a dropped connection;
//! unlike Ryuk it runs beside the client, so it needs no image and works
//! with any engine the client reaches (a remote one too).

use std::io::BufRead;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use camino::Utf8Path;
use compose::{Policy, Project, ProjectSpec};
use serde::{Deserialize, Serialize};

use crate::lock::ProjectLock;

/// What the reaper is to do if the run goes away.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub run_pid: u32,
    pub policy: Policy,
    pub grace_s: u64,
    pub spec: ProjectSpec,
}

/// An armed reaper, owned by the run.
#[derive(Debug)]
pub struct Reaper {
    child: process::Detached,
}

/// The armed reaper's pid, for the signal handler's message.
static ARMED: AtomicU32 = AtomicU32::new(0);

pub fn armed_pid() -> Option<u32> {
    Some(ARMED.load(Ordering::SeqCst)).filter(|&p| p != 0)
}

/// The line a finished run sends.
const DONE: &str = "done";

impl Reaper {
    /// Starts `exe __reaper` with the order, sharing the project lock;
    /// its log goes to `log`.
    pub fn arm(
        exe: &Utf8Path,
        lock: &ProjectLock,
        order: &Order,
        log: &Utf8Path,
    ) -> Result<Reaper, String> {
        let shared = lock
            .share()
            .map_err(|e| format!("cannot share the project lock: {e}"))?;
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
        }
        let log_file =
            std::fs::File::create(log).map_err(|e| format!("cannot create {log}: {e}"))?;
        let here = log.parent().unwrap_or(Utf8Path::new("."));
        let mut child = process::Cmd::new(exe.as_str(), ["__reaper"])
            .spawn_detached(here, shared, log_file)
            .map_err(|e| e.to_string())?;
        let line = serde_json::to_string(order).map_err(|e| e.to_string())?;
        child
            .send(&line)
            .map_err(|e| format!("cannot hand the reaper its order: {e}"))?;
        ARMED.store(child.pid, Ordering::SeqCst);
        Ok(Reaper { child })
    }

    /// The run finished and applied its policy itself: the reaper exits.
    pub fn disarm(self) {
        ARMED.store(0, Ordering::SeqCst);
        let _ = self.child.finish(DONE);
    }
}

/// The reaper's side: reads the order, then waits. `None` when the run said
/// it is done; the order when the run went away without saying so.
pub fn wait_for_the_run(mut input: impl BufRead) -> Result<Option<Order>, String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| format!("reading the order: {e}"))?;
    let order: Order =
        serde_json::from_str(line.trim()).map_err(|e| format!("not an order: {e}: {line}"))?;
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return Ok(Some(order)),
            Ok(_) if line.trim() == DONE => return Ok(None),
            Ok(_) => {}
        }
    }
}

/// Applies the order's policy to a run that went away; `lock` is the
/// project lock it shares, rewritten to say who holds it now. Returns what
/// was done, for the reaper's log.
pub fn carry_out(order: &Order, mut lock: std::fs::File) -> Result<String, String> {
    crate::lock::Holder {
        pid: std::process::id(),
        since: crate::config::unix_time(),
        workspace: order.spec.dir.to_string(),
        doing: format!("reaping run {}: {}", order.run_pid, order.policy),
    }
    .write_to(&mut lock);
    let project = Project::load(order.spec.clone()).map_err(|e| e.to_string())?;
    let grace = Duration::from_secs(order.grace_s);
    // A `docker compose up` the run had started outlives it and may still be
    // creating containers: passes go on until a check a second after the
    // last one finds the promise kept (a few at most).
    for _ in 0..5 {
        project
            .teardown(order.policy, grace)
            .map_err(|e| e.to_string())?;
        std::thread::sleep(Duration::from_secs(1));
        if project
            .leftovers()
            .is_ok_and(|l| l.broken_promise(order.policy).is_none())
        {
            break;
        }
    }
    let left = project.leftovers().map_err(|e| e.to_string())?;
    match left.broken_promise(order.policy) {
        None => Ok(format!(
            "run {} went away; applied {} to project {}; the engine holds: {left}",
            order.run_pid,
            order.policy,
            project.name()
        )),
        Some(broken) => Err(broken),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reaper_acts_only_when_the_run_goes_away_unsaid() {
        let order = Order {
            run_pid: 42,
            policy: Policy::Purge,
            grace_s: 2,
            spec: ProjectSpec {
                dir: "/w".into(),
                files: vec!["compose.yaml".into()],
                project: Some("p".into()),
                ..ProjectSpec::default()
            },
        };
        let line = serde_json::to_string(&order).unwrap();
        let done = format!("{line}\ndone\n");
        assert!(wait_for_the_run(done.as_bytes()).unwrap().is_none());
        let gone = format!("{line}\n");
        let got = wait_for_the_run(gone.as_bytes()).unwrap().unwrap();
        assert_eq!((got.run_pid, got.policy), (42, Policy::Purge));
        assert!(wait_for_the_run("garbage\n".as_bytes()).is_err());
    }
}
