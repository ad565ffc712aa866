//! `cargo xtask e2e` against the real engine: each teardown policy leaves what
//! it promises, a running stack is reused, Ctrl-C while starting and while
//! testing leaves nothing, failing services fail fast with a bundle, and two
//! projects run side by side. Each test has its own project and host port.
//! Long because it is one test binary for the demo stack's tests, which share
//! `Run`: each binary more is one more link of the whole tool.

mod support;

use support::free_port;

use camino::{Utf8Path, Utf8PathBuf};
use compose::{Leftovers, Policy};

const BIN: &str = env!("CARGO_BIN_EXE_cargo-e2e");

fn root() -> Utf8PathBuf {
    Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize_utf8()
        .unwrap()
}

/// Removes the project whatever the test's outcome, so one failure does not leak into the next run.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let args = [
            "compose",
            "-p",
            &self.0,
            "down",
            "--volumes",
            "--remove-orphans",
            "--timeout",
            "0",
        ];
        let _ = compose::docker(args).output(&root());
        // Without the compose files `--rmi` cannot find the images: remove them by label.
        let images = compose::leftovers(&self.0)
            .map(|l| l.images)
            .unwrap_or_default();
        if !images.is_empty() {
            let _ = compose::docker(
                ["image", "rm", "--force"]
                    .into_iter()
                    .map(String::from)
                    .chain(images),
            )
            .output(&root());
        }
    }
}

/// One e2e run: the project, its port, and an optional config of its own.
struct Run {
    project: String,
    port: u16,
    config: Option<Utf8PathBuf>,
    env: Vec<(String, String)>,
    _tmp: tempfile::TempDir,
    report: Utf8PathBuf,
}

struct Finished {
    code: Option<i32>,
    output: String,
    report: serde_json::Value,
}

impl Finished {
    /// The report says `phase` ended `status`.
    fn assert_phase(&self, phase: &str, status: &str) {
        let got = phase_status(&self.report, phase);
        assert_eq!(got.as_deref(), Some(status), "{phase}: {}", self.report);
    }
}

impl Run {
    /// The run of this test (project `t<pid>-<name>`), or `None` when no
    /// engine answers (the skip said why; under CI it fails instead).
    fn ready(name: &str) -> Option<(Run, Cleanup)> {
        compose::testing::engine_or_skip(&compose::testing::this_test())?;
        Some(Run::new(name))
    }

    fn new(name: &str) -> (Run, Cleanup) {
        let tmp = tempfile::tempdir().unwrap();
        let report = Utf8PathBuf::from_path_buf(tmp.path().join("report.json")).unwrap();
        let project = format!("t{}-{name}", std::process::id());
        let cleanup = Cleanup(project.clone());
        (
            Run {
                project,
                port: free_port(),
                config: None,
                env: Vec::new(),
                _tmp: tmp,
                report,
            },
            cleanup,
        )
    }

    /// A config like docker/e2e.yaml with an override compose file added.
    fn with_override(self, override_yaml: &str, readiness_s: u64) -> Run {
        let dir = self.dir();
        std::fs::write(dir.join("override.yaml"), override_yaml).unwrap();
        let extra = format!("readiness:\n  timeout_s: {readiness_s}\nteardown:\n  grace_s: 1\n");
        self.with_config(&[dir.join("override.yaml")], &root().join(".e2e"), &extra)
    }

    /// A config for the demo stack with more compose files, certificates under
    /// `certs_root` (certs/ and ca/), and `extra` keys.
    fn with_config(
        mut self,
        more_files: &[Utf8PathBuf],
        certs_root: &Utf8Path,
        extra: &str,
    ) -> Run {
        let r = root();
        let files: Vec<String> = std::iter::once(r.join("docker/compose.yaml"))
            .chain(more_files.iter().cloned())
            .map(|f| f.to_string())
            .collect();
        let config = format!(
            "compose:\n  files: [{}]\n\
             certs:\n  dir: {certs_root}/certs\n  ca_key_dir: {certs_root}/ca\n\
             stage:\n  - {{ package: demo-backend, to: {r}/docker/backend/bin, profile: image }}\n  - {{ package: demo-gateway, to: {r}/docker/gateway/bin, profile: image }}\n\
             tests:\n  packages: [e2e-tests]\n  env:\n    E2E_GATEWAY_URL: \"https://{{gateway:8443}}\"\n{extra}",
            files.join(", ")
        );
        let path = self.dir().join("e2e.yaml");
        std::fs::write(&path, config).unwrap();
        self.config = Some(path);
        self
    }

