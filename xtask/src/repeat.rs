//! `cargo xtask repeat`: the demo stack and the shop (tests/fixtures/shop, a
//! workspace that is not this one) run from nothing N times each on the
//! engine that answers, each run purged, to find what fails once in a while.
//! A count, not a timed test: a failure keeps its run folder (bundle, logs,
//! report) under `target/e2e/repeat/`, and tests that failed after `up` said
//! every service was ready are flagged as a readiness suspect.

use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use xshell::cmd;

use crate::Repeat;

/// One run's outcome.
struct Outcome {
    code: Option<i32>,
    seconds: f64,
    /// `phase: message` of a failed run.
    why: Option<String>,
    kept: Option<Utf8PathBuf>,
    /// The tests failed although `up` passed: the stack was said to be ready.
    after_ready: bool,
}

pub fn run(flags: &Repeat) -> anyhow::Result<()> {
    let sh = crate::shell()?;
    let out = crate::target_dir().join("e2e/repeat");
    std::fs::create_dir_all(&out)?;
    let engine = compose::Engine::detect()
        .facts
        .map_or_else(|| "no engine".to_owned(), |f| f.summary());
    eprintln!("repeat on {engine}: {} runs of each stack", flags.runs);
    // The tool as users get it: the cargo-e2e binary, built once.
    cmd!(sh, "cargo build --quiet -p cargo-e2e").run()?;
    let bin = crate::target_dir().join("debug/cargo-e2e");
    let shop = shop_workspace(&sh, &bin)?;
    eprintln!("the shop's workspace: {}", shop.root);
    let mut rows = Vec::new();
    let wanted = |s: &str| flags.stack.is_empty() || flags.stack.iter().any(|w| w == s);
    for stack in ["demo", "shop"].into_iter().filter(|s| wanted(s)) {
        let mut outcomes = Vec::new();
        for i in 1..=flags.runs {
            let project = format!("e2e-repeat-{stack}-{}-{i}", std::process::id());
            let report = out.join(format!("{stack}-{i}.json"));
            let args = [
                "e2e",
                "--teardown",
                "purge",
                "--ephemeral-ports",
                "--project",
                &project,
                "--report-json",
                report.as_str(),
            ];
            let dir = if stack == "demo" {
                crate::project_root()
            } else {
                shop.root.clone()
            };
            let start = Instant::now();
            let inside = sh.push_dir(&dir);
            let status = crate::nested_cargo(cmd!(sh, "{bin} {args...}"))
                .env_remove("CI")
                .quiet()
                .ignore_status()
                .output()?;
            drop(inside);
            let outcome = judge(
                status.status.code(),
                start.elapsed().as_secs_f64(),
                &report,
                &out.join(format!("{stack}-{i}")),
            );
            eprintln!(
                "{stack} {i}/{}: {} in {:.1} s{}",
                flags.runs,
                match outcome.code {
                    Some(0) => "passed".to_owned(),
                    c => format!("FAILED (exit {c:?})"),
                },
                outcome.seconds,
                outcome
                    .why
                    .as_deref()
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default()
            );
            outcomes.push(outcome);
        }
        rows.push((stack, outcomes));
    }
    println!("repeat on {engine}");
    println!(
        "  {:<6} {:>5} {:>7} {:>7} {:>9}  failures",
        "stack", "runs", "passed", "failed", "median s"
    );
    let mut failed = 0;
    for (stack, outcomes) in &rows {
        let passed = outcomes.iter().filter(|o| o.code == Some(0)).count();
        failed += outcomes.len() - passed;
        let mut times: Vec<f64> = outcomes.iter().map(|o| o.seconds).collect();
        times.sort_by(f64::total_cmp);
        let median = times.get(times.len() / 2).copied().unwrap_or(f64::NAN);
        let why: Vec<String> = outcomes
            .iter()
            .filter(|o| o.code != Some(0))
            .map(|o| {
                let suspect = if o.after_ready {
                    " [tests failed after ready: a readiness suspect]"
                } else {
                    ""
                };
                format!(
                    "{}{suspect} ({})",
                    o.why.as_deref().unwrap_or("no report"),
                    o.kept
                        .as_ref()
                        .map_or("nothing kept".into(), |k| k.to_string())
                )
            })
            .collect();
        println!(
            "  {stack:<6} {:>5} {passed:>7} {:>7} {median:>9.1}  {}",
            outcomes.len(),
            outcomes.len() - passed,
            if why.is_empty() {
                "-".to_owned()
            } else {
                why.join("; ")
            }
        );
    }
    let leftovers: Vec<String> = rows
        .iter()
        .flat_map(|(stack, o)| {
            (1..=o.len()).map(move |i| format!("e2e-repeat-{stack}-{}-{i}", std::process::id()))
        })
        .filter(|p| compose::leftovers(p).is_ok_and(|l| !l.is_empty()))
        .collect();
    if !leftovers.is_empty() {
        println!("  left on the engine: {}", leftovers.join(", "));
    }
    if failed > 0 || !leftovers.is_empty() {
        anyhow::bail!("{failed} of {} runs failed", rows.len() * flags.runs);
    }
    Ok(())
}

/// Reads a run's report; a failed run's folder is kept beside the others.
fn judge(code: Option<i32>, seconds: f64, report: &Utf8Path, keep: &Utf8Path) -> Outcome {
    let read = pipeline::RunReport::read(report).ok();
    let mut outcome = Outcome {
        code,
        seconds,
        why: None,
        kept: None,
        after_ready: false,
    };
    let Some(r) = read else {
        outcome.why = (code != Some(0)).then(|| "the run wrote no report".to_owned());
        return outcome;
    };
    if code == Some(0) {
        return outcome;
    }
    let failed = r
        .phases
        .iter()
        .find(|p| p.status == pipeline::report::Status::Failed);
    outcome.why =
        failed.map(|p| format!("{}: {}", format!("{:?}", p.phase).to_lowercase(), p.note));
    outcome.after_ready =
        failed.is_some_and(|p| p.phase == pipeline::report::Phase::Test) && r.containers.is_some();
    let copied = std::fs::create_dir_all(keep).is_ok()
        && duct::cmd!("cp", "-a", r.run_dir.as_str(), keep.as_str())
            .unchecked()
            .run()
            .is_ok_and(|o| o.status.success());
    outcome.kept = copied.then(|| keep.to_owned());
    outcome
}

/// The shop in a temporary workspace of its own, initialised as a user would.
struct ShopWorkspace {
    _tmp: tempfile::TempDir,
    root: Utf8PathBuf,
}

fn shop_workspace(sh: &xshell::Shell, bin: &Utf8Path) -> anyhow::Result<ShopWorkspace> {
    let tmp = tempfile::Builder::new().prefix("e2e-repeat-").tempdir()?;
    let base =
        Utf8PathBuf::from_path_buf(tmp.path().to_owned()).map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let root = base.join("shop");
    let fixture = crate::project_root().join("tests/fixtures/shop");
    cmd!(sh, "cp -a {fixture} {root}").run()?;
    let _ = std::fs::remove_dir_all(root.join("target"));
    let inside = sh.push_dir(&root);
    cmd!(sh, "git init -q").run()?;
    cmd!(sh, "git add .").run()?;
    crate::nested_cargo(cmd!(sh, "{bin} init")).quiet().run()?;
    drop(inside);
    Ok(ShopWorkspace { _tmp: tmp, root })
}
