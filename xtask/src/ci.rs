//! `cargo xtask ci`: every check CI makes, each named and timed, then a summary.

use std::time::{Duration, Instant};

use xshell::cmd;

use crate::exit::Limit;

pub fn run() -> anyhow::Result<()> {
    let sh = crate::shell()?;
    // In CI a skipped Docker-backed test must fail; `E2E_REQUIRE_DOCKER=0` opts out.
    if std::env::var_os(compose::testing::REQUIRE_VAR).is_none() {
        sh.set_var(compose::testing::REQUIRE_VAR, "1");
    }
    let steps: Vec<(&str, xshell::Cmd<'_>)> = vec![
        ("fmt", cmd!(sh, "cargo fmt --all -- --check")),
        (
            "clippy",
            cmd!(
                sh,
                "cargo clippy --workspace --all-targets --locked -- -D warnings"
            ),
        ),
        (
            "tests (unit + Docker-backed)",
            cmd!(sh, "cargo nextest run --workspace --locked --profile ci"),
        ),
    ];
    let mut results: Vec<(&str, bool, Duration)> = Vec::new();
    for (name, command) in steps {
        eprintln!("==> {name}: {command}");
        let start = Instant::now();
        let ok = crate::nested_cargo(command).run().is_ok();
        results.push((name, ok, start.elapsed()));
        eprintln!(
            "==> {name}: {} in {:.1}s",
            if ok { "ok" } else { "FAILED" },
            start.elapsed().as_secs_f64()
        );
    }
    eprintln!("\nci summary");
    for (name, ok, took) in &results {
        eprintln!(
            "  {:<32} {:<6} {:>7.1}s",
            name,
            if *ok { "ok" } else { "FAILED" },
            took.as_secs_f64()
        );
    }
    let failed: Vec<&str> = results.iter().filter(|r| !r.1).map(|r| r.0).collect();
    if failed.is_empty() {
        Ok(())
    } else {
        Err(Limit(format!("ci failed: {}", failed.join(", "))).into())
    }
}