    /// The run's own temporary folder.
    fn dir(&self) -> Utf8PathBuf {
        Utf8Path::from_path(self._tmp.path()).unwrap().to_owned()
    }

    fn expression(&self, extra: &[&str]) -> duct::Expression {
        let mut args: Vec<String> = vec!["e2e".into()];
        if !extra.contains(&"--project") {
            args.extend(["--project".into(), self.project.clone()]);
        }
        args.extend(["--report-json".into(), self.report.to_string()]);
        if let Some(c) = &self.config {
            args.extend(["--config".into(), c.to_string()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut e = duct::cmd(BIN, args)
            .dir(root())
            .env("E2E_GATEWAY_PORT", self.port.to_string())
            .stdin_null()
            .stderr_to_stdout()
            .unchecked();
        for (k, v) in &self.env {
            e = e.env(k, v);
        }
        e
    }

    fn run(&self, extra: &[&str]) -> Finished {
        let out = self.expression(extra).stdout_capture().run().unwrap();
        self.finished(
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Starts the run in its own process group (as a terminal runs a job),
    /// sends SIGINT to that group once a line containing `when` appears, as a
    /// terminal's Ctrl-C does, and waits for the end.
    fn interrupt_when(&self, extra: &[&str], when: &str) -> Finished {
        self.interrupt_each(extra, &[when])
    }

    /// Like `interrupt_when`, one SIGINT per trigger, in order.
    fn interrupt_each(&self, extra: &[&str], triggers: &[&str]) -> Finished {
        self.signal_each(extra, triggers, nix::sys::signal::Signal::SIGINT)
    }

    fn signal_each(
        &self,
        extra: &[&str],
        triggers: &[&str],
        signal: nix::sys::signal::Signal,
    ) -> Finished {
        let mut pending = triggers.iter().peekable();
        let (code, output) = support::watch(self.expression(extra), |line| {
            pending.next_if(|when| line.contains(*when)).map(|_| signal)
        });
        assert!(
            pending.peek().is_none(),
            "never saw {:?}:\n{output}",
            pending.collect::<Vec<_>>()
        );
        self.finished(code, output)
    }

    fn finished(&self, code: Option<i32>, output: String) -> Finished {
        let report = std::fs::read_to_string(&self.report)
            .map(|t| serde_json::from_str(&t).unwrap())
            .unwrap_or(serde_json::Value::Null);
        Finished {
            code,
            output,
            report,
        }
    }

    /// `purge`'s promise: nothing of the project.
    fn assert_gone(&self, output: &str) {
        let left = self.leftovers();
        assert!(left.is_empty(), "{left:?}\n{output}");
    }

    /// `down`'s promise: no container, no network of the project.
    fn assert_down(&self, output: &str) {
        let left = self.leftovers();
        assert!(
            left.containers.is_empty() && left.networks.is_empty(),
            "{left:?}\n{output}"
        );
    }

    fn leftovers(&self) -> Leftovers {
        compose::leftovers(&self.project).unwrap()
    }
}

/// The status the report gives a phase, if the phase ran.
fn phase_status(report: &serde_json::Value, phase: &str) -> Option<String> {
    let phases = report["phases"].as_array()?;
    let p = phases.iter().find(|p| p["phase"] == phase)?;
    p["status"].as_str().map(str::to_owned)
}

fn states(left: &Leftovers) -> Vec<String> {
    left.containers.iter().map(|c| c.state.clone()).collect()
}

#[test]
fn each_policy_leaves_what_it_promises_and_a_running_stack_is_reused() {
    let Some((run, _cleanup)) = Run::ready("policies") else {
        return;
    };

    let r = run.run(&["--teardown", "keep"]);
    assert_eq!(r.code, Some(0), "{}", r.output);
    let left = run.leftovers();
    assert_eq!(states(&left), ["running", "running"], "keep: {left:?}");
    assert_eq!(
        (left.networks.len(), left.volumes.len()),
        (1, 1),
        "keep: {left:?}"
    );
    assert_eq!(r.report["tests"]["failed"], 0);
    assert_eq!(r.report["tests"]["passed"], r.report["tests"]["run"]);
    check_report(&r.report);

    // The stack kept running is reused as it is: no container made or started.
    let r = run.run(&["--teardown", "stop"]);
    assert_eq!(r.code, Some(0), "{}", r.output);
    assert_eq!(r.report["containers"]["reused"], 2, "{}", r.report);
    assert_eq!(r.report["containers"]["created"], 0, "{}", r.report);
    // Nothing changed since the last run, so BuildKit's cache gives the same images.
    let built: Vec<&serde_json::Value> = r.report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| &i["built"])
        .collect();
    assert_eq!(built, [false, false], "{}", r.report);
    let left = run.leftovers();
    assert_eq!(states(&left), ["exited", "exited"], "stop: {left:?}");
    assert_eq!(
        (left.networks.len(), left.volumes.len()),
        (1, 1),
        "stop: {left:?}"
    );

    // Stopped containers are started again, not made anew.
    let r = run.run(&["--teardown", "down"]);
    assert_eq!(r.code, Some(0), "{}", r.output);
    assert_eq!(r.report["containers"]["started"], 2, "{}", r.report);
    let left = run.leftovers();
    assert!(
        left.containers.is_empty() && left.networks.is_empty(),
        "down: {left:?}"
    );
    assert_eq!(left.volumes.len(), 1, "down keeps volumes: {left:?}");

    let r = run.run(&["--teardown", "purge"]);
    assert_eq!(r.code, Some(0), "{}", r.output);
    assert_eq!(r.report["containers"]["created"], 2, "{}", r.report);
    assert!(run.leftovers().is_empty(), "purge: {:?}", run.leftovers());
    assert_eq!(run.leftovers().broken_promise(Policy::Purge), None);
}

/// The report of a passing run holds every fact the table shows.
fn check_report(report: &serde_json::Value) {
    let phases: Vec<(&str, &str)> = report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["phase"].as_str().unwrap(), p["status"].as_str().unwrap()))
        .collect();
    let ok = |p| (p, "ok");
    let want = [
        "preflight",
        "clean",
        "certs",
        "build",
        "up",
        "test",
        "teardown",
    ]
    .map(ok);
    assert_eq!(phases, want, "{report}");
    assert_eq!(report["verdict"]["kind"], "passed");
    let contexts: Vec<&str> = report["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["service"].as_str().unwrap())
        .collect();
    assert_eq!(contexts, ["backend", "gateway"], "{report}");
    assert!(
        ["reused", "generated", "renewed"].contains(&report["certs"]["action"].as_str().unwrap()),
        "{report}"
    );
    let images: Vec<&str> = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["service"].as_str().unwrap())
        .collect();
    assert_eq!(images, ["backend", "gateway"], "{report}");
    assert!(report["tests"]["run"].as_u64().unwrap() >= 6, "{report}");
    assert!(
        Utf8Path::new(report["junit"].as_str().unwrap()).exists(),
        "{report}"
    );
    assert!(report["seconds"].as_f64().unwrap() > 0.0);
}

#[test]
fn ctrl_c_while_the_stack_starts_leaves_nothing_with_down() {
    let Some((run, _cleanup)) = Run::ready("int-up") else {
        return;
    };
    // Signalled mid-start: the backend runs, the gateway is being started.
    let r = run.interrupt_when(&["--teardown", "down"], "waiting for gateway");
    r.assert_phase("up", "interrupted");
    assert_eq!(r.code, Some(130), "{}", r.output);
    assert_eq!(r.report["verdict"]["kind"], "interrupted", "{}", r.report);
    assert!(
        r.output
            .contains("interrupted: stopping, then teardown (down)"),
        "{}",
        r.output
    );
    run.assert_down(&r.output);
}

#[test]
fn ctrl_c_while_tests_run_leaves_nothing_with_down() {
    let Some((mut run, _cleanup)) = Run::ready("int-test") else {
        return;
    };
    // The slow test stays open a minute, long enough to be interrupted.
    run.env.push(("E2E_SLOW_MS".into(), "60000".into()));
    let r = run.interrupt_when(&["--teardown", "down"], "Starting ");
    assert_eq!(r.code, Some(130), "{}", r.output);
    r.assert_phase("test", "interrupted");
    run.assert_down(&r.output);
}

#[test]
fn sigterm_from_a_ci_runner_tears_down_like_ctrl_c() {
    let Some((mut run, _cleanup)) = Run::ready("term") else {
        return;
    };
    run.env.push(("E2E_SLOW_MS".into(), "60000".into()));
    let r = run.signal_each(
        &["--teardown", "purge"],
        &["Starting "],
        nix::sys::signal::Signal::SIGTERM,
    );
    assert_eq!(r.code, Some(130), "{}", r.output);
    run.assert_gone(&r.output);
}

#[test]
fn a_taken_port_is_named_with_its_holder_before_anything_starts() {
    let Some((mut run, _cleanup)) = Run::ready("port") else {
        return;
    };
    let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    run.port = holder.local_addr().unwrap().port();
    let r = run.run(&[]);
    assert_eq!(r.code, Some(3), "{}", r.output);
    let want = format!(
        "host port {} (published by service gateway) is taken by a process outside Docker",
        run.port
    );
    assert!(r.output.contains(&want), "{}", r.output);
    let phases: Vec<&str> = r.report["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["preflight"],
        "nothing runs after a failed preflight"
    );
    assert!(run.leftovers().is_empty());
}

#[test]
fn a_second_ctrl_c_leaves_the_teardown_to_the_reaper() {
    let Some((mut run, _cleanup)) = Run::ready("int-twice") else {
        return;
    };
    run.env.push(("E2E_SLOW_MS".into(), "60000".into()));
    let teardown_starts = format!("{:<10} started", "teardown");
    let r = run.interrupt_each(&["--teardown", "purge"], &["Starting ", &teardown_starts]);
    assert_eq!(r.code, Some(130), "{}", r.output);
    let said = format!(
        "which applies purge to project {} in the background",
        run.project
    );
    assert!(
        r.output.contains("teardown left to the reaper (pid"),
        "{}",
        r.output
    );
    assert!(r.output.contains(&said), "{}", r.output);
    // The run exited at once; the reaper finishes the purge.
    let mut left = run.leftovers();
    for _ in 0..120 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
        left = run.leftovers();
    }
    assert!(left.is_empty(), "{left}");
}

#[test]
fn a_service_that_exits_fails_fast_with_a_bundle() {
    let Some((run, _cleanup)) = Run::ready("exit1") else {
        return;
    };
    let override_yaml =
        "services:\n  backend:\n    environment:\n      BACKEND_FAIL_AT_START: \"1\"\n";
    // A readiness timeout far away: only failing fast gives a ServiceFailed error.
    let run = run.with_override(override_yaml, 600);
    let r = run.run(&["--teardown", "purge"]);
    assert_eq!(r.code, Some(3), "{}", r.output);
    let verdict = r.report["verdict"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        verdict.contains("service backend failed") && verdict.contains("exited with code 1"),
        "{verdict}"
    );
    assert!(
        verdict.contains("BACKEND_FAIL_AT_START is set"),
        "the error shows the last log lines: {verdict}"
    );
    let bundle = Utf8PathBuf::from(r.report["bundle"].as_str().expect("a bundle"));
    let logs = std::fs::read_to_string(bundle.join("logs.txt")).unwrap();
    assert!(logs.contains("BACKEND_FAIL_AT_START is set"), "{logs}");
    assert!(
        std::fs::read_to_string(bundle.join("ps.txt"))
            .unwrap()
            .contains("backend")
    );
    run.assert_gone("purge after failure");
}

#[test]
fn a_service_that_never_gets_healthy_fails_fast_with_its_health_log() {
    let Some((run, _cleanup)) = Run::ready("unhealthy") else {
        return;
    };
    // The probe asks a port nothing listens on: unhealthy after two tries.
    let override_yaml = "services:\n  backend:\n    healthcheck:\n      test: [\"CMD\", \"/demo-backend\", \"probe\", \"http://127.0.0.1:9/health\"]\n      retries: 2\n";
    let run = run.with_override(override_yaml, 600);
    let r = run.run(&["--teardown", "down"]);
    assert_eq!(r.code, Some(3), "{}", r.output);
    let verdict = r.report["verdict"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        verdict.contains("service backend failed") && verdict.contains("is unhealthy"),
        "{verdict}"
    );
    assert!(verdict.contains("last health check (exit 1)"), "{verdict}");
    let bundle = Utf8PathBuf::from(r.report["bundle"].as_str().expect("a bundle"));
    let states: Vec<String> = std::fs::read_dir(&bundle)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("state-"))
        .collect();
    let backend = states
        .iter()
        .find(|n| n.contains("backend"))
        .expect("the backend's state");
    let state = std::fs::read_to_string(bundle.join(backend)).unwrap();
    assert!(state.contains("\"Status\":\"unhealthy\""), "{state}");
    let left = run.leftovers();
    assert!(
        left.containers.is_empty() && left.networks.is_empty(),
        "{left:?}"
    );
}

