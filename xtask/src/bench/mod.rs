//! `cargo xtask bench`: our claims measured side by side with the
//! alternatives, in one run: alternating rounds, medians, ratios.
//! - cycle: the naive E2E script against `cargo xtask e2e` on a repository
//!   shaped like the one that motivated this project, in four scenarios;
//! - overhead: the pipeline against the bare commands it runs;
//! - readiness: starting a stack gated on a healthy service (10 s interval),
//!   Compose's `up --wait` against the tool's `up`;
//! - walk: the context walk against `find` and `du`;
//! - kept: a whole run on a kept, unchanged demo stack against the bare
//!   `cargo nextest run` of its tests;
//! - watch: `e2e --watch` from a change to its result, against a whole kept
//!   run or the bare `cargo nextest run`.

mod chart;
mod cycle;
mod kept;
mod overhead;
mod readiness;
mod repo;
mod walk;
mod watch;

use std::time::Instant;

use serde_json::json;

use crate::{Bench, BenchPart};

/// One claim: our samples against theirs, in seconds.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub name: &'static str,
    pub theirs_label: &'static str,
    pub ours: Vec<f64>,
    pub theirs: Vec<f64>,
    /// Per run of ours, each phase's seconds (from the e2e report), when known.
    pub phases: Vec<Vec<(String, f64)>>,
}

impl Comparison {
    pub fn new(name: &'static str, theirs_label: &'static str) -> Comparison {
        Comparison {
            name,
            theirs_label,
            ours: Vec::new(),
            theirs: Vec::new(),
            phases: Vec::new(),
        }
    }

    pub fn ours_s(&self) -> f64 {
        median(&self.ours)
    }

    pub fn theirs_s(&self) -> f64 {
        median(&self.theirs)
    }

    /// The median of each phase over our runs, in pipeline order.
    pub fn phase_medians(&self) -> Vec<(String, f64)> {
        let names: Vec<String> = self
            .phases
            .first()
            .map(|r| r.iter().map(|(n, _)| n.clone()).collect())
            .unwrap_or_default();
        names
            .into_iter()
            .map(|n| {
                let samples: Vec<f64> = self
                    .phases
                    .iter()
                    .filter_map(|r| r.iter().find(|(m, _)| *m == n).map(|(_, t)| *t))
                    .collect();
                let m = median(&samples);
                (n, m)
            })
            .collect()
    }

    /// `build 0.99, up 0.81, test 0.40`: the phase medians, for the report.
    pub fn phase_line(&self) -> String {
        let parts: Vec<String> = self
            .phase_medians()
            .iter()
            .map(|(n, t)| format!("{n} {t:.2}"))
            .collect();
        parts.join(", ")
    }

    /// The phase medians as a JSON object, for bench.json.
    pub fn phase_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.phase_medians()
            .into_iter()
            .map(|(n, t)| (n, json!(t)))
            .collect()
    }

    /// How many times faster ours is: theirs / ours (below 1: slower).
    pub fn speedup(&self) -> f64 {
        self.theirs_s() / self.ours_s()
    }
}

