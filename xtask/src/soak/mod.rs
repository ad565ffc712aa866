//! `cargo xtask soak --seed N --runs K`: the demo stack run K times under a
//! random policy and mode (plain, `--watch`, ephemeral ports, three projects
//! at once), each hit at a random moment of a random phase by a random fault
//! (SIGINT, SIGTERM or SIGKILL of the tool alone or of its group; a second
//! Ctrl-C; the engine stopped and started; a container killed from outside;
//! a test that hangs until it is killed). After each run: the engine holds
//! what the policy promises (once the reaper has had its say), the tool's
//! records are whole (its state parses, the run's report does where one was
//! written), and the next run of that project is green and leaves nothing.
//! A benchmark-like count, not a timed test: a table by fault and phase, and
//! every run's line, which its seed reproduces.

use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use compose::Policy;

use crate::Soak;

mod deal;
use deal::faulted;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    Interrupt,
    Terminate,
    Kill,
    SecondCtrlC,
    EngineRestart,
    ContainerKilled,
    HangingTest,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::Interrupt => "SIGINT",
            Fault::Terminate => "SIGTERM",
            Fault::Kill => "SIGKILL",
            Fault::SecondCtrlC => "Ctrl-C twice",
            Fault::EngineRestart => "engine restart",
            Fault::ContainerKilled => "container killed",
            Fault::HangingTest => "hanging test",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Plain,
    Watch,
    Ephemeral,
    ThreeAtOnce,
}

/// The phases a fault lands in, by the line that starts each.
const PHASES: [&str; 3] = ["build", "up", "test"];

/// What one run is dealt.
struct Dealt {
    fault: Fault,
    phase: &'static str,
    policy: Policy,
    mode: Mode,
    delay: Duration,
    group: bool,
    /// The next run starts at once (after a kill: beside the reaper).
    at_once: bool,
}

/// What one run was dealt and how it went.
struct Outcome {
    fault: Fault,
    phase: &'static str,
    line: String,
    ok: bool,
}

pub fn run(flags: &Soak) -> anyhow::Result<()> {
    let mut rng = fastrand::Rng::with_seed(flags.seed);
    let root = crate::project_root();
    // The tool as a user runs it; a copy, which no test build relinks.
    let own = tempfile::Builder::new().prefix("e2e-soak-bin-").tempdir()?;
    let xtask = Utf8PathBuf::from_path_buf(own.path().join("xtask"))
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    std::fs::copy(std::env::current_exe()?, &xtask)?;
    let restarts = std::env::var("E2E_ENGINE_RESTART").as_deref() == Ok("1");
    let mut faults = vec![
        Fault::Interrupt,
        Fault::Terminate,
        Fault::Kill,
        Fault::SecondCtrlC,
        Fault::ContainerKilled,
        Fault::HangingTest,
    ];
    if restarts {
        faults.push(Fault::EngineRestart);
    }
    eprintln!(
        "soak: seed {}, {} runs on the demo stack{}",
        flags.seed,
        flags.runs,
        if restarts {
            ""
        } else {
            " (no engine restarts: set E2E_ENGINE_RESTART=1 to allow them)"
        }
    );
    // Warm: the binaries built, so that a fault lands in the phase, not in a cold compile.
    let warm = format!("soak-{}-warm", flags.seed);
    eprintln!("soak: a warm-up run first (the binaries built, so each fault lands in its phase)");
    let (code, out) = clean_run(&xtask, &root, &warm);
    anyhow::ensure!(code == Some(0), "the warm-up run failed:\n{out}");
    let mut outcomes = Vec::new();
    for i in 1..=flags.runs {
        let fault = faults[rng.usize(..faults.len())];
        let phase = match fault {
            Fault::HangingTest => "test",
            Fault::ContainerKilled => ["up", "test"][rng.usize(..2)],
            _ => PHASES[rng.usize(..PHASES.len())],
        };
        let policy = Policy::parse(Policy::NAMES[rng.usize(..Policy::NAMES.len())])
            .expect("a policy's name");
        let mode = [Mode::Plain, Mode::Watch, Mode::Ephemeral, Mode::ThreeAtOnce][rng.usize(..4)];
        let delay = Duration::from_millis(rng.u64(0..1500));
        let group = rng.bool();
        // After a kill, half the time the next run starts at once, while the
        // reaper of the killed one still tears down (it must wait its turn).
        let at_once = fault == Fault::Kill && rng.bool();
        let project = format!("soak-{}-{i}", flags.seed);
        let dealt = Dealt {
            fault,
            phase,
            policy,
            mode,
            delay,
            group,
            at_once,
        };
        eprintln!(
            "soak {i}/{}: {policy}, {mode:?}, {} in {phase}...",
            flags.runs,
            fault.name()
        );
        let o = soak_one(&xtask, &root, &project, &dealt);
        eprintln!("soak {i}/{}: {}", flags.runs, o.line);
        outcomes.push(o);
    }
    print_table(&outcomes);
    let failed = outcomes.iter().filter(|o| !o.ok).count();
    anyhow::ensure!(
        failed == 0,
        "{failed} of {} runs broke a promise",
        outcomes.len()
    );
    Ok(())
}

