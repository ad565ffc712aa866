//! The E2E cycle on the motivating repository, three ways, alternating:
//! - naive: the script teams start from: certificates regenerated, no ignore
//!   rules for artifacts, `up -d --build --wait`, tests, `down -v --remove-orphans`
//!   with Compose's default stop grace (10 s);
//! - optimized: the script a team writes once that hurts: ignore rules,
//!   certificates made once, BuildKit, `up -d --build --wait`, nextest, and
//!   `stop` with the tool's grace (2 s), so the next run starts the same stack;
//! - tool: `cargo xtask e2e` on the same repository, default local teardown.

use camino::{Utf8Path, Utf8PathBuf};
use xshell::cmd;

use super::repo::{self, Flavor};
use super::{Comparison, compare, run_docker, run_step, time};

/// The certificates both scripts make (the naive one every run, the
/// optimized one once), in `$REPO/certs`.
const MAKE_CERTS: &str = r#"rm -rf certs && mkdir certs && cd certs
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 30 -subj /CN=bench-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost 2>/dev/null
echo "subjectAltName=DNS:localhost,IP:127.0.0.1,DNS:gateway,DNS:backend" > san.ext
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 30 \
  -extfile san.ext 2>/dev/null
cd "$REPO""#;

/// The tests, as both scripts run them.
const TESTS: &str = r#"(cd "$WORKSPACE" && E2E_GATEWAY_URL="https://127.0.0.1:$BENCH_PORT" E2E_CA_CERT="$REPO/certs/ca.crt" \
  cargo nextest run -p e2e-tests --profile e2e)"#;

/// The naive cycle, as a script: the commands are the comparison.
fn naive_script() -> String {
    format!(
        r#"#!/usr/bin/env bash
set -euo pipefail
cd "$REPO"
# Certificates regenerated every run, inside the repository.
{MAKE_CERTS}
docker compose -p "$PROJECT" up -d --build --wait
{TESTS}
docker compose -p "$PROJECT" down -v --remove-orphans
"#
    )
}

/// The optimized cycle: what the naive script becomes in careful hands.
fn optimized_script() -> String {
    format!(
        r#"#!/usr/bin/env bash
set -euo pipefail
cd "$REPO"
# Certificates made once, kept between runs.
if [ ! -f certs/server.crt ]; then
{MAKE_CERTS}
fi
DOCKER_BUILDKIT=1 docker compose -p "$PROJECT" up -d --build --wait
{TESTS}
docker compose -p "$PROJECT" stop --timeout 2
"#
    )
}

const NAIVE_PROJECT: &str = "bench-naive";
const OPTIMIZED_PROJECT: &str = "bench-optimized";
const TOOL_PROJECT: &str = "bench-tool";

struct Side {
    repo: Utf8PathBuf,
    port: u16,
}