#[test]
fn keep_on_failure_leaves_the_failed_stack_and_says_how_to_remove_it() {
    let Some((run, _cleanup)) = Run::ready("keepfail") else {
        return;
    };
    let run = run.with_override(
        "services:\n  backend:\n    environment:\n      BACKEND_FAIL_AT_START: \"1\"\n",
        600,
    );
    let r = run.run(&["--teardown", "purge", "--keep-on-failure"]);
    assert_eq!(r.code, Some(3), "{}", r.output);
    assert_eq!(r.report["teardown"]["policy"], "keep");
    let remove = format!(
        "docker compose -p {} down --volumes --remove-orphans",
        run.project
    );
    assert!(r.output.contains(&remove), "{}", r.output);
    assert!(
        !run.leftovers().containers.is_empty(),
        "the failed stack is kept"
    );
}

#[test]
fn two_projects_run_side_by_side() {
    if compose::testing::engine_or_skip("two_projects_run_side_by_side").is_none() {
        return;
    }
    let (a, _ca) = Run::new("side-a");
    let (b, _cb) = Run::new("side-b");
    let (ra, rb) = std::thread::scope(|s| {
        let ta = s.spawn(|| a.run(&["--teardown", "keep"]));
        let tb = s.spawn(|| b.run(&["--teardown", "keep"]));
        (ta.join().unwrap(), tb.join().unwrap())
    });
    assert_eq!(ra.code, Some(0), "{}", ra.output);
    assert_eq!(rb.code, Some(0), "{}", rb.output);
    // Each project holds its own containers, and purging one leaves the other running.
    let rb2 = b.run(&["--teardown", "purge", "--no-build"]);
    assert_eq!(rb2.code, Some(0), "{}", rb2.output);
    assert!(b.leftovers().is_empty());
    assert_eq!(states(&a.leftovers()), ["running", "running"]);
}