/// `xtask e2e` on the demo stack in `root`: the project, the policy, the
/// mode's flags; stderr with stdout.
fn tool(
    xtask: &Utf8Path,
    root: &Utf8Path,
    project: &str,
    policy: Policy,
    ephemeral: bool,
    watch: bool,
) -> duct::Expression {
    let policy = policy.to_string();
    let mut args = vec!["e2e", "--project", project, "--teardown", &policy];
    if ephemeral {
        args.push("--ephemeral-ports");
    }
    if watch {
        args.push("--watch");
    }
    duct::cmd(xtask.as_str(), &args)
        .dir(root)
        .env_remove("CI")
        .stderr_to_stdout()
        .unchecked()
}

/// A whole run of `project`, purged, on ports the engine picks: its exit
/// code and output (the warm-up, the runs beside, each next run).
fn clean_run(xtask: &Utf8Path, root: &Utf8Path, project: &str) -> (Option<i32>, String) {
    let out = tool(xtask, root, project, Policy::Purge, true, false)
        .stdout_capture()
        .run()
        .expect("the tool starts");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn soak_one(xtask: &Utf8Path, root: &Utf8Path, project: &str, d: &Dealt) -> Outcome {
    let Dealt {
        fault,
        phase,
        policy,
        mode,
        delay,
        group,
        at_once,
    } = *d;
    let ephemeral = matches!(mode, Mode::Ephemeral | Mode::ThreeAtOnce);
    let watch = mode == Mode::Watch;
    // The other two of "three at once", started beside the faulted one.
    let others: Vec<std::thread::JoinHandle<(Option<i32>, String)>> = if mode == Mode::ThreeAtOnce {
        (1..=2)
            .map(|k| {
                let (x, r, p) = (xtask.to_owned(), root.to_owned(), format!("{project}-b{k}"));
                std::thread::spawn(move || clean_run(&x, &r, &p))
            })
            .collect()
    } else {
        Vec::new()
    };
    let started = Instant::now();
    let (code, output, hit_at) = faulted(
        xtask, root, project, fault, phase, policy, ephemeral, watch, delay, group,
    );
    let mut problems = Vec::new();
    // The engine holds what the policy promises, once the reaper (a killed
    // run's, or a skipped teardown's) has acted; after an engine restart the
    // next run takes over what was left, so the promise is checked after it.
    if fault != Fault::EngineRestart
        && !at_once
        && let Some(broken) = promise_kept(project, policy)
    {
        problems.push(format!("promise of {policy}: {broken}"));
    }
    // The records are whole: the state parses, the run's report too where written.
    let target = crate::target_dir();
    let state = target.join(format!("e2e/state/{project}.json"));
    if let Ok(text) = std::fs::read_to_string(&state)
        && serde_json::from_str::<serde_json::Value>(&text).is_err()
    {
        problems.push(format!("{state} does not parse"));
    }
    if let Some(report) = last_report(&target, project)
        && pipeline::RunReport::read(&report).is_err()
    {
        problems.push(format!("{report} does not parse"));
    }
    // The next run of the project is green and, purged, leaves nothing
    // (started at once, it waits for the reaper's lock, then takes over).
    let (next, next_out) = clean_run(xtask, root, project);
    if next != Some(0) {
        problems.push(format!("the next run exited {next:?}: {}", tail(&next_out)));
    }
    if let Some(left) = compose::leftovers(project).ok().filter(|l| !l.is_empty()) {
        problems.push(format!("the next run's purge left {left}"));
    }
    for (k, h) in others.into_iter().enumerate() {
        let (c, out) = h.join().expect("a run beside does not panic");
        let p = format!("{project}-b{}", k + 1);
        // An engine restart hits every run on the engine: the one beside
        // fails too, and its next run must take over what it left.
        if c != Some(0) && fault == Fault::EngineRestart {
            let (next, next_out) = clean_run(xtask, root, &p);
            if next != Some(0) {
                problems.push(format!(
                    "{p}'s next run exited {next:?}: {}",
                    tail(&next_out)
                ));
            }
        } else if c != Some(0) {
            problems.push(format!("{p} beside it exited {c:?}: {}", tail(&out)));
        }
        if let Some(left) = compose::leftovers(&p).ok().filter(|l| !l.is_empty()) {
            problems.push(format!("{p} beside it left {left}"));
        }
    }
    let at = match hit_at {
        Some(t) => format!("{phase} +{:.1} s", t.as_secs_f64()),
        None => format!("{phase} never reached"),
    };
    let kept = match (problems.is_empty(), at_once) {
        (true, false) => "promise kept, next run green",
        (true, true) => "the next run, started at once beside the reaper, green",
        (false, _) => "BROKEN",
    };
    let line = format!(
        "{policy}, {mode:?}, {}{}{} at {at}: exit {}; {kept} in {:.0} s{}",
        fault.name(),
        if group && matches!(fault, Fault::Interrupt | Fault::Terminate | Fault::Kill) {
            " (group)"
        } else {
            ""
        },
        if at_once { " (next run at once)" } else { "" },
        code.map_or("by a signal".to_owned(), |c| c.to_string()),
        started.elapsed().as_secs_f64(),
        if problems.is_empty() {
            String::new()
        } else {
            format!(": {}\n  output: {}", problems.join("; "), tail(&output))
        }
    );
    Outcome {
        fault,
        phase,
        line,
        ok: problems.is_empty(),
    }
}

/// Waits up to a minute for the engine to hold what `policy` promises.
fn promise_kept(project: &str, policy: Policy) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match compose::leftovers(project).ok()?.broken_promise(policy) {
            None => return None,
            Some(b) if Instant::now() >= deadline => return Some(b),
            Some(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// The newest run folder's report of `project`, if it wrote one.
fn last_report(target: &Utf8Path, project: &str) -> Option<Utf8PathBuf> {
    let runs = target.join("e2e/runs");
    let mut mine: Vec<Utf8PathBuf> = runs
        .read_dir_utf8()
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.into_path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.ends_with(&format!("-{project}")))
        })
        .collect();
    mine.sort();
    let report = mine.pop()?.join("report.json");
    report.exists().then_some(report)
}

fn tail(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}

/// Runs by fault (rows) and phase (columns): kept/dealt.
fn print_table(outcomes: &[Outcome]) {
    let mut faults: Vec<Fault> = outcomes.iter().map(|o| o.fault).collect();
    faults.sort();
    faults.dedup();
    println!("\nfault soak: promise kept and next run green / runs, by fault and phase");
    println!("  {:<18} {:>8} {:>8} {:>8}", "fault", "build", "up", "test");
    for f in faults {
        let cell = |phase: &str| {
            let of: Vec<&Outcome> = outcomes
                .iter()
                .filter(|o| o.fault == f && o.phase == phase)
                .collect();
            if of.is_empty() {
                "-".to_owned()
            } else {
                format!("{}/{}", of.iter().filter(|o| o.ok).count(), of.len())
            }
        };
        println!(
            "  {:<18} {:>8} {:>8} {:>8}",
            f.name(),
            cell("build"),
            cell("up"),
            cell("test")
        );
    }
    let ok = outcomes.iter().filter(|o| o.ok).count();
    println!("  total: {ok}/{} runs kept every promise", outcomes.len());
}