/// Runs the four scenarios, `runs` rounds each.
pub fn run(runs: usize, work: &Utf8Path, xtask: &Utf8Path) -> anyhow::Result<Vec<Comparison>> {
    let sh = crate::shell()?;
    let binaries = staged_binaries()?;
    let naive = Side {
        repo: work.join("naive"),
        port: free_port()?,
    };
    let tool = Side {
        repo: work.join("tool"),
        port: free_port()?,
    };
    let optimized = Side {
        repo: work.join("optimized"),
        port: free_port()?,
    };
    eprintln!("cycle: generating three copies of the repository under {work}");
    let size = repo::generate(&naive.repo, Flavor::Naive, &binaries, naive.port)?;
    repo::generate(&tool.repo, Flavor::Tool, &binaries, tool.port)?;
    repo::generate(
        &optimized.repo,
        Flavor::Optimized,
        &binaries,
        optimized.port,
    )?;
    eprintln!("cycle: {} per copy", build_context::human(size));
    std::fs::write(work.join("naive.sh"), naive_script())?;
    std::fs::write(work.join("optimized.sh"), optimized_script())?;
    let script_cycle = |script: &str, side: &Side, project: &str| -> anyhow::Result<()> {
        let script = work.join(script);
        let (port, root) = (side.port.to_string(), crate::project_root());
        let c = cmd!(sh, "bash {script}")
            .env("REPO", &side.repo)
            .env("PROJECT", project)
            .env("BENCH_PORT", &port)
            .env("WORKSPACE", root);
        run_step(c)
    };
    let naive_cycle = || script_cycle("naive.sh", &naive, NAIVE_PROJECT);
    // The optimized script's times, taken in the same rounds as the naive
    // script's (both are "theirs" of a round): a row of their own.
    let optimized_times = std::cell::RefCell::new(Vec::new());
    let optimized_cycle = || -> anyhow::Result<()> {
        let t = time(|| script_cycle("optimized.sh", &optimized, OPTIMIZED_PROJECT))?;
        optimized_times.borrow_mut().push(t);
        Ok(())
    };
    let against_optimized = |c: &Comparison, name: &'static str| Comparison {
        name,
        theirs_label: "optimized script",
        ours: c.ours.clone(),
        theirs: optimized_times.borrow_mut().drain(..).collect(),
        phases: Vec::new(),
    };
    let mut optimized_rows = Vec::new();
    let tool_config = tool.repo.join("e2e.yaml");
    let report = work.join("tool-report.json");
    // Each tool run's phase times, read back from its report: where the time goes.
    let phase_log = std::cell::RefCell::new(Vec::new());
    let tool_cycle = |extra: &[&str]| -> anyhow::Result<()> {
        run_step(cmd!(
            sh,
            "{xtask} e2e --config {tool_config} --project {TOOL_PROJECT} --report-json {report} {extra...}"
        ))?;
        let times = pipeline::RunReport::read(&report).map_err(anyhow::Error::msg)?;
        phase_log.borrow_mut().push(times.phase_seconds());
        Ok(())
    };
    // What unit tests would have left since the last run: the tool pays for cleaning it every time.
    let artifacts_back = || repo::write_artifacts(&tool.repo).map(drop);

    // Each scenario keeps the phase times of its tool runs.
    let with_phases = |mut c: Comparison| {
        c.phases = phase_log.borrow_mut().drain(..).collect();
        c
    };
    let mut scenarios = Vec::new();

    let cold = compare(
        "cold",
        "naive script",
        runs,
        |_| {
            forget_everything(&naive.repo, NAIVE_PROJECT)?;
            let t = time(naive_cycle)?;
            forget_everything(&optimized.repo, OPTIMIZED_PROJECT)?;
            let _ = std::fs::remove_dir_all(optimized.repo.join("certs"));
            optimized_cycle()?;
            Ok(t)
        },
        |_| {
            forget_everything(&tool.repo, TOOL_PROJECT)?;
            artifacts_back()?;
            time(|| tool_cycle(&[]))
        },
    )?;
    optimized_rows.push(against_optimized(&cold, "cold"));
    scenarios.push(with_phases(cold));

    let rebuild = compare(
        "warm-rebuild",
        "naive script",
        runs,
        |round| {
            repo::change_a_source(&naive.repo, round + 1)?;
            let t = time(naive_cycle)?;
            repo::change_a_source(&optimized.repo, round + 1)?;
            optimized_cycle()?;
            Ok(t)
        },
        |round| {
            repo::change_a_source(&tool.repo, round + 1)?;
            artifacts_back()?;
            time(|| tool_cycle(&[]))
        },
    )?;
    optimized_rows.push(against_optimized(&rebuild, "warm-rebuild"));
    scenarios.push(with_phases(rebuild));

    let cycle = compare(
        "warm-cycle",
        "naive script",
        runs,
        |_| {
            let t = time(naive_cycle)?;
            optimized_cycle()?;
            Ok(t)
        },
        |_| {
            artifacts_back()?;
            time(|| tool_cycle(&[]))
        },
    )?;
    optimized_rows.push(against_optimized(&cycle, "warm-cycle"));
    scenarios.push(with_phases(cycle));

    // Bringing a stopped stack back to ready: the naive way is its `up`; the
    // tool's is a whole run that keeps the stack and runs no test.
    let naive_dir = &naive.repo;
    let naive_port = naive.port.to_string();
    let naive_up = || {
        compose(
            naive_dir,
            NAIVE_PROJECT,
            &["up", "-d", "--build", "--wait"],
            &naive_port,
        )
    };
    let stop = |project: &str, dir: &Utf8Path| compose(dir, project, &["stop", "-t", "0"], "1");
    naive_up()?;
    stop(NAIVE_PROJECT, &naive.repo)?;
    let restart = compare(
        "restart",
        "compose up --build --wait",
        runs,
        |_| {
            let t = time(naive_up)?;
            stop(NAIVE_PROJECT, &naive.repo)?;
            Ok(t)
        },
        |_| {
            let t = time(|| tool_cycle(&["--teardown", "keep", "--", "--no-run"]))?;
            stop(TOOL_PROJECT, &tool.repo)?;
            Ok(t)
        },
    )?;
    scenarios.push(with_phases(restart));

    for (project, side) in [
        (NAIVE_PROJECT, &naive),
        (TOOL_PROJECT, &tool),
        (OPTIMIZED_PROJECT, &optimized),
    ] {
        let _ = forget_project(&side.repo, project);
    }
    scenarios.extend(optimized_rows);
    Ok(scenarios)
}

