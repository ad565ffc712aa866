//! What the pipeline costs over the bare commands it runs, on the demo stack,
//! warm: stage build, compose build, up with wait, nextest, stop.

use xshell::cmd;

use super::{Comparison, Demo, compare, run_docker, run_step, time};

const PROJECT: &str = "bench-overhead";

pub fn run(runs: usize, xtask: &camino::Utf8Path) -> anyhow::Result<Comparison> {
    let sh = crate::shell()?;
    let demo = Demo::new()?;
    let Demo {
        port,
        certs,
        compose_file,
        ca,
        url,
    } = &demo;
    let triple =
        pipeline::stage::host_triple(&crate::project_root()).map_err(anyhow::Error::msg)?;

    let tool =
        || run_step(cmd!(sh, "{xtask} e2e --project {PROJECT}").env("E2E_GATEWAY_PORT", port));
    let bare = || -> anyhow::Result<()> {
        let compose = |args: &[&str]| {
            let all = ["compose", "-f", compose_file.as_str(), "-p", PROJECT]
                .into_iter()
                .chain(args.iter().copied())
                .collect::<Vec<_>>();
            run_docker(
                &all,
                &[
                    ("E2E_GATEWAY_PORT", port),
                    ("E2E_CERTS_DIR", certs.as_str()),
                ],
            )
        };
        run_step(
            cmd!(sh, "cargo build --locked --profile image --target {triple} -p demo-backend -p demo-gateway")
                .env("RUSTFLAGS", "-C target-feature=+crt-static"),
        )?;
        compose(&["build"])?;
        compose(&["up", "-d", "--wait"])?;
        run_step(
            cmd!(sh, "cargo nextest run -p e2e-tests --profile e2e")
                .env("E2E_GATEWAY_URL", url)
                .env("E2E_CA_CERT", ca),
        )?;
        compose(&["stop", "-t", "2"])
    };
    // Warm both: binaries, images, certificates, a stopped stack.
    tool()?;
    bare()?;
    let c = compare(
        "overhead",
        "bare commands",
        runs,
        |_| time(bare),
        |_| time(tool),
    )?;
    demo.remove(PROJECT);
    Ok(c)
}
