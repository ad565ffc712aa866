//! `cargo xtask ci`: every check CI makes, each named and timed as it runs,
//! then a summary. Steps are data (bevy's tools/ci): the plan is built first
//! and run second, so the exact command lines show in the log.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use xshell::{Shell, cmd};

use cargo_e2e::exit::Exit;

/// One named check, and what to do when it fails.
pub struct Step<'a> {
    pub name: &'static str,
    pub cmd: xshell::Cmd<'a>,
    pub fix: &'static str,
}

#[derive(Debug)]
pub struct StepResult {
    pub name: &'static str,
    pub ok: bool,
    pub took: Duration,
    pub fix: &'static str,
}

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn run(flags: &crate::Ci) -> anyhow::Result<()> {
    let sh = crate::shell()?;
    if flags.dry_run {
        for step in plan(&sh)? {
            println!("{:<30} {}", step.name, step.cmd);
        }
        return Ok(());
    }
    // In CI a skipped Docker-backed test must fail; `E2E_REQUIRE_DOCKER=0` opts out.
    if std::env::var_os(compose::testing::REQUIRE_VAR).is_none() {
        sh.set_var(compose::testing::REQUIRE_VAR, "1");
    }
    // Ctrl-C reaches the step running now (same process group), which handles
    // it (the e2e step tears down); we only stop starting new steps.
    ctrlc::set_handler(|| INTERRUPTED.store(true, Ordering::SeqCst))?;
    let results = execute(plan(&sh)?);
    eprintln!("\nci summary");
    for r in &results {
        eprintln!(
            "  {:<30} {:<7} {:>7.1} s",
            r.name,
            if r.ok { "ok" } else { "FAILED" },
            r.took.as_secs_f64()
        );
    }
    if INTERRUPTED.load(Ordering::SeqCst) {
        return Err(Exit::interrupted("ci interrupted").into());
    }
    summary(&results)
}

/// fmt, clippy, unit and Docker-backed tests (JUnit in target/nextest/ci/),
/// then the e2e run of the demo stack, purged afterwards (JUnit in target/nextest/e2e/).
pub fn plan(sh: &Shell) -> anyhow::Result<Vec<Step<'_>>> {
    let xtask = std::env::current_exe()?;
    let pid = std::process::id().to_string();
    Ok(vec![
        Step {
            name: "fmt",
            cmd: cmd!(sh, "cargo fmt --all -- --check"),
            fix: "run `cargo fmt --all`",
        },
        Step {
            name: "clippy",
            cmd: cmd!(
                sh,
                "cargo clippy --workspace --all-targets --locked -- -D warnings"
            ),
            fix: "fix the warnings above; `cargo clippy --fix --workspace --all-targets` mends some",
        },
        Step {
            name: "tests (unit + Docker-backed)",
            cmd: cmd!(sh, "cargo nextest run --workspace --locked --profile ci"),
            fix: "rerun one with `cargo nextest run --profile ci -E 'test(NAME)'`; the JUnit report is target/nextest/ci/junit.xml",
        },
        // Its own project name and host ports the engine picks: a developer's
        // kept stack (`e2e-<checkout>`, on the fixed port) is neither purged
        // nor in the way.
        Step {
            name: "e2e (demo stack, purge)",
            cmd: cmd!(
                sh,
                "{xtask} e2e --teardown purge --project e2e-ci-{pid} --ephemeral-ports"
            ),
            fix: "rerun it with `cargo xtask e2e --keep-on-failure` and read the bundle it names",
        },
    ])
}

/// Runs every step, even after one failed (a CI log should show all that is
/// wrong at once), unless interrupted.
pub fn execute(steps: Vec<Step<'_>>) -> Vec<StepResult> {
    let mut results = Vec::new();
    for step in steps {
        if INTERRUPTED.load(Ordering::SeqCst) {
            break;
        }
        eprintln!("==> {}: {}", step.name, step.cmd);
        let start = Instant::now();
        let ok = crate::nested_cargo(step.cmd).run().is_ok();
        let took = start.elapsed();
        eprintln!(
            "==> {}: {} in {:.1} s",
            step.name,
            if ok { "ok" } else { "FAILED" },
            took.as_secs_f64()
        );
        results.push(StepResult {
            name: step.name,
            ok,
            took,
            fix: step.fix,
        });
    }
    results
}

fn summary(results: &[StepResult]) -> anyhow::Result<()> {
    for r in results.iter().filter(|r| !r.ok) {
        eprintln!("  {} failed: {}", r.name, r.fix);
    }
    let failed: Vec<&str> = results.iter().filter(|r| !r.ok).map(|r| r.name).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Exit::failed(format!("ci failed: {}", failed.join(", "))).into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The e2e step can run beside a developer's kept stack: its own project,
    /// and host ports the engine picks instead of the stack's fixed one.
    #[test]
    fn the_e2e_step_leaves_a_kept_stack_alone() {
        let sh = Shell::new().unwrap();
        let steps = plan(&sh).unwrap();
        let e2e = steps.iter().find(|s| s.name.starts_with("e2e")).unwrap();
        let shown = e2e.cmd.to_string();
        assert!(shown.contains("--project e2e-ci-"), "{shown}");
        assert!(shown.contains("--ephemeral-ports"), "{shown}");
        assert!(shown.contains("--teardown purge"), "{shown}");
    }

    /// A real failing check (rustfmt on badly formatted code) fails the run,
    /// names the step, and does not stop the steps after it.
    #[test]
    fn a_failing_step_fails_ci_and_the_rest_still_run() {
        let tmp = tempfile::tempdir().unwrap();
        let sh = Shell::new().unwrap();
        sh.change_dir(tmp.path());
        sh.write_file(
            "Cargo.toml",
            "[package]\nname = \"scratch\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
        )
        .unwrap();
        sh.write_file("src/main.rs", "fn main( ) {println!(\"hi\") ;}\n")
            .unwrap();
        let steps = vec![
            Step {
                name: "fmt",
                cmd: cmd!(sh, "cargo fmt -- --check").quiet(),
                fix: "run `cargo fmt --all`",
            },
            Step {
                name: "metadata",
                cmd: cmd!(sh, "cargo metadata --format-version 1 --no-deps")
                    .quiet()
                    .ignore_stdout(),
                fix: "",
            },
        ];
        let results = execute(steps);
        let seen: Vec<(&str, bool)> = results.iter().map(|r| (r.name, r.ok)).collect();
        assert_eq!(seen, [("fmt", false), ("metadata", true)]);
        let err = summary(&results).unwrap_err();
        assert_eq!(err.to_string(), "ci failed: fmt");
        assert_eq!(
            err.downcast_ref::<Exit>().map(|e| e.code),
            Some(cargo_e2e::exit::FAILED)
        );
    }
}