/// Nothing cached: the project's containers, volumes and images, BuildKit's
/// whole build cache, and (for the tool) its certificates.
fn forget_everything(repo: &Utf8Path, project: &str) -> anyhow::Result<()> {
    forget_project(repo, project)?;
    run_docker(&["builder", "prune", "--all", "--force"], &[])?;
    let _ = std::fs::remove_dir_all(repo.join(".e2e"));
    Ok(())
}

fn forget_project(repo: &Utf8Path, project: &str) -> anyhow::Result<()> {
    // BENCH_PORT only satisfies interpolation: nothing is published by `down`.
    let down = [
        "down",
        "--volumes",
        "--remove-orphans",
        "--rmi",
        "all",
        "--timeout",
        "0",
    ];
    compose(repo, project, &down, "1")
}

/// `docker compose ARGS` on a bench repository's stack, its port given.
fn compose(repo: &Utf8Path, project: &str, args: &[&str], port: &str) -> anyhow::Result<()> {
    let file = repo.join("compose.yaml");
    let all: Vec<&str> = ["compose", "-f", file.as_str(), "-p", project]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    run_docker(&all, &[("BENCH_PORT", port)])
}

/// The demo binaries, built static as the e2e pipeline stages them.
fn staged_binaries() -> anyhow::Result<Utf8PathBuf> {
    let root = crate::project_root();
    let target = crate::target_dir();
    let stages = [("demo-gateway", "bench-bin"), ("demo-backend", "bench-bin")].map(|(p, to)| {
        (
            pipeline::config::StageConfig {
                package: p.into(),
                to: to.into(),
                profile: "image".into(),
            },
            target.join(to),
        )
    });
    pipeline::stage::stage(&root, &target, &stages, std::sync::Arc::new(|_| {}))?;
    Ok(target.join("bench-bin"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    /// Both scripts are valid bash, and each makes certificates as it says.
    #[test]
    fn the_scripts_parse_and_differ_where_they_should() {
        for script in [super::naive_script(), super::optimized_script()] {
            let out = duct::cmd!("bash", "-n")
                .stdin_bytes(script.as_bytes())
                .stderr_capture()
                .unchecked()
                .run()
                .unwrap();
            assert!(out.status.success(), "{script}\n{out:?}");
            assert!(script.contains("openssl x509 -req"), "{script}");
        }
        assert!(super::naive_script().contains("down -v"));
        assert!(super::optimized_script().contains("if [ ! -f certs/server.crt ]"));
        assert!(super::optimized_script().contains("stop --timeout 2"));
    }
}