#[test]
fn bad_input_exits_2_names_the_problem_and_creates_nothing() {
    if compose::testing::engine_or_skip("bad_input_exits_2").is_none() {
        return;
    }
    let r = root();
    let good = format!(
        "compose:\n  files: [{r}/docker/compose.yaml]\ncerts:\n  dir: {r}/.e2e/certs\n  ca_key_dir: {r}/.e2e/ca\n"
    );
    // (flags, config text, pieces the message must hold)
    let table: Vec<(Vec<&str>, Option<String>, Vec<&str>)> = vec![
        (
            vec!["-E", "package(e2e-testz)"],
            None,
            vec![
                "-E: invalid filterset `package(e2e-testz)`",
                "didn't match any packages",
            ],
        ),
        (
            vec!["-E", "test(/[/)"],
            None,
            vec!["invalid filterset", "invalid regex"],
        ),
        (
            vec![],
            Some(format!("{good}tests:\n  filterset: \"group(nope)\"\n")),
            vec![
                "e2e.yaml: tests.filterset: invalid filterset `group(nope)`",
                "didn't match any test groups",
            ],
        ),
        (
            vec![],
            Some("teardown:\n  polcy: stop\n".into()),
            vec!["e2e.yaml:2", "unknown field `polcy`", "expected `policy`"],
        ),
        (
            vec![],
            Some("readiness:\n  timeout_s: soon\n".into()),
            vec!["e2e.yaml:2", "readiness.timeout_s: invalid type"],
        ),
        (
            vec![],
            Some(format!("{good}teardown:\n  policy: nuke\n")),
            vec![
                "e2e.yaml:7: teardown.policy: unknown variant `nuke`, expected one of `keep`, `stop`, `down`, `purge`",
            ],
        ),
        (
            vec![],
            Some(format!("compose:\n  files: [{r}/docker/nowhere.yaml]\n")),
            // Compose's own error first, naming the file.
            vec!["nowhere.yaml: open ", "no such file or directory"],
        ),
        (
            vec![],
            Some(format!(
                "{good}tests:\n  env:\n    URL: \"https://{{gateway:9999}}\"\n"
            )),
            vec![
                "e2e.yaml: tests.env `https://{gateway:9999}`: service gateway publishes no port 9999",
            ],
        ),
        (
            vec!["--teardown", "nuke"],
            None,
            vec![
                "invalid value 'nuke' for '--teardown <POLICY>'",
                "[possible values: keep, stop, down, purge]",
            ],
        ),
        (
            vec!["--project", "Bad Name"],
            None,
            vec![
                "invalid value 'Bad Name' for '--project <NAME>'",
                "lowercase letters",
            ],
        ),
        (
            vec!["--config", "/nonexistent/e2e.yaml"],
            None,
            vec!["cannot read config /nonexistent/e2e.yaml", "--config"],
        ),
    ];
    for (i, (flags, config, pieces)) in table.into_iter().enumerate() {
        let (mut run, _cleanup) = Run::new(&format!("bad{i}"));
        if let Some(text) = config {
            let path = Utf8Path::from_path(run._tmp.path())
                .unwrap()
                .join("e2e.yaml");
            std::fs::write(&path, text).unwrap();
            run.config = Some(path);
        }
        let out = run.run(&flags);
        assert_eq!(out.code, Some(2), "{flags:?}: {}", out.output);
        for piece in pieces {
            assert!(
                out.output.contains(piece),
                "{flags:?}: wanted {piece:?} in\n{}",
                out.output
            );
        }
        let left = run.leftovers();
        assert!(left.is_empty(), "{flags:?} left {left:?}");
    }
}

