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
        for step in plan(&sh, flags)? {
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
    let results = execute(plan(&sh, flags)?);
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

/// The Docker-backed tests that touch image IDs: on the containerd image
/// store an image ID is a manifest digest, not a config digest.
pub const IMAGE_ID_TESTS: &str = "binary(/^docker_/) & test(/a_dockerfile_change_builds_again|a_build_arg_change_builds_that_service_again|purge_also_removes_the_images_rebuilds_left_behind|an_unchanged_stack_is_neither_built_nor_started|a_service_config_change_starts_again_without_building|an_image_budget_removes|each_policy_leaves_what_it_promises|a_staged_binary_s_image_follows|each_change_does_what_it_should/)";

/// fmt, clippy, unit and Docker-backed tests (JUnit in target/nextest/ci/),
/// then the e2e run of the demo stack, purged afterwards (JUnit in target/nextest/e2e/).
/// With `--engine-only`, the Docker-backed tests and the e2e run alone.
pub fn plan<'a>(sh: &'a Shell, flags: &crate::Ci) -> anyhow::Result<Vec<Step<'a>>> {
    let xtask = std::env::current_exe()?;
    let pid = std::process::id().to_string();
    let e2e = Step {
        name: "e2e (demo stack, purge)",
        cmd: cmd!(
            sh,
            "{xtask} e2e --teardown purge --project e2e-ci-{pid} --ephemeral-ports"
        ),
        fix: "rerun it with `cargo xtask e2e --keep-on-failure` and read the bundle it names",
    };
    if flags.engine_only {
        let filter = if flags.image_ids {
            IMAGE_ID_TESTS
        } else {
            "binary(/^docker_/)"
        };
        return Ok(vec![
            Step {
                name: "Docker-backed tests",
                cmd: cmd!(
                    sh,
                    "cargo nextest run --workspace --locked --profile ci -E {filter}"
                ),
                fix: "rerun one with `cargo nextest run --profile ci -E 'test(NAME)'` on the same engine (E2E_ENGINE=... bash .ci/engine)",
            },
            e2e,
        ]);
    }
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
            name: "workflow examples (lint)",
            cmd: cmd!(sh, "bash .ci/lint-workflows"),
            fix: "the error names the file and line; `bash .ci/lint-workflows` runs it alone",
        },
        Step {
            name: "tests (unit + Docker-backed)",
            cmd: cmd!(sh, "cargo nextest run --workspace --locked --profile ci"),
            fix: "rerun one with `cargo nextest run --profile ci -E 'test(NAME)'`; the JUnit report is target/nextest/ci/junit.xml",
        },
        Step {
            name: "fault soak (seeded, short)",
            cmd: cmd!(sh, "{xtask} soak --seed 29 --runs 6"),
            fix: "replay it with `cargo xtask soak --seed 29 --runs 6`; each run's line says what it was dealt",
        },
        // Its own project name and host ports the engine picks: a developer's
        // kept stack (`e2e-<checkout>`, on the fixed port) is neither purged
        // nor in the way.
        e2e,
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
        let flags = crate::Ci {
            dry_run: true,
            engine_only: false,
            image_ids: false,
        };
        let steps = plan(&sh, &flags).unwrap();
        let e2e = steps.iter().find(|s| s.name.starts_with("e2e")).unwrap();
        let shown = e2e.cmd.to_string();
        assert!(shown.contains("--project e2e-ci-"), "{shown}");
        assert!(shown.contains("--ephemeral-ports"), "{shown}");
        assert!(shown.contains("--teardown purge"), "{shown}");
    }

    /// Every string of a YAML document.
    fn strings(v: &serde_yaml::Value, out: &mut Vec<String>) {
        match v {
            serde_yaml::Value::String(s) => out.push(s.clone()),
            serde_yaml::Value::Sequence(items) => items.iter().for_each(|i| strings(i, out)),
            serde_yaml::Value::Mapping(m) => m.values().for_each(|i| strings(i, out)),
            _ => {}
        }
    }

    /// The CI examples run commands this very CLI takes: each `cargo xtask`
    /// command of .github/workflows/e2e-shards.yml and .gitlab-ci.yml parses
    /// (the CI variables given a value), and each file has all three roles.
    #[test]
    fn the_ci_examples_run_commands_this_cli_takes() {
        use clap::Parser as _;
        let root = crate::project_root();
        for file in [".github/workflows/e2e-shards.yml", ".gitlab-ci.yml"] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
            let mut all = Vec::new();
            strings(&doc, &mut all);
            let mut roles = Vec::new();
            for s in &all {
                for command in s.split("cargo xtask ").skip(1) {
                    let line = command.lines().next().unwrap_or_default();
                    let line = line
                        .replace("${{ matrix.shard }}", "1")
                        .replace("$CI_NODE_INDEX", "1")
                        .replace("$CI_NODE_TOTAL", "3")
                        .replace('"', "");
                    let args = std::iter::once("cargo-xtask").chain(line.split_whitespace());
                    if let Err(e) = crate::Xtask::try_parse_from(args) {
                        panic!("{file}: `cargo xtask {line}` does not parse:\n{e}");
                    }
                    roles.push(
                        line.split_whitespace()
                            .take(2)
                            .collect::<Vec<_>>()
                            .join(" "),
                    );
                }
            }
            roles.sort();
            assert_eq!(
                roles,
                ["report merge", "shard build", "shard run"],
                "{file}"
            );
        }
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
