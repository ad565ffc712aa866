//! Starting a stack whose services wait for a healthy one, with a realistic
//! healthcheck interval (10 s, as in Docker's Postgres sample): Compose's own
//! `up -d --wait` against the tool's `up` phase, which runs the checks itself
//! and starts the stack level by level. The demo stack, its `interval` raised.
//! On an engine that honours `healthcheck.start_interval` (API 1.44+) a second
//! row gives Compose its own best: `start_interval: 1s` while starting.

use super::{Comparison, compare, run_docker, run_step, time};

const PROJECT: &str = "bench-readiness";

const OVERRIDE: &str = "services:\n  backend:\n    healthcheck:\n      interval: 10s\n  \
                        gateway:\n    healthcheck:\n      interval: 10s\n";

/// Compose's best on a newer engine: checks every second while starting.
const START_INTERVAL: &str = "services:\n  backend:\n    healthcheck:\n      interval: 10s\n      \
                              start_period: 30s\n      start_interval: 1s\n  gateway:\n    healthcheck:\n      \
                              interval: 10s\n      start_period: 30s\n      start_interval: 1s\n";

pub fn run(runs: usize, xtask: &camino::Utf8Path) -> anyhow::Result<Vec<Comparison>> {
    let mut rows = vec![scenario(
        "readiness",
        "compose up --wait",
        OVERRIDE,
        runs,
        xtask,
    )?];
    let honoured = compose::Engine::detect()
        .facts
        .and_then(|f| f.honours_start_interval());
    if honoured == Some(true) {
        rows.push(scenario(
            "start-interval",
            "compose up --wait, start_interval 1s",
            START_INTERVAL,
            runs,
            xtask,
        )?);
    }
    Ok(rows)
}

fn scenario(
    name: &'static str,
    theirs: &'static str,
    health: &str,
    runs: usize,
    xtask: &camino::Utf8Path,
) -> anyhow::Result<Comparison> {
    let sh = crate::shell()?;
    let work = tempfile::Builder::new()
        .prefix("e2e-bench-ready-")
        .tempdir()?;
    let work = camino::Utf8PathBuf::from_path_buf(work.path().to_owned())
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    let root = crate::project_root();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port()
        .to_string();
    std::fs::write(work.join("slow-health.yaml"), health)?;
    let config = std::fs::read_to_string(root.join("docker/e2e.yaml"))?.replace(
        "files: [compose.yaml]",
        &format!("files: [compose.yaml, {work}/slow-health.yaml]"),
    );
    // Paths in the config are relative to its folder: it stays in docker/.
    let config_path = root.join(format!(
        "docker/.bench-readiness-{}.yaml",
        std::process::id()
    ));
    std::fs::write(&config_path, config)?;
    let (_, loaded) = crate::load_config()?;
    let certs = loaded
        .certs_dir()
        .ok_or_else(|| anyhow::anyhow!("docker/e2e.yaml has no certs section"))?;
    let compose_file = root.join("docker/compose.yaml");
    let files = [
        "compose",
        "-f",
        compose_file.as_str(),
        "-f",
        &format!("{work}/slow-health.yaml"),
        "-p",
        PROJECT,
    ];
    let env = [
        ("E2E_GATEWAY_PORT", port.as_str()),
        ("E2E_CERTS_DIR", certs.as_str()),
    ];
    let compose = |args: &[&str]| {
        let all: Vec<&str> = files.iter().copied().chain(args.iter().copied()).collect();
        run_docker(&all, &env)
    };
    let report = work.join("report.json");
    let tool_up = || -> anyhow::Result<f64> {
        run_step(
            xshell::cmd!(
                sh,
                "{xtask} e2e --config {config_path} --project {PROJECT} --teardown keep --report-json {report} -- --no-run"
            )
            .env("E2E_GATEWAY_PORT", &port),
        )?;
        let r = pipeline::RunReport::read(&report).map_err(anyhow::Error::msg)?;
        r.containers
            .map(|u| u.seconds)
            .ok_or_else(|| anyhow::anyhow!("the tool's run has no up phase"))
    };
    let down = || compose(&["down", "--volumes", "--timeout", "0"]);
    // Warm both: binaries, images, certificates.
    let result = (|| {
        tool_up()?;
        down()?;
        compose(&["up", "-d", "--wait"])?;
        down()?;
        compare(
            name,
            theirs,
            runs,
            |_| {
                let t = time(|| compose(&["up", "-d", "--wait"]))?;
                down()?;
                Ok(t)
            },
            |_| {
                let t = tool_up()?;
                down()?;
                Ok(t)
            },
        )
    })();
    let _ = compose(&["down", "--volumes", "--rmi", "local", "--timeout", "0"]);
    let _ = std::fs::remove_file(&config_path);
    result
}
