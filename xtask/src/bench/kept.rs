//! The inner loop on a kept stack: the demo stack left running
//! (`--teardown keep`) and nothing changed, the whole `cargo xtask e2e`
//! against the bare `cargo nextest run` of the same tests against the same
//! running stack. With nothing to build or start, the run should cost little
//! more than the tests themselves.

use xshell::cmd;

use super::{Comparison, compare, remove_demo, run_step, time};

const PROJECT: &str = "bench-kept";

pub fn run(runs: usize, xtask: &camino::Utf8Path) -> anyhow::Result<Comparison> {
    let sh = crate::shell()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port()
        .to_string();
    let (_, config) = crate::load_config()?;
    let certs = config
        .certs_dir()
        .ok_or_else(|| anyhow::anyhow!("docker/e2e.yaml has no certs section"))?;
    let compose_file = config.resolve(&config.compose.files[0]);
    let ca = certs.join("ca.crt");
    let url = format!("https://127.0.0.1:{port}");
    let report = crate::target_dir().join("e2e/bench-kept-report.json");

    let tool = |phases: &mut Vec<Vec<(String, f64)>>| -> anyhow::Result<f64> {
        let t = time(|| {
            run_step(
                cmd!(
                    sh,
                    "{xtask} e2e --project {PROJECT} --teardown keep --report-json {report}"
                )
                .env("E2E_GATEWAY_PORT", &port),
            )
        })?;
        let r = pipeline::RunReport::read(&report).map_err(anyhow::Error::msg)?;
        phases.push(r.phase_seconds());
        Ok(t)
    };
    let bare = || {
        run_step(
            cmd!(sh, "cargo nextest run -p e2e-tests --profile e2e")
                .env("E2E_GATEWAY_URL", &url)
                .env("E2E_CA_CERT", &ca),
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
    remove_demo(&compose_file, PROJECT, &port, &certs);
    let _ = std::fs::remove_file(&report);
    let mut c = result?;
    c.phases = phases;
    Ok(c)
}
