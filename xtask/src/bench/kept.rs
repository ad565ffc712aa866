//! The inner loop on a kept stack: the demo stack left running
//! (`--teardown keep`) and nothing changed, the whole `cargo xtask e2e`
//! against the bare `cargo nextest run` of the same tests against the same
//! running stack. With nothing to build or start, the run should cost little
//! more than the tests themselves.

use xshell::cmd;

use super::{Comparison, Demo, compare, run_step, time};

const PROJECT: &str = "bench-kept";

pub fn run(runs: usize, xtask: &camino::Utf8Path) -> anyhow::Result<Comparison> {
    let sh = crate::shell()?;
    let demo = Demo::new()?;
    let Demo { port, ca, url, .. } = &demo;
    let report = crate::target_dir().join("e2e/bench-kept-report.json");

    let tool = |phases: &mut Vec<Vec<(String, f64)>>| -> anyhow::Result<f64> {
        let t = time(|| {
            run_step(
                cmd!(
                    sh,
                    "{xtask} e2e --project {PROJECT} --teardown keep --report-json {report}"
                )
                .env("E2E_GATEWAY_PORT", port),
            )
        })?;
        let r = pipeline::RunReport::read(&report).map_err(anyhow::Error::msg)?;
        phases.push(r.phase_seconds());
        Ok(t)
    };
    let bare = || {
        run_step(
            cmd!(sh, "cargo nextest run -p e2e-tests --profile e2e")
                .env("E2E_GATEWAY_URL", url)
                .env("E2E_CA_CERT", ca),
        )
    };
    let mut phases = Vec::new();
    let result = (|| {
        // Warm both: the stack up and kept, the test binaries built.
        tool(&mut Vec::new())?;
        bare()?;
        compare(
            "kept-unchanged",
            "bare cargo nextest run",
            runs,
            |_| time(bare),
            |_| tool(&mut phases),
        )
    })();
    demo.remove(PROJECT);
    let _ = std::fs::remove_file(&report);
    let mut c = result?;
    c.phases = phases;
    Ok(c)
}
