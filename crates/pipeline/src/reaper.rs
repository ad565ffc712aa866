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
    ) -> crate::Result<Reaper> {
        use crate::Error;
        let shared = lock.share().map_err(Error::io(&lock.path))?;
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        }
        let log_file = std::fs::File::create(log).map_err(Error::io(log))?;
        let here = log.parent().unwrap_or(Utf8Path::new("."));
        let mut child =
            process::Cmd::new(exe.as_str(), ["__reaper"]).spawn_detached(here, shared, log_file)?;
        let line = serde_json::to_string(order).expect("an order serialises");
        child
            .send(&line)
            .map_err(|e| Error::Stack(format!("cannot hand the reaper its order: {e}")))?;
        // The build, `up` and nextest groups the run starts from now on.
        if let Ok(w) = child.stdin_clone() {
            process::interrupt::report_groups(Some(w));
        }
        ARMED.store(child.pid, Ordering::SeqCst);
        Ok(Reaper { child })
    }

    /// The run finished and applied its policy itself: the reaper exits.
    pub fn disarm(self) {
        ARMED.store(0, Ordering::SeqCst);
        process::interrupt::report_groups(None);
        let _ = self.child.finish(DONE);
    }
}

/// What a run that went away left: its order, and the process groups it had
/// running (a build, an `up`, the tests), which outlive it.
#[derive(Debug, Clone)]
pub struct Orphaned {
    pub order: Order,
    pub groups: Vec<i32>,
}

/// The reaper's side: reads the order, then waits, keeping count of the
/// run's process groups. `None` when the run said it is done; what it left
/// when it went away without saying so.
pub fn wait_for_the_run(mut input: impl BufRead) -> crate::Result<Option<Orphaned>> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| crate::Error::Stack(format!("reading the order: {e}")))?;
    let order: Order = serde_json::from_str(line.trim())
        .map_err(|e| crate::Error::Stack(format!("not an order: {e}: {line}")))?;
    let mut groups: Vec<i32> = Vec::new();
    loop {
        line.clear();
        match input.read_line(&mut line) {
            Ok(0) | Err(_) => return Ok(Some(Orphaned { order, groups })),
            Ok(_) if line.trim() == DONE => return Ok(None),
            Ok(_) => match line.trim().split_once(' ') {
                Some(("group", g)) => groups.extend(g.parse::<i32>().ok()),
                Some(("gone", g)) => groups.retain(|p| g.parse() != Ok(*p)),
                _ => {}
            },
        }
    }
}

/// Whether any process of group `pgid` runs (is not a zombie), from /proc.
fn group_runs(pgid: i32) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .any(|stat| {
            // `pid (comm) state ppid pgrp ...`; comm may hold spaces and parentheses.
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let mut fields = rest.split(' ');
            let state = fields.next();
            let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
            pgrp == Some(pgid) && state != Some("Z")
        })
}

/// Stops the process groups a dead run left (SIGTERM, as the run's own
/// Ctrl-C would: buildx then cancels its build in the engine; SIGKILL for
/// what is left after `grace`). Returns how many there were.
pub fn stop_groups(groups: &[i32], grace: Duration) -> usize {
    use nix::sys::signal::{Signal, killpg};
    use nix::unistd::Pid;
    // A killed process stays a zombie until its new parent reaps it: only
    // a member that is not one counts as running.
    let alive = |g: &i32| group_runs(*g);
    let live: Vec<i32> = groups.iter().copied().filter(alive).collect();
    for g in &live {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGTERM);
    }
    let start = std::time::Instant::now();
    while live.iter().any(alive) && start.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(100));
    }
    for g in live.iter().filter(|g| alive(g)) {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
    // SIGKILL is delivered, not done: a member may still be exiting. The
    // policy runs only once they are gone (a build still cancelling would
    // hold its images).
    let start = std::time::Instant::now();
    while live.iter().any(alive) && start.elapsed() < Duration::from_secs(2) {
        std::thread::sleep(Duration::from_millis(20));
    }
    live.len()
}

/// Applies the order's policy to a run that went away; `lock` is the
/// project lock it shares, rewritten to say who holds it now. Returns what
/// was done, for the reaper's log.
pub fn carry_out(order: &Order, mut lock: std::fs::File) -> crate::Result<String> {
    crate::lock::Holder {
        pid: std::process::id(),
        since: crate::config::unix_time(),
        workspace: order.spec.dir.to_string(),
        doing: format!("reaping run {}: {}", order.run_pid, order.policy),
    }
    .write_to(&mut lock);
    let project = Project::load(order.spec.clone())?;
    let grace = Duration::from_secs(order.grace_s);
    // A `docker compose up` the run had started outlives it and may still be
    // creating containers: passes go on until a check a second after the
    // last one finds the promise kept (a few at most).
    for _ in 0..5 {
        project.teardown(order.policy, grace, None)?;
        std::thread::sleep(Duration::from_secs(1));
        if project
            .leftovers()
            .is_ok_and(|l| l.broken_promise(order.policy).is_none())
        {
            break;
        }
    }
    let left = project.leftovers()?;
    match left.broken_promise(order.policy) {
        None => Ok(format!(
            "run {} went away; applied {} to project {}; the engine holds: {left}",
            order.run_pid,
            order.policy,
            project.name()
        )),
        Some(broken) => Err(crate::Error::Stack(broken)),
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
        // The groups the run had running when it went away: started and not gone.
        let gone = format!("{line}\ngroup 700\ngroup 701\ngone 700\ngroup 702\n");
        let got = wait_for_the_run(gone.as_bytes()).unwrap().unwrap();
        assert_eq!((got.order.run_pid, got.order.policy), (42, Policy::Purge));
        assert_eq!(got.groups, [701, 702]);
        assert!(wait_for_the_run("garbage\n".as_bytes()).is_err());
    }

    #[test]
    fn a_dead_run_s_groups_are_stopped_hard_when_they_ignore_sigterm() {
        // A real process group that ignores SIGTERM (as a PID 1 might): the
        // grace passes, then SIGKILL.
        let deaf = duct::cmd!("sh", "-c", "trap '' TERM; sleep 30 & wait")
            .before_spawn(|c| {
                std::os::unix::process::CommandExt::process_group(c, 0);
                Ok(())
            })
            .start()
            .unwrap();
        let pgid = deaf.pids()[0] as i32;
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(stop_groups(&[pgid, 999_999], Duration::from_millis(500)), 1);
        let status = deaf.into_output();
        assert!(status.is_err() || !status.unwrap().status.success());
        assert_eq!(stop_groups(&[pgid], Duration::from_millis(100)), 0);
    }
}
