//! Dealing one fault to a running tool: once the chosen phase has started
//! and the chosen moment has passed, the signal, the second Ctrl-C, the
//! engine restart, the container kill or the hanging test's end.

use std::io::BufRead as _;
use std::os::unix::process::CommandExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use camino::Utf8Path;
use compose::Policy;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

use super::Fault;

/// Runs the tool and deals `fault` once `phase` has started and `delay`
/// passed: exit code, output, and when after the phase's start it was dealt.
#[allow(clippy::too_many_arguments)]
pub(super) fn faulted(
    xtask: &Utf8Path,
    root: &Utf8Path,
    project: &str,
    fault: Fault,
    phase: &str,
    policy: Policy,
    ephemeral: bool,
    watch: bool,
    delay: Duration,
    group: bool,
) -> (Option<i32>, String, Option<Duration>) {
    let mut cmd = super::tool(xtask, root, project, policy, ephemeral, watch).before_spawn(|c| {
        c.process_group(0);
        Ok(())
    });
    if fault == Fault::HangingTest {
        cmd = cmd.env("E2E_SOAK_HANG", "1");
    }
    let reader = cmd.reader().expect("the tool starts");
    let pid = Pid::from_raw(reader.pids()[0] as i32);
    let marker = format!("{phase:<10} started");
    let ended = Arc::new(AtomicBool::new(false));
    let mut dealt: Option<std::thread::JoinHandle<Duration>> = None;
    let mut output = String::new();
    let mut lines = std::io::BufReader::new(&reader);
    let mut line = String::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    while lines.read_line(&mut line).unwrap_or(0) > 0 {
        output.push_str(&line);
        if dealt.is_none() && line.contains(&marker) {
            let (project, ended) = (project.to_owned(), ended.clone());
            dealt = Some(std::thread::spawn(move || {
                deal(fault, pid, group, &project, delay, &ended)
            }));
        }
        // A watch never ends by itself: once it watches, Ctrl-C.
        if watch && line.starts_with("watching ") {
            let _ = killpg(pid, Signal::SIGINT);
        }
        if Instant::now() > deadline {
            let _ = killpg(pid, Signal::SIGKILL);
        }
        line.clear();
    }
    ended.store(true, Ordering::SeqCst);
    // Its output ends as it exits (a grandchild may hold it a moment longer).
    let mut code = None;
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_secs(30) {
        if let Ok(Some(out)) = reader.try_wait() {
            code = Some(out.status.code());
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let hit = dealt.and_then(|h| h.join().ok());
    (code.flatten(), output, hit)
}

/// Waits `delay` (or until the run ends), then deals the fault.
fn deal(
    fault: Fault,
    pid: Pid,
    group: bool,
    project: &str,
    delay: Duration,
    ended: &AtomicBool,
) -> Duration {
    let start = Instant::now();
    while start.elapsed() < delay {
        if ended.load(Ordering::SeqCst) {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let dealt_at = start.elapsed();
    let signal = |s: Signal| {
        let _ = if group { killpg(pid, s) } else { kill(pid, s) };
    };
    match fault {
        Fault::Interrupt => signal(Signal::SIGINT),
        Fault::Terminate => signal(Signal::SIGTERM),
        Fault::Kill => signal(Signal::SIGKILL),
        Fault::SecondCtrlC => {
            // A terminal's Ctrl-C reaches the group; the second comes while
            // the first one's teardown runs.
            let _ = killpg(pid, Signal::SIGINT);
            std::thread::sleep(Duration::from_millis(300));
            let _ = killpg(pid, Signal::SIGINT);
        }
        Fault::ContainerKilled => {
            if let Ok(left) = compose::leftovers(project)
                && let Some(c) = left.containers.iter().find(|c| c.state == "running")
            {
                let _ = compose::docker(["kill", c.name.as_str()]).output(Utf8Path::new("/"));
            }
        }
        Fault::HangingTest => {
            // What nextest's terminate-after does, sooner: the hanging test killed.
            std::thread::sleep(Duration::from_secs(2));
            let _ = duct::cmd!(
                "pkill",
                "-KILL",
                "-f",
                "a_request_through_the_gateway_reaches_the_backend"
            )
            .stdout_null()
            .stderr_null()
            .unchecked()
            .run();
        }
        Fault::EngineRestart => {
            let engine = crate::project_root().join(".ci/engine");
            let which = duct::cmd("bash", [engine.as_str(), "which"])
                .read()
                .unwrap_or_default();
            if let Ok(pid) = duct::cmd!("pidof", "dockerd").read()
                && let Some(pid) = pid.split_whitespace().next().and_then(|p| p.parse().ok())
            {
                let pid = Pid::from_raw(pid);
                let _ = kill(pid, Signal::SIGTERM);
                while kill(pid, None).is_ok() {
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            let _ = duct::cmd("bash", [engine.as_str()])
                .env("E2E_ENGINE", which.trim())
                .stdout_null()
                .stderr_null()
                .run();
        }
    }
    dealt_at
}