#[test]
fn doctor_reports_the_engine_compose_and_nextest() {
    let Some(engine) = compose::testing::engine_or_skip("doctor_reports_the_engine") else {
        return;
    };
    let out = duct::cmd(BIN, ["doctor"])
        .dir(root())
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let facts = engine.facts.unwrap();
    assert!(
        stdout.contains(&format!(
            "docker engine    {} {} (",
            facts.product, facts.version
        )),
        "{stdout}"
    );
    // The engine's own API version, and what it means for start_interval.
    let api = facts.api.clone().unwrap();
    let start_interval = if facts.honours_start_interval() == Some(true) {
        "healthcheck.start_interval is honoured"
    } else {
        "refuses healthcheck.start_interval"
    };
    assert!(
        stdout.contains(&format!("engine API       {api}: {start_interval}")),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("image store      {}: ", facts.image_store)),
        "{stdout}"
    );
    assert!(stdout.contains("rootless         no"), "{stdout}");
    assert!(
        stdout.contains("compose          docker compose 2."),
        "{stdout}"
    );
    let builder = match engine.builder.unwrap() {
        compose::versions::Builder::Embedded => "builder          Compose's own BuildKit client",
        compose::versions::Builder::Bake { .. } => "builder          buildx bake, buildx 0.",
        compose::versions::Builder::Classic => "builder          the engine's classic /build API",
    };
    assert!(stdout.contains(builder), "{stdout}");
    assert!(
        stdout.contains("nextest          cargo-nextest 0.9."),
        "{stdout}"
    );
    assert!(stdout.contains("port             "), "{stdout}");
}