pub fn run(flags: &Bench) -> anyhow::Result<()> {
    let all = flags.only.is_empty();
    let wants = |p: BenchPart| all || flags.only.contains(&p);
    let runs = |quick: usize, full: usize| if flags.quick { quick } else { full };
    let out = crate::target_dir().join("e2e");
    std::fs::create_dir_all(&out)?;
    let machine = machine();
    let mut doc = json!({ "machine": machine, "quick": flags.quick });
    let mut report = String::new();
    // The runs it times build the workspace's tests, which can relink this very
    // binary: time a copy of it, which nothing replaces mid-run.
    let own = tempfile::Builder::new()
        .prefix("e2e-bench-bin-")
        .tempdir()?;
    let xtask = camino::Utf8PathBuf::from_path_buf(own.path().join("xtask"))
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    std::fs::copy(std::env::current_exe()?, &xtask)?;

    if wants(BenchPart::Cycle) {
        let work = tempfile::Builder::new().prefix("e2e-bench-").tempdir()?;
        let work = camino::Utf8PathBuf::from_path_buf(work.path().to_owned())
            .map_err(|p| anyhow::anyhow!("{p:?}"))?;
        let n = runs(2, 5);
        let scenarios = cycle::run(n, &work, &xtask);
        let _ = std::fs::remove_dir_all(&work);
        let scenarios = scenarios?;
        report += &format!(
            "e2e cycle on a repository of ~650 MiB, naive and optimized scripts vs cargo xtask e2e ({n} runs each, medians)\n"
        );
        report += &table(&scenarios, "script", "tool");
        report += "  where the tool's time goes (median seconds per phase):\n";
        for c in scenarios.iter().filter(|c| !c.phases.is_empty()) {
            let parts: Vec<String> = c
                .phase_medians()
                .iter()
                .map(|(n, t)| format!("{n} {t:.1}"))
                .collect();
            report += &format!("    {:<14} {}\n", c.name, parts.join(", "));
        }
        doc["scenarios"] = scenarios
            .iter()
            .map(|c| json!({ "name": c.name, "against": c.theirs_label, "naive_s": c.theirs_s(), "tool_s": c.ours_s(), "speedup": c.speedup(),
                             "runs": c.ours.len(), "naive_runs_s": c.theirs, "tool_runs_s": c.ours, "tool_phase_medians_s": c.phase_json() }))
            .collect();
        // The chart: each scenario once, against the naive script (or Compose).
        let charted: Vec<Comparison> = scenarios
            .iter()
            .filter(|c| c.theirs_label != "optimized script")
            .cloned()
            .collect();
        chart::draw(&charted, &machine, &out.join("bench.svg"))?;
    }
    if wants(BenchPart::Overhead) {
        let n = runs(3, 7);
        let c = overhead::run(n, &xtask)?;
        report +=
            &format!("\npipeline overhead on the demo stack, warm ({n} runs each, medians)\n");
        report += &table(std::slice::from_ref(&c), "bare", "pipeline");
        doc["overhead"] = json!({ "bare_s": c.theirs_s(), "tool_s": c.ours_s(), "overhead": c.ours_s() / c.theirs_s() - 1.0,
                                   "runs": c.ours.len(), "bare_runs_s": c.theirs, "tool_runs_s": c.ours });
    }
    if wants(BenchPart::Readiness) {
        let n = runs(3, 5);
        let rows = readiness::run(n, &xtask)?;
        report += &format!(
            "\nstarting a stack gated on a healthy service, 10 s health interval ({n} runs each, medians)\n"
        );
        report += &table(&rows, "compose", "tool up");
        if let [c, ..] = rows.as_slice() {
            doc["readiness"] = json!({ "compose_s": c.theirs_s(), "tool_up_s": c.ours_s(), "ratio": c.ours_s() / c.theirs_s(),
                                        "runs": c.ours.len(), "compose_runs_s": c.theirs, "tool_up_runs_s": c.ours });
        }
        if let Some(c) = rows.get(1) {
            doc["readiness_start_interval"] = json!({ "compose_s": c.theirs_s(), "tool_up_s": c.ours_s(), "ratio": c.ours_s() / c.theirs_s(),
                                        "runs": c.ours.len(), "compose_runs_s": c.theirs, "tool_up_runs_s": c.ours });
        }
    }
    if wants(BenchPart::Kept) {
        let n = runs(5, 9);
        let c = kept::run(n, &xtask)?;
        report += &format!(
            "\na run on a kept demo stack, nothing changed, against its tests alone ({n} runs each, medians)\n"
        );
        report += &table(std::slice::from_ref(&c), "nextest", "tool");
        report += &format!("  the tool's phases (median seconds): {}\n", c.phase_line());
        doc["kept"] = json!({ "nextest_s": c.theirs_s(), "tool_s": c.ours_s(), "ratio": c.ours_s() / c.theirs_s(),
                               "runs": c.ours.len(), "nextest_runs_s": c.theirs, "tool_runs_s": c.ours,
                               "tool_phase_medians_s": c.phase_json() });
    }
    if wants(BenchPart::Watch) {
        let n = runs(3, 5);
        let rows = watch::run(n, &xtask)?;
        report += &format!(
            "\ne2e --watch on the demo stack, from a change to its result ({n} runs each, medians)\n"
        );
        report += &table(&rows, "without", "watch");
        for (c, what) in rows.iter().zip([
            "a backend change's cycle (synced)",
            "a gateway change's cycle (rebuilt)",
        ]) {
            report += &format!("  {what}, by phase (median seconds): {}\n", c.phase_line());
        }
        doc["watch"] = rows
            .iter()
            .map(|c| json!({ "name": c.name, "baseline": c.theirs_label, "baseline_s": c.theirs_s(), "watch_s": c.ours_s(),
                             "ratio": c.ours_s() / c.theirs_s(), "runs": c.ours.len(), "baseline_runs_s": c.theirs, "watch_runs_s": c.ours,
                             "cycle_phase_medians_s": c.phase_json() }))
            .collect();
    }
    if wants(BenchPart::Walk) {
        let n = runs(5, 11);
        let rows = walk::run(n, &xtask)?;
        report += &format!("\ncontext walk of 100,000 files ({n} runs each, medians)\n");
        report += &table(&rows, "theirs", "ours");
        doc["walk"] = rows
            .iter()
            .map(|c| json!({ "name": c.name, "baseline": c.theirs_label, "baseline_s": c.theirs_s(), "tool_s": c.ours_s(),
                             "speedup": c.speedup(), "runs": c.ours.len() }))
            .collect();
    }
    let json_path = out.join("bench.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&doc)?)?;
    print!("{report}");
    println!("\nmachine: {machine}\nspeedup = theirs / ours (above 1: ours is faster)");
    println!(
        "written: {json_path}{}",
        if wants(BenchPart::Cycle) {
            format!(", {}", out.join("bench.svg"))
        } else {
            String::new()
        }
    );
    Ok(())
}

fn table(rows: &[Comparison], theirs: &str, ours: &str) -> String {
    let mut s = format!(
        "  {:<14} {:>10} {:>10} {:>9}   {}\n",
        "", theirs, ours, "speedup", "against"
    );
    for c in rows {
        s += &format!(
            "  {:<14} {:>8.2} s {:>8.2} s {:>8.2}x   {}\n",
            c.name,
            c.theirs_s(),
            c.ours_s(),
            c.speedup(),
            c.theirs_label
        );
    }
    s
}

/// `runs` rounds of both sides, the first one alternating between rounds so
/// that drift in the machine's state hits both alike. Each side gets the
/// round's number and returns the seconds it timed.
pub fn compare(
    name: &'static str,
    theirs_label: &'static str,
    runs: usize,
    mut theirs: impl FnMut(usize) -> anyhow::Result<f64>,
    mut ours: impl FnMut(usize) -> anyhow::Result<f64>,
) -> anyhow::Result<Comparison> {
    let mut c = Comparison::new(name, theirs_label);
    for round in 0..runs {
        if round.is_multiple_of(2) {
            c.theirs.push(theirs(round)?);
            c.ours.push(ours(round)?);
        } else {
            c.ours.push(ours(round)?);
            c.theirs.push(theirs(round)?);
        }
        let (t, o) = (c.theirs[round], c.ours[round]);
        eprintln!(
            "{name}: round {}/{runs}: {theirs_label} {t:.1} s, ours {o:.1} s",
            round + 1
        );
    }
    Ok(c)
}

/// Times `f`, which must succeed.
pub fn time<T, E: Into<anyhow::Error>>(f: impl FnOnce() -> Result<T, E>) -> anyhow::Result<f64> {
    let start = Instant::now();
    f().map_err(Into::into)?;
    Ok(start.elapsed().as_secs_f64())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Runs one step as a local run would (no `CI`, which would make the tool pick
/// a unique project and purge; no variables of `cargo run`), its output kept
/// and shown only on failure.
pub fn run_step(c: xshell::Cmd<'_>) -> anyhow::Result<()> {
    let c = crate::nested_cargo(c)
        .env_remove("CI")
        .quiet()
        .ignore_status();
    let shown = c.to_string();
    let out = c.output()?;
    if !out.status.success() {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = text.lines().collect();
        anyhow::bail!(
            "`{shown}` failed ({}):\n{}",
            out.status,
            lines[lines.len().saturating_sub(30)..].join("\n")
        );
    }
    Ok(())
}

/// `docker ARGS` with `env`, through the compose crate (the one place that
/// starts docker), failing with the command's last lines.
pub fn run_docker(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let cmd = env
        .iter()
        .fold(compose::docker(args.iter().copied()), |c, (k, v)| {
            c.env(k, v)
        });
    cmd.output(&crate::project_root())?;
    Ok(())
}

/// What a bench part needs to run the demo stack by hand beside the tool: a
/// free host port for the gateway, the certificates, the compose file, and
/// the URL and CA the tests take.
#[derive(Debug)]
pub struct Demo {
    pub port: String,
    pub certs: camino::Utf8PathBuf,
    pub compose_file: camino::Utf8PathBuf,
    pub ca: camino::Utf8PathBuf,
    pub url: String,
}

impl Demo {
    pub fn new() -> anyhow::Result<Demo> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
            .to_string();
        let (_, config) = crate::load_config()?;
        let certs = config
            .certs_dir()
            .ok_or_else(|| anyhow::anyhow!("docker/e2e.yaml has no certs section"))?;
        Ok(Demo {
            compose_file: config.resolve(&config.compose.files[0]),
            ca: certs.join("ca.crt"),
            url: format!("https://127.0.0.1:{port}"),
            certs,
            port,
        })
    }

    /// Removes the project, its volumes and the images named after it.
    pub fn remove(&self, project: &str) {
        remove_demo(&self.compose_file, project, &self.port, &self.certs);
    }
}

/// Removes a demo-stack project a bench part made: containers, volumes and
/// the images named after it, at once.
pub fn remove_demo(
    compose_file: &camino::Utf8Path,
    project: &str,
    port: &str,
    certs: &camino::Utf8Path,
) {
    let _ = run_docker(
        &[
            "compose",
            "-f",
            compose_file.as_str(),
            "-p",
            project,
            "down",
            "--volumes",
            "--rmi",
            "local",
            "--timeout",
            "0",
        ],
        &[
            ("E2E_GATEWAY_PORT", port),
            ("E2E_CERTS_DIR", certs.as_str()),
        ],
    );
}

/// The machine, as a README quotes it.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo").ok().and_then(|t| {
        t.lines().find_map(|l| {
            l.strip_prefix("model name")
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
    });
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_owned())
            })
        });
    let docker = compose::Engine::detect().facts.map(|f| f.summary());
    format!(
        "{cores} cores ({}), {}, {}, {}",
        cpu.unwrap_or_else(|| std::env::consts::ARCH.into()),
        os.unwrap_or_else(|| std::env::consts::OS.into()),
        std::env::consts::ARCH,
        docker.unwrap_or_else(|| "?".into())
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(super::median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(super::median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(super::median(&[]).is_nan());
    }
}