#[test]
fn a_closed_output_pipe_still_tears_down() {
    let Some((run, _cleanup)) = Run::ready("pipe") else {
        return;
    };
    // `| grep -m 1` closes our stdout and stderr once the stack is up, as a
    // user's `| head` does; a shell is the only way to reproduce it faithfully.
    let line = format!(
        "E2E_GATEWAY_PORT={} {BIN} e2e --project {} --teardown purge 2>&1 | grep -m 1 'up.*ok in'",
        run.port, run.project
    );
    let out = duct::cmd("bash", ["-c", &line])
        .dir(root())
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    // The shell waited for the whole pipeline, so the run has ended.
    assert!(run.leftovers().is_empty(), "{:?}", run.leftovers());
}

#[test]
fn a_context_over_budget_fails_before_the_build_with_exit_1() {
    let Some((run, _cleanup)) = Run::ready("budget") else {
        return;
    };
    let run = run.with_config(&[], &root().join(".e2e"), "context:\n  budget: 1KB\n");
    let out = run.run(&[]);
    assert_eq!(out.code, Some(1), "{}", out.output);
    assert!(
        out.output
            .contains("over the budget of 1000 B; biggest: bin/ ("),
        "{}",
        out.output
    );
    assert_eq!(
        out.report["verdict"]["kind"], "over-budget",
        "{}",
        out.report
    );
    assert_eq!(
        phase_status(&out.report, "build").as_deref(),
        Some("failed"),
        "{}",
        out.report
    );
    assert!(
        run.leftovers().is_empty(),
        "nothing was built or started: {:?}",
        run.leftovers()
    );
}

#[test]
fn a_first_ctrl_c_during_teardown_lets_it_finish() {
    let Some((run, _cleanup)) = Run::ready("int-teardown") else {
        return;
    };
    let r = run.interrupt_when(
        &["--teardown", "purge"],
        &format!("{:<10} started", "teardown"),
    );
    let teardown = r.report["teardown"]["note"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(!teardown.contains("FAILED"), "{teardown}\n{}", r.output);
    run.assert_gone(&r.output);
}

#[test]
fn failing_tests_exit_1_with_their_counts_and_a_bundle() {
    let Some((mut run, _cleanup)) = Run::ready("testfail") else {
        return;
    };
    // The gateway gives up on the backend after 10 s: an 11 s answer is a 502,
    // and the slow-answer test fails for real.
    run.env.push(("E2E_SLOW_MS".into(), "11000".into()));
    // As GitHub Actions runs it: folds, annotations, the summary page.
    let summary = tempfile::NamedTempFile::new().unwrap();
    run.env.push(("GITHUB_ACTIONS".into(), "true".into()));
    run.env.push((
        "GITHUB_STEP_SUMMARY".into(),
        summary.path().to_str().unwrap().into(),
    ));
    let r = run.run(&["--teardown", "purge"]);
    assert_eq!(r.code, Some(1), "{}", r.output);
    for phase in ["preflight", "build", "up", "test", "teardown"] {
        assert!(
            r.output.contains(&format!("::group::e2e {phase}\n")),
            "{phase} fold:\n{}",
            r.output
        );
    }
    assert_eq!(
        r.output.matches("::group::").count(),
        r.output.matches("::endgroup::").count(),
        "{}",
        r.output
    );
    assert!(
        r.output.contains("::error title=e2e test failed%3A e2e-tests%3A%3Agateway a_slow_backend_answer_is_forwarded_whole::"),
        "{}",
        r.output
    );
    let md = std::fs::read_to_string(summary.path()).unwrap();
    assert!(md.contains("| test | failed |"), "{md}");
    assert!(
        md.contains("Failed tests:") && md.contains("a_slow_backend_answer_is_forwarded_whole"),
        "{md}"
    );
    assert_eq!(r.report["verdict"]["kind"], "tests-failed", "{}", r.report);
    assert_eq!(r.report["tests"]["failed"], 1, "{}", r.report);
    assert_eq!(r.report["tests"]["passed"], 5, "{}", r.report);
    assert!(Utf8Path::new(r.report["junit"].as_str().unwrap()).exists());
    assert!(
        r.report["bundle"].is_string(),
        "failed tests leave a bundle: {}",
        r.report
    );
    assert!(run.leftovers().is_empty(), "{:?}", run.leftovers());
}

#[test]
fn certificates_replaced_between_runs_recreate_the_running_containers() {
    let Some((run, _cleanup)) = Run::ready("recerts") else {
        return;
    };
    // Its own certificates: replacing them must not disturb tests running alongside.
    let certs_root = run.dir();
    let run = run.with_config(&[], &certs_root, "");
    let r = run.run(&["--teardown", "keep"]);
    assert_eq!(r.code, Some(0), "{}", r.output);
    let r = run.run(&["--teardown", "keep"]);
    assert_eq!(
        r.report["containers"]["reused"], 2,
        "unchanged certificates: reused\n{}",
        r.report
    );
    // Replaced outside a run, as a user does; the next run finds them valid.
    let config = run.config.clone().unwrap();
    let out = duct::cmd(BIN, ["certs", "--config", config.as_str(), "--force"])
        .dir(root())
        .stdout_capture()
        .run()
        .unwrap();
    assert!(out.status.success());
    let r = run.run(&["--teardown", "purge"]);
    assert_eq!(
        r.code,
        Some(0),
        "the tests trust the new CA, so the gateway must serve the new certificate\n{}",
        r.output
    );
    assert_eq!(r.report["certs"]["action"], "reused", "{}", r.report);
    assert_eq!(r.report["containers"]["created"], 2, "{}", r.report);
}

#[test]
fn three_real_shards_merge_into_one_result() {
    if compose::testing::engine_or_skip("three_real_shards_merge_into_one_result").is_none() {
        return;
    }
    // Three shards of the demo's suite, as three CI jobs would run them, each
    // with a project of its own; then one merged summary and JUnit file.
    let runs: Vec<(Run, Cleanup)> = (1..=3).map(|k| Run::new(&format!("shard{k}"))).collect();
    let mut reports = Vec::new();
    for (k, (run, _)) in runs.iter().enumerate() {
        let slice = format!("slice:{}/3", k + 1);
        let r = run.run(&["--teardown", "purge", "--", "--partition", &slice]);
        assert_eq!(r.code, Some(0), "{}", r.output);
        assert!(run.leftovers().is_empty());
        reports.push(run.report.to_string());
    }
    let tmp = tempfile::tempdir().unwrap();
    let merged = Utf8Path::from_path(tmp.path()).unwrap().join("merged.xml");
    let mut args = vec![
        "report".to_owned(),
        "merge".into(),
        "--junit".into(),
        merged.to_string(),
    ];
    args.extend(reports);
    let out = duct::cmd(BIN, args)
        .dir(root())
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("e2e shards merged: 3 reports"), "{text}");
    // The demo's six tests, each run by exactly one shard.
    assert!(text.contains("6 passed, 0 failed, 0 skipped"), "{text}");
    let junit = std::fs::read_to_string(&merged).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 6, "{junit}");
}
