//! Adoption by a workspace that is not this one, against the real engine: the
//! shop fixture (tests/fixtures/shop: Postgres with a 5 s healthcheck, a
//! one-shot migration, a backend under `restart: always` with a secret, nginx
//! without healthcheck on a published port), copied to a temporary folder and
//! driven as its users would: `cargo e2e` installed on PATH, or its own xtask.
//! Its images build FROM `debian:bookworm-slim`, made without a registry by
//! `.ci/debian-base`.
//! Long because it is one test binary for the shop's tests, which share its
//! fixture helpers: each binary more is one more link of the whole tool.

mod support;

use support::free_port;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use pipeline::report::{PhaseReport, Status};
use pipeline::{Phase, RunReport};

const BIN: &str = env!("CARGO_BIN_EXE_cargo-e2e");
const BASE_IMAGE: &str = "debian:bookworm-slim";

fn repo_root() -> Utf8PathBuf {
    Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize_utf8()
        .unwrap()
}

/// The engine and the Debian base image, or `false` after saying why the
/// test is skipped (a failure when `E2E_REQUIRE_DOCKER` is set).
fn ready_or_skip(test: &str) -> bool {
    compose::testing::image_or_skip(test, BASE_IMAGE)
}

/// A copy of the shop workspace in a temporary folder, a git work tree (so
/// the clean phase can tell tracked files), with `cargo-e2e` on PATH.
struct Shop {
    tmp: tempfile::TempDir,
    root: Utf8PathBuf,
    project: String,
    port: u16,
}

impl Drop for Shop {
    fn drop(&mut self) {
        // A failed test's run folders (bundles, logs, reports) outlive its
        // temporary workspace: the evidence of a failure seen once.
        if std::thread::panicking() {
            let runs = self.root.join("target/e2e/runs");
            let kept = Utf8PathBuf::from("/tmp/e2e-failed").join(&self.project);
            let _ = std::fs::create_dir_all(&kept);
            // A panic here would abort the test run: errors are left unread.
            if runs.is_dir()
                && duct::cmd!("cp", "-a", &runs, &kept)
                    .unchecked()
                    .run()
                    .is_ok()
            {
                eprintln!("the failed test's run folders: {kept}/runs");
            }
        }
        // Whatever the test did: nothing of this project stays on the engine.
        let _ = compose::docker([
            "compose",
            "-p",
            &self.project,
            "down",
            "--volumes",
            "--remove-orphans",
            "--timeout",
            "0",
        ])
        .env("SHOP_PORT", "1")
        .output(&self.root);
        if let Ok(left) = compose::leftovers(&self.project) {
            let images: Vec<String> = left
                .images
                .into_iter()
                .chain(left.dangling_images)
                .collect();
            if !images.is_empty() {
                let _ = compose::docker(
                    ["image".to_owned(), "rm".into(), "--force".into()]
                        .into_iter()
                        .chain(images),
                )
                .output(&self.root);
            }
        }
    }
}

impl Shop {
    /// The shop for `test`, initialised (`cargo e2e init`); `None` after
    /// saying why the test is skipped.
    fn ready(name: &str) -> Option<Shop> {
        if !ready_or_skip(&compose::testing::this_test()) {
            return None;
        }
        let shop = Shop::new(name);
        shop.init();
        Some(shop)
    }

    fn new(name: &str) -> Shop {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(tmp.path().canonicalize().unwrap())
            .unwrap()
            .join("shop");
        support::copy_dir(&repo_root().join("tests/fixtures/shop"), &root);
        let bin = root.parent().unwrap().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::os::unix::fs::symlink(BIN, bin.join("cargo-e2e")).unwrap();
        let shop = Shop {
            tmp,
            root,
            project: format!("t{}-{name}", std::process::id()),
            port: free_port(),
        };
        shop.git(&["init", "-q"]);
        shop.git(&["add", "."]);
        shop
    }

    fn git(&self, args: &[&str]) {
        let out = duct::cmd("git", args)
            .dir(&self.root)
            .stdout_null()
            .unchecked()
            .run()
            .unwrap();
        assert!(out.status.success(), "git {args:?}");
    }

    fn path(&self) -> String {
        let bin = Utf8Path::from_path(self.tmp.path())
            .unwrap()
            .canonicalize_utf8()
            .unwrap()
            .join("bin");
        format!("{bin}:{}", std::env::var("PATH").unwrap_or_default())
    }

    /// `cargo ARGS` in the shop's root, as its developers type it.
    fn cargo(&self, args: &[&str]) -> duct::Expression {
        support::cargo_in(&self.root, &self.path(), false, args)
            .env("SHOP_PORT", self.port.to_string())
    }

    /// [`Shop::cargo`] as a CI job runs it: `CI` set (in duct the innermost
    /// environment change wins, so it is built here, not added outside).
    fn cargo_ci(&self, args: &[&str]) -> duct::Expression {
        support::cargo_in(&self.root, &self.path(), true, args)
            .env("SHOP_PORT", self.port.to_string())
    }

    fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        self.run_with(self.cargo(args))
    }

    fn run_with(&self, e: duct::Expression) -> (Option<i32>, String) {
        let out = e.stdout_capture().run().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// `cargo e2e init`, then the project name made unique for this test.
    fn init(&self) {
        let (code, out) = self.run(&["e2e", "init"]);
        assert_eq!(code, Some(0), "{out}");
        let path = self.root.join("e2e.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace(
            "  # project: name ",
            &format!("  project: {}\n  # (was) project: name ", self.project),
        );
        std::fs::write(path, text).unwrap();
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    /// The run's report, read through its type (the contract a CI step reads).
    fn report(&self) -> RunReport {
        self.report_in(&self.root.join("target"))
    }

    fn report_in(&self, target: &Utf8Path) -> RunReport {
        RunReport::read(&target.join("e2e/report.json")).unwrap()
    }

    fn leftovers(&self) -> compose::Leftovers {
        compose::leftovers(&self.project).unwrap()
    }
}

fn phase(report: &RunReport, phase: Phase) -> &PhaseReport {
    report
        .phases
        .iter()
        .find(|p| p.phase == phase)
        .unwrap_or_else(|| panic!("no phase {phase:?} in {report}"))
}

fn passed(report: &RunReport) -> usize {
    report.tests.map_or(0, |t| t.passed)
}

#[test]
fn installed_cargo_e2e_adopts_a_foreign_workspace_from_init_to_green() {
    if !ready_or_skip("installed_cargo_e2e_adopts_a_foreign_workspace_from_init_to_green") {
        return;
    }
    let shop = Shop::new("adopt");
    // init writes a config from the compose file, and never overwrites an edit.
    let (code, out) = shop.run(&["e2e", "init"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("wrote e2e.yaml from compose.yaml"), "{out}");
    let written = std::fs::read_to_string(shop.root.join("e2e.yaml")).unwrap();
    for line in [
        "files: [compose.yaml]",
        "packages: [shop-e2e]",
        "PROXY_80: \"{proxy:80}\"",
    ] {
        assert!(written.contains(line), "{line} missing:\n{written}");
    }
    assert!(
        !written.contains("\ncerts:"),
        "no certs section unless asked:\n{written}"
    );
    let (code, out) = shop.run(&["e2e", "init"]);
    assert_eq!((code, out.trim()), (Some(0), "e2e.yaml is up to date"));
    shop.init_edit_is_kept();

    // The whole run, from the shop's root, with the tool found on PATH.
    let (code, out) = shop.run(&["e2e", "--teardown", "purge"]);
    assert_eq!(code, Some(0), "{out}");
    let report = shop.report();
    assert_eq!(report.project, shop.project, "the config's project");
    let certs = phase(&report, Phase::Certs);
    assert_eq!(certs.status, Status::Skipped);
    assert!(certs.note.contains("no certs section"), "{report}");
    assert_eq!(passed(&report), 2, "{report}");
    // Everything lives in the shop's workspace: its target folder, its JUnit.
    let run_dir = &report.run_dir;
    assert!(
        run_dir.starts_with(shop.root.join("target/e2e/runs/")),
        "{report}"
    );
    assert!(run_dir.join("nextest-tool.toml").is_file());
    assert!(
        report.junit.as_ref().unwrap().starts_with(run_dir),
        "{report}"
    );
    assert!(shop.leftovers().is_empty(), "purge: {}", shop.leftovers());
    assert!(
        !out.contains(repo_root().as_str()),
        "nothing of the tool's own checkout shows:\n{out}"
    );
}

impl Shop {
    /// A last run that purges the stack (images built already), then the
    /// check that the engine holds nothing of it.
    fn purge_and_check(&self, extra: &[&str]) {
        let mut args = vec!["e2e", "--teardown", "purge", "--no-build"];
        args.extend_from_slice(extra);
        let (code, out) = self.run(&args);
        assert_eq!(code, Some(0), "{out}");
        assert!(self.leftovers().is_empty(), "{}", self.leftovers());
    }

    /// Adds `compose.override.yaml` with `yaml` to the stack's files.
    fn with_override(&self, yaml: &str) {
        self.write("compose.override.yaml", yaml);
        self.edit_config(
            "files: [compose.yaml]",
            "files: [compose.yaml, compose.override.yaml]",
        );
    }

    /// Adds `yaml` (top-level keys) at the end of e2e.yaml.
    fn append_config(&self, yaml: &str) {
        let path = self.root.join("e2e.yaml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push('\n');
        text.push_str(yaml);
        std::fs::write(path, text).unwrap();
    }

    /// Replaces `from` with `to` in e2e.yaml.
    fn edit_config(&self, from: &str, to: &str) {
        let path = self.root.join("e2e.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} not in:\n{text}");
        std::fs::write(path, text.replace(from, to)).unwrap();
    }

    /// An edited config survives a second `init`, which exits 2 and says why.
    fn init_edit_is_kept(&self) {
        let path = self.root.join("e2e.yaml");
        let edited = std::fs::read_to_string(&path).unwrap().replace(
            "  # project: name ",
            &format!("  project: {}\n  # project: name ", self.project),
        );
        std::fs::write(&path, &edited).unwrap();
        let (code, out) = self.run(&["e2e", "init"]);
        assert_eq!(code, Some(2), "{out}");
        assert!(
            out.contains("exists and says something else; nothing written"),
            "{out}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), edited);
    }
}

#[test]
fn its_own_xtask_hands_over_in_three_lines() {
    let Some(shop) = Shop::ready("xtask") else {
        return;
    };
    let cli = repo_root().join("crates/cli");
    // Named apart from this repository's own `xtask`: the two share a target folder.
    shop.write(
        "xtask/Cargo.toml",
        &format!(
            "[package]\nname = \"shop-xtask\"\nversion = \"0.1.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\ncargo-e2e = {{ path = \"{cli}\" }}\n"
        ),
    );
    shop.write(
        "xtask/src/main.rs",
        "fn main() -> std::process::ExitCode {\n    cargo_e2e::main()\n}\n",
    );
    // A target folder moved as users move it (`build.target-dir`): this
    // repository's own. With its lock file and its profiles too, the shop's
    // xtask compiles only itself, not cargo-e2e and its 300 crates again
    // (90 s here, over 180 s in CI from a clean clone). What is proven is
    // the handover, not that cargo can compile.
    let target = repo_root().join("target");
    shop.write(
        ".cargo/config.toml",
        &format!("[alias]\nxtask = \"run --quiet --package shop-xtask --\"\n\n[build]\ntarget-dir = \"{target}\"\n"),
    );
    let manifest = std::fs::read_to_string(shop.root.join("Cargo.toml")).unwrap();
    let ours = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let profiles = &ours[ours.find("\n[profile.").expect("profiles in Cargo.toml")..];
    shop.write(
        "Cargo.toml",
        &format!(
            "{}{profiles}",
            manifest.replace(
                "members = [\"api\", \"shop-e2e\"]",
                "members = [\"api\", \"shop-e2e\", \"xtask\"]",
            )
        ),
    );
    std::fs::copy(repo_root().join("Cargo.lock"), shop.root.join("Cargo.lock")).unwrap();
    let xtask = |args: &[&str]| shop.run(args);
    let (code, out) = xtask(&["xtask", "e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
    let report = shop.report_in(&target);
    assert_eq!(passed(&report), 1, "{report}");
    assert_eq!(report.project, shop.project);
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
    let (code, out) = xtask(&["xtask", "doctor"]);
    assert!(out.contains("config           e2e.yaml"), "{code:?} {out}");
}

#[test]
fn a_crash_looping_backend_fails_fast_with_its_own_last_words() {
    let Some(shop) = Shop::ready("crashloop") else {
        return;
    };
    // The backend loses its secret: under `restart: always` it crash-loops.
    shop.with_override("services:\n  api:\n    secrets: !reset []\n");
    let start = Instant::now();
    let (code, out) = shop.run(&["e2e", "--teardown", "purge"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("service api failed"), "{out}");
    assert!(
        out.contains("keeps restarting") || out.contains("exited with code 1"),
        "{out}"
    );
    assert!(
        out.contains("cannot read /run/secrets/db_password"),
        "the backend's own log line is in the error:\n{out}"
    );
    assert!(
        !out.contains("not ready after"),
        "failed fast, not by the timeout:\n{out}"
    );
    eprintln!(
        "crash loop reported after {:.1} s",
        start.elapsed().as_secs_f64()
    );
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

#[test]
fn a_low_port_is_not_taken_for_a_user_who_cannot_bind_it() {
    if !ready_or_skip("a_low_port_is_not_taken_for_a_user_who_cannot_bind_it") {
        return;
    }
    // Port 81, free: without CAP_NET_BIND_SERVICE our own test bind fails with
    // EACCES, as it does for every user who is not root; the daemon binds it.
    if std::net::TcpListener::bind("0.0.0.0:81").is_err() {
        eprintln!("SKIPPED: port 81 is in use here");
        return;
    }
    let mut shop = Shop::new("lowport");
    shop.port = 81;
    shop.init();
    let unprivileged = |args: &[&str]| {
        let mut all = vec![
            "--inh-caps=-net_bind_service",
            "--bounding-set=-net_bind_service",
            "cargo",
        ];
        all.extend_from_slice(args);
        support::outcome(
            duct::cmd("setpriv", all)
                .dir(&shop.root)
                .env("PATH", shop.path())
                .env("SHOP_PORT", "81")
                .env_remove("CI")
                .stdin_null(),
        )
    };
    let (_, out) = unprivileged(&["e2e", "doctor"]);
    assert!(
        out.contains("port             81 (proxy): cannot tell"),
        "{out}"
    );
    assert!(!out.contains("TAKEN"), "{out}");
    let (code, out) = unprivileged(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

#[test]
fn a_test_package_that_is_not_a_member_stops_preflight() {
    let Some(shop) = Shop::ready("member") else {
        return;
    };
    shop.edit_config("packages: [shop-e2e]", "packages: [shop-e2e, shop-tests]");
    let (code, out) = shop.run(&["e2e"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains(
            "tests.packages: `shop-tests` is not a member of the workspace (members: api, shop-e2e)"
        ),
        "{out}"
    );
    assert_eq!(
        phase(&shop.report(), Phase::Preflight).status,
        Status::Failed
    );
    assert!(
        shop.leftovers().is_empty(),
        "nothing started: {}",
        shop.leftovers()
    );
    // A probe the stack cannot answer is as much the config's fault: the
    // proxy has no healthcheck to wait for.
    shop.edit_config("packages: [shop-e2e, shop-tests]", "packages: [shop-e2e]");
    shop.edit_config(
        "readiness:\n  timeout_s: 120\n",
        "readiness:\n  timeout_s: 120\n  services:\n    proxy: healthcheck\n",
    );
    let (code, out) = shop.run(&["e2e"]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("readiness.services.proxy: `healthcheck`, but proxy has no healthcheck"),
        "{out}"
    );
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

#[test]
fn what_the_stack_says_is_seen_while_it_starts_and_kept_after_it_goes() {
    let Some(shop) = Shop::ready("seen") else {
        return;
    };
    let (code, out) = shop.run(&["e2e", "--teardown", "purge"]);
    assert_eq!(code, Some(0), "{out}");
    // Postgres's own lines, streamed while the wait went on: before `up` ended.
    let said = out
        .find("db | ")
        .unwrap_or_else(|| panic!("no line of db's:\n{out}"));
    let up_ok = out.find("up         ok").unwrap();
    assert!(said < up_ok, "streamed before up ended:\n{out}");
    assert!(
        out.contains("ready to accept connections"),
        "db's own words:\n{out}"
    );
    // A whole log per service in the run's folder, though purge removed the
    // containers: db's shutdown is in it.
    let report = shop.report();
    let logs = report.run_dir.join("logs");
    for service in ALL {
        assert!(
            report.logs.contains(&logs.join(format!("{service}.log"))),
            "{:?}",
            report.logs
        );
    }
    let db = std::fs::read_to_string(logs.join("db.log")).unwrap();
    assert!(db.contains("database system is shut down"), "{db}");
    assert!(
        out.contains(&format!("logs       {logs}/ (api.log")),
        "{out}"
    );
    // The run as a trace: every phase, every service, the tests.
    let trace = pipeline::trace::Trace::read(report.trace.as_ref().unwrap()).unwrap();
    let spans = |tid: u32| -> Vec<String> {
        trace
            .trace_events
            .iter()
            .filter(|e| e.ph == "X" && e.tid == tid)
            .map(|e| e.name.clone())
            .collect()
    };
    let phases: Vec<String> = report
        .phases
        .iter()
        .map(|p| p.phase.name().to_owned())
        .collect();
    assert_eq!(spans(1), phases);
    let tracks: Vec<String> = trace.tracks().into_values().collect();
    for service in ALL {
        assert!(tracks.contains(&format!("service {service}")), "{tracks:?}");
    }
    assert!(tracks.iter().any(|t| t.starts_with("tests")), "{tracks:?}");
    // And drawn.
    let (code, out) = shop.run(&["e2e", "report", "trace"]);
    assert_eq!(code, Some(0), "{out}");
    let svg = std::fs::read_to_string(out.trim()).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("service db"),
        "{svg}"
    );
    // --no-logs keeps them off the screen (not out of the files).
    let (code, out) = shop.run(&[
        "e2e",
        "--teardown",
        "purge",
        "--no-logs",
        "-E",
        "test(proxy)",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("db | "), "{out}");
    assert!(shop.report().run_dir.join("logs/db.log").is_file());
}

#[test]
fn a_long_quiet_wait_still_says_it_runs() {
    let Some(shop) = Shop::ready("quiet") else {
        return;
    };
    // The proxy says nothing and listens only after 7 s: nothing changes
    // while `up` waits for its port.
    shop.with_override(
        "services:\n  proxy:\n    command: [\"sh\", \"-c\", \"sleep 7; exec nginx -g 'daemon off;'\"]\n",
    );
    let (code, out) = shop.run(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
    // Where the work beside it has got to, or that `up` still runs.
    assert!(
        out.lines().any(|l| l.contains("up         still running (")
            || l.contains("up         test binaries: ")),
        "{out}"
    );
}

#[test]
fn under_github_actions_nothing_a_container_prints_is_a_workflow_command() {
    let Some(shop) = Shop::ready("ghcommands") else {
        return;
    };
    // The proxy prints workflow commands, then listens 3 s later: time for
    // the lines to reach the screen before it is ready (the screen is a view;
    // logs/ holds every line whenever it came).
    shop.with_override(
        "services:\n  proxy:\n    command: [\"sh\", \"-c\", \"echo '::error::from a container'; echo '::add-mask::hunter2'; echo '::set-env name=PATH::/evil'; echo '::stop-commands::nope'; echo '##[error]old style'; sleep 3; exec nginx -g 'daemon off;'\"]\n",
    );
    let (code, out) = shop.run_with(
        shop.cargo(&["e2e", "--teardown", "purge", "-E", "test(proxy)"])
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", ""),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("proxy | ::error::from a container"), "{out}");
    assert!(out.contains("proxy | ::set-env name=PATH::/evil"), "{out}");
    // Commands are stopped while containers' lines print: every line that
    // reads as a command is one of ours.
    let mut stopped: Option<String> = None;
    for line in out.lines() {
        if let Some(token) = line.strip_prefix("::stop-commands::") {
            assert!(stopped.is_none(), "stopped twice:\n{out}");
            stopped = Some(token.to_owned());
            continue;
        }
        if let Some(token) = &stopped {
            if line == format!("::{token}::") {
                stopped = None;
            }
            continue;
        }
        if line.trim_start().starts_with("::") || line.trim_start().starts_with("##[") {
            // Ours: folds, and the masks of the stack's secrets (the
            // shop's db_password), said before anything could print them.
            let ours = line.starts_with("::group::")
                || line.starts_with("::endgroup::")
                || (line.starts_with("::add-mask::") && !line.contains("hunter2"));
            assert!(ours, "a command outside the stopped stretch: {line}\n{out}");
        }
    }
    assert!(stopped.is_none(), "commands left stopped:\n{out}");
    for line in out
        .lines()
        .filter(|l| l.contains("::error::from a container"))
    {
        assert!(line.starts_with("proxy | "), "{line}");
    }
}

#[test]
fn a_compose_file_compose_refuses_is_bad_input_with_its_error_first() {
    let Some(shop) = Shop::ready("refused") else {
        return;
    };
    // As public compose files are refused: unset variables Compose warns of,
    // and a secret nothing defines.
    shop.with_override(
        "services:\n  api:\n    environment: { K1: \"${SHOP_UNSET_KEY}\", K2: \"${SHOP_UNSET_KEY}\" }\n    secrets: [nosuch]\n",
    );
    let (code, out) = shop.run(&["e2e"]);
    assert_eq!(code, Some(2), "{out}");
    let error = out
        .lines()
        .find_map(|l| l.strip_prefix("error: "))
        .unwrap_or_else(|| panic!("no error line:\n{out}"));
    assert_eq!(
        error,
        "compose.yaml, compose.override.yaml: service \"api\" refers to undefined secret nosuch: invalid compose project",
        "{out}"
    );
    // The warnings come after, each once.
    assert!(
        out.contains("Compose also warned: The \"SHOP_UNSET_KEY\" variable is not set. Defaulting to a blank string. (2 times)"),
        "{out}"
    );
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
    // init reads the file the same way.
    std::fs::remove_file(shop.root.join("e2e.yaml")).unwrap();
    std::fs::rename(
        shop.root.join("compose.override.yaml"),
        shop.root.join("compose.yaml"),
    )
    .unwrap();
    let (code, out) = shop.run(&["e2e", "init"]);
    assert_eq!(code, Some(2), "{out}");
}

#[test]
fn purge_also_removes_the_images_rebuilds_left_behind() {
    let Some(shop) = Shop::ready("dangling") else {
        return;
    };
    let health = ["e2e", "--teardown", "stop", "-E", "test(proxy)"];
    let (code, out) = shop.run(&health);
    assert_eq!(code, Some(0), "{out}");
    // A change to the backend's binary rebuilds its image: the old one loses
    // its tag. (A comment would not do: the same binary is a cache hit.)
    let main = shop.root.join("api/src/main.rs");
    let src = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        src.replace("api: listening on 8080", "api: listening on port 8080"),
    )
    .unwrap();
    let old_api = image_id(&format!("{}-api", shop.project));
    let (code, out) = shop.run(&health);
    assert_eq!(code, Some(0), "{out}");
    let store = compose::Engine::server().unwrap().image_store;
    if store.is_containerd() {
        // The containerd image store deletes an image once no tag and no
        // container refers to it: the rebuild leaves nothing behind to purge.
        assert!(
            shop.leftovers().dangling_images.is_empty(),
            "{store}: {}",
            shop.leftovers()
        );
        let all = compose::docker(["image", "ls", "--all", "--no-trunc", "--format", "{{.ID}}"])
            .text(&shop.root)
            .unwrap();
        assert!(!all.contains(&old_api), "{store} kept {old_api}:\n{all}");
    } else {
        assert!(
            !shop.leftovers().dangling_images.is_empty(),
            "the rebuild left the old image untagged: {}",
            shop.leftovers()
        );
    }
    shop.purge_and_check(&["-E", "test(proxy)"]);
}

#[test]
fn a_proxy_without_healthcheck_is_ready_only_when_its_port_answers() {
    let Some(shop) = Shop::ready("hammer") else {
        return;
    };
    // nginx takes two seconds to listen, as a slow-starting server does.
    shop.with_override("services:\n  proxy:\n    command: [\"sh\", \"-c\", \"sleep 2; exec nginx -g 'daemon off;'\"]\n");
    // Kept running: the hammer must not race the teardown that follows.
    let mut hammer = None;
    let (code, output) = support::watch(
        shop.cargo(&["e2e", "--teardown", "keep", "--", "--no-run"]),
        |line| {
            // From the moment `up` says ready: every request gets an answer.
            if hammer.is_none() && line.contains("up         ok") {
                let addr = format!("127.0.0.1:{}", shop.port);
                hammer = Some(std::thread::spawn(move || {
                    hammer_for(&addr, Duration::from_secs(1))
                }));
            }
            None
        },
    );
    assert_eq!(code, Some(0), "{output}");
    let (ok, failed) = hammer.expect("up reported ready").join().unwrap();
    assert!(
        ok > 0 && failed.is_empty(),
        "{ok} answered, {} failed, the first: {:?}\n{output}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    shop.purge_and_check(&["--", "--no-run"]);
}

/// Requests `GET /health` through `addr` for `how_long`: how many answered
/// 200, and what went wrong with the others.
fn hammer_for(addr: &str, how_long: Duration) -> (usize, Vec<String>) {
    let end = Instant::now() + how_long;
    let (mut ok, mut failed) = (0, Vec::new());
    while Instant::now() < end {
        let result = (|| -> std::io::Result<String> {
            let mut s = std::net::TcpStream::connect_timeout(
                &addr.parse().unwrap(),
                Duration::from_secs(2),
            )?;
            s.set_read_timeout(Some(Duration::from_secs(2)))?;
            s.write_all(b"GET /health HTTP/1.0\r\nHost: shop\r\n\r\n")?;
            let mut text = String::new();
            s.read_to_string(&mut text)?;
            Ok(text)
        })();
        match result {
            Ok(t) if t.starts_with("HTTP/1.1 200") || t.starts_with("HTTP/1.0 200") => ok += 1,
            Ok(t) => failed.push(format!(
                "answer: {:?}",
                t.lines().next().unwrap_or("(empty)")
            )),
            Err(e) => failed.push(e.to_string()),
        }
    }
    (ok, failed)
}

#[test]
fn ephemeral_ports_run_while_the_fixed_port_is_held() {
    let Some(shop) = Shop::ready("ephemeral") else {
        return;
    };
    // Another run (here: a listener) holds the stack's fixed port.
    let _held = std::net::TcpListener::bind(("0.0.0.0", shop.port)).unwrap();
    let (code, out) = shop.run(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(3), "without the flag the port is taken: {out}");
    assert!(
        out.contains(&format!(
            "host port {} (published by service proxy) is taken",
            shop.port
        )),
        "{out}"
    );
    let (code, out) = shop.run(&[
        "e2e",
        "--ephemeral-ports",
        "--teardown",
        "purge",
        "-E",
        "test(proxy)",
    ]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ports picked by the engine"), "{out}");
    assert_eq!(passed(&shop.report()), 1);
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

#[test]
fn when_compose_up_fails_its_real_error_is_shown() {
    let Some(shop) = Shop::ready("upfails") else {
        return;
    };
    // The engine refuses to start the proxy: Compose's `up` fails.
    shop.with_override("services:\n  proxy:\n    user: nosuchuser\n");
    let (code, out) = shop.run(&["e2e", "--teardown", "purge"]);
    assert_eq!(code, Some(3), "{out}");
    let error = out
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_default();
    assert!(
        error.contains("unable to find user nosuchuser"),
        "the error line says what the engine said: {error}\n{out}"
    );
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

#[test]
fn a_test_compile_error_beside_the_stack_still_tears_down() {
    let Some(shop) = Shop::ready("compileerr") else {
        return;
    };
    let tests = shop.root.join("shop-e2e/tests/shop.rs");
    let mut src = std::fs::read_to_string(&tests).unwrap();
    src.push_str("\ncompile_error!(\"broken on purpose\");\n");
    std::fs::write(&tests, src).unwrap();
    let (code, out) = shop.run(&["e2e", "--teardown", "purge"]);
    assert_eq!(code, Some(3), "{out}");
    // The test binaries build beside the stack: it started, then the test
    // phase reports the build's own error.
    let report = shop.report();
    assert_eq!(phase(&report, Phase::Up).status, Status::Ok, "{report}");
    assert_eq!(
        phase(&report, Phase::Test).status,
        Status::Failed,
        "{report}"
    );
    assert!(out.contains("the test binaries did not build"), "{out}");
    assert!(out.contains("broken on purpose"), "{out}");
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

#[test]
fn ctrl_c_while_the_tests_build_beside_the_stack_leaves_nothing() {
    let Some(shop) = Shop::ready("compilectrlc") else {
        return;
    };
    // A stand-in for a slow test build (a fault the engine cannot be made to
    // show): a build script that records its pid and sleeps.
    let pid_file = shop.root.join("build-script.pid");
    let done_file = shop.root.join("build-script.done");
    shop.write(
        "shop-e2e/build.rs",
        &format!(
            "fn main() {{\n    std::fs::write({pid_file:?}, std::process::id().to_string()).unwrap();\n    \
             std::thread::sleep(std::time::Duration::from_secs(120));\n    \
             std::fs::write({done_file:?}, \"finished\").unwrap();\n}}\n"
        ),
    );
    let mut sent = false;
    let (code, output) = support::watch(shop.cargo(&["e2e", "--teardown", "down"]), |line| {
        // The stack is starting and the test build is under way: Ctrl-C.
        let now = !sent && line.contains("up         waiting") && pid_file.exists();
        sent |= now;
        now.then_some(nix::sys::signal::Signal::SIGINT)
    });
    assert!(
        sent,
        "never saw up waiting with the build under way:\n{output}"
    );
    assert_eq!(code, Some(130), "{output}");
    let left = shop.leftovers();
    assert!(
        left.containers.is_empty() && left.networks.is_empty(),
        "{left}"
    );
    // The build, a child of a child, was stopped too.
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // (An orphan is reaped by init a moment after it dies: look a few times.)
    let alive = || nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok();
    for _ in 0..50 {
        if !alive() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(!alive(), "the build script {pid} still runs:\n{output}");
    assert!(
        !done_file.exists(),
        "the build ran to its end instead of being stopped"
    );
}

#[test]
fn dependents_start_when_the_check_passes_here_not_on_docker_s_timer() {
    let Some(shop) = Shop::ready("fastready") else {
        return;
    };
    // Docker would first run the database's check 30 s after its start.
    shop.with_override("services:\n  db:\n    healthcheck:\n      interval: 30s\n");
    let (code, out) = shop.run(&["e2e", "--teardown", "keep", "-E", "test(items)"]);
    assert_eq!(code, Some(0), "{out}");
    let report = shop.report();
    let up = report.containers.as_ref().expect("up ran");
    assert_eq!(up.checks_run_here, ["db"], "{report}");
    assert_eq!(up.levels, 4, "db, migrate, api, proxy: {report}");
    // The migration (which needs the database to accept connections, and
    // passed: the test read its rows) started before Docker ran the check
    // that Compose would have waited for.
    let inspect = |what: &str, service: &str| {
        let name = format!("{}-{service}-1", shop.project);
        compose::docker(["inspect", "--format", what, &name])
            .text(&shop.root)
            .unwrap()
    };
    let migrate_started = inspect("{{.State.StartedAt}}", "migrate");
    let docker_checks = inspect("{{range .State.Health.Log}}{{.Start}} {{end}}", "db");
    let first_check = docker_checks.split(' ').next().unwrap_or_default();
    assert!(
        first_check.is_empty() || first_check > migrate_started.as_str(),
        "migrate started {migrate_started}, Docker's first check {first_check}"
    );
    shop.purge_and_check(&["-E", "test(items)"]);
}

#[test]
fn a_check_that_never_passes_still_fails_fast() {
    let Some(shop) = Shop::ready("badcheck") else {
        return;
    };
    shop.with_override(
        "services:\n  db:\n    healthcheck:\n      test: [\"CMD\", \"false\"]\n      interval: 1s\n      retries: 2\n",
    );
    let (code, out) = shop.run(&["e2e", "--teardown", "purge"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(
        out.contains("service db failed") && out.contains("is unhealthy"),
        "{out}"
    );
    assert!(
        !out.contains("not ready after"),
        "failed fast, not by the timeout:\n{out}"
    );
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

/// Each service's container ID, as the engine lists the project.
fn container_ids(shop: &Shop) -> std::collections::BTreeMap<String, String> {
    let filter = format!("label=com.docker.compose.project={}", shop.project);
    let format = "{{.Label \"com.docker.compose.service\"}} {{.ID}}";
    compose::docker(["ps", "--all", "--filter", &filter, "--format", format])
        .text(&shop.root)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(s, id)| (s.to_owned(), id.to_owned()))
        .collect()
}

/// `(services whose image was skipped as unchanged, whether up was skipped)`.
fn skipped(report: &RunReport) -> (Vec<String>, bool) {
    let images = report
        .images
        .iter()
        .filter(|i| i.unchanged)
        .map(|i| i.service.clone())
        .collect();
    let up = report.containers.as_ref().is_some_and(|u| u.unchanged);
    (images, up)
}

const KEEP: [&str; 5] = ["e2e", "--teardown", "keep", "-E", "test(proxy)"];

/// Runs with `--teardown keep`; returns the report and the container IDs.
fn kept_run(
    shop: &Shop,
    e: Option<duct::Expression>,
) -> (RunReport, std::collections::BTreeMap<String, String>) {
    let (code, out) = shop.run_with(e.unwrap_or_else(|| shop.cargo(&KEEP)));
    assert_eq!(code, Some(0), "{out}");
    (shop.report(), container_ids(shop))
}

const ALL: [&str; 4] = ["api", "db", "migrate", "proxy"];

#[test]
fn an_unchanged_stack_is_neither_built_nor_started_then_a_sent_file_changes_that() {
    let Some(shop) = Shop::ready("unchanged") else {
        return;
    };
    let (first, before) = kept_run(&shop, None);
    assert_eq!(skipped(&first), (vec![], false), "{first}");
    assert_eq!(
        why(&first, "proxy").as_deref(),
        Some("no earlier build of it on record")
    );
    let (again, after) = kept_run(&shop, None);
    assert_eq!(
        skipped(&again),
        (ALL.map(String::from).to_vec(), true),
        "{again}"
    );
    assert_eq!(after, before, "the same containers ran the tests");
    // The migration ran once and exited: with no `up`, it was not started again.
    let up = again.containers.as_ref().expect("up ran");
    assert_eq!((up.created, up.started), (0, 0), "{again}");
    // Each skip says what matched.
    let note = &phase(&again, Phase::Up).note;
    assert!(
        note.starts_with("unchanged")
            && note.contains("its images' IDs and its containers match the last up"),
        "{again}"
    );
    assert!(
        why(&again, "api")
            .unwrap()
            .starts_with("every input as the last build")
    );
    // A file only the proxy's build transfers (all four share the context,
    // but each target's stages name their own paths): only the proxy builds
    // again and gets a new container.
    let conf = shop.root.join("docker/nginx.conf");
    let text = std::fs::read_to_string(&conf).unwrap();
    std::fs::write(&conf, format!("# changed\n{text}")).unwrap();
    let (changed, recreated) = kept_run(&shop, None);
    let others = ["api", "db", "migrate"].map(String::from).to_vec();
    assert_eq!(skipped(&changed), (others, false), "{changed}");
    assert_ne!(recreated["proxy"], before["proxy"], "{changed}");
    assert_eq!(recreated["db"], before["db"], "{changed}");
    // Why: the file, then what it did to the container.
    assert_eq!(
        why(&changed, "proxy").as_deref(),
        Some("docker/nginx.conf changed")
    );
    let up = changed.containers.as_ref().unwrap();
    assert_eq!(
        up.recreated.get("proxy").map(String::as_str),
        Some("its image changed"),
        "{changed}"
    );
    assert!(!up.recreated.contains_key("db"), "{changed}");
    assert!(
        phase(&changed, Phase::Build)
            .note
            .contains("why: docker/nginx.conf changed (proxy)"),
        "{changed}"
    );
    shop.purge_and_check(&["-E", "test(proxy)"]);
}

/// What a run says of test binaries it did not ask cargo for.
const NOT_ASKED: &str =
    "test binaries as the last build left them (none of their sources changed: cargo not asked)";

#[test]
fn an_unchanged_workspace_runs_the_last_test_binaries_and_an_edit_builds_them_again() {
    let Some(shop) = Shop::ready("testbins") else {
        return;
    };
    // The fixture has no Cargo.lock: cargo writes it while the first run
    // builds, a source changed during a build, so that run leaves no record.
    for run in ["first", "second"] {
        let (report, _) = kept_run(&shop, None);
        let note = &phase(&report, Phase::Test).note;
        assert!(!note.contains(NOT_ASKED), "{run} run: {report}");
    }
    let (again, _) = kept_run(&shop, None);
    assert!(
        phase(&again, Phase::Test).note.contains(NOT_ASKED),
        "{again}"
    );
    assert_eq!(passed(&again), 1, "{again}");
    // A new test the filterset selects: it runs, so the binary is the edited one.
    let tests = shop.root.join("shop-e2e/tests/shop.rs");
    let text = std::fs::read_to_string(&tests).unwrap();
    let added = "#[test]\nfn the_proxy_answers_twice() {\n    assert_eq!(get(\"/health\").0, 200);\n    assert_eq!(get(\"/health\").0, 200);\n}\n";
    std::fs::write(&tests, format!("{text}\n{added}")).unwrap();
    let (edited, _) = kept_run(&shop, None);
    assert!(
        !phase(&edited, Phase::Test).note.contains(NOT_ASKED),
        "{edited}"
    );
    assert_eq!(passed(&edited), 2, "{edited}");
    let (after, _) = kept_run(&shop, None);
    assert!(
        phase(&after, Phase::Test).note.contains(NOT_ASKED),
        "{after}"
    );
    assert_eq!(passed(&after), 2, "{after}");
    // --rebuild asks cargo whatever the record says.
    let (code, out) = shop.run_with(shop.cargo(&[&KEEP[..], &["--rebuild"]].concat()));
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains(NOT_ASKED), "{out}");
    shop.purge_and_check(&["-E", "test(proxy)"]);
}

/// Why the last run built `service`'s image, as its report says.
fn why(report: &RunReport, service: &str) -> Option<String> {
    report
        .images
        .iter()
        .find(|i| i.service == service)
        .and_then(|i| i.why.clone())
}

#[test]
fn a_dockerfile_change_builds_again() {
    let Some(shop) = Shop::ready("dfchange") else {
        return;
    };
    let (_, before) = kept_run(&shop, None);
    let dockerfile = shop.root.join("docker/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let text = text.replace(
        "COPY docker/nginx.conf /etc/nginx/nginx.conf\n",
        "COPY docker/nginx.conf /etc/nginx/nginx.conf\nLABEL shop.note=\"changed\"\n",
    );
    std::fs::write(&dockerfile, text).unwrap();
    let (report, after) = kept_run(&shop, None);
    assert_eq!(skipped(&report), (vec![], false), "{report}");
    assert_eq!(
        why(&report, "api").as_deref(),
        Some("its Dockerfile changed")
    );
    assert_ne!(after["proxy"], before["proxy"], "{report}");
    assert_eq!(after["api"], before["api"], "{report}");
    shop.purge_and_check(&["-E", "test(proxy)"]);
}

#[test]
fn a_build_arg_change_builds_that_service_again() {
    let Some(shop) = Shop::ready("argchange") else {
        return;
    };
    // A build argument taken from the environment, as CI pipelines pass a version.
    shop.with_override(
        "services:\n  proxy:\n    build:\n      args:\n        NOTE: ${SHOP_NOTE:-one}\n",
    );
    let dockerfile = shop.root.join("docker/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(
        &dockerfile,
        format!("{text}ARG NOTE\nLABEL shop.note=$NOTE\n"),
    )
    .unwrap();
    let (_, before) = kept_run(&shop, None);
    let (same, _) = kept_run(&shop, None);
    assert_eq!(
        skipped(&same),
        (ALL.map(String::from).to_vec(), true),
        "{same}"
    );
    let (report, after) = kept_run(&shop, Some(shop.cargo(&KEEP).env("SHOP_NOTE", "two")));
    // Only the proxy's inputs changed: the others are not even built.
    assert_eq!(
        skipped(&report),
        (["api", "db", "migrate"].map(String::from).to_vec(), false),
        "{report}"
    );
    assert_eq!(
        why(&report, "proxy").as_deref(),
        Some("build argument NOTE changed")
    );
    assert_ne!(after["proxy"], before["proxy"], "{report}");
    assert_eq!(after["db"], before["db"], "{report}");
    let label = compose::docker([
        "inspect",
        "--format",
        "{{index .Config.Labels \"shop.note\"}}",
        &after["proxy"],
    ])
    .text(&shop.root)
    .unwrap();
    assert_eq!(label.trim(), "two");
    shop.purge_and_check(&["-E", "test(proxy)"]);
}

#[test]
fn a_service_config_change_starts_again_without_building() {
    let Some(shop) = Shop::ready("cfgchange") else {
        return;
    };
    // Changed through the environment: a file in the context would rebuild.
    shop.with_override(
        "services:\n  proxy:\n    environment:\n      GREETING: ${SHOP_GREETING:-hello}\n",
    );
    let (_, before) = kept_run(&shop, None);
    let (report, after) = kept_run(&shop, Some(shop.cargo(&KEEP).env("SHOP_GREETING", "hi")));
    assert_eq!(
        skipped(&report),
        (ALL.map(String::from).to_vec(), false),
        "no image is built, but up runs: {report}"
    );
    assert_ne!(after["proxy"], before["proxy"], "{report}");
    assert_eq!(after["db"], before["db"], "{report}");
    let recreated = &report.containers.as_ref().unwrap().recreated;
    assert_eq!(
        recreated.get("proxy").map(String::as_str),
        Some("its compose config changed"),
        "{report}"
    );
    shop.purge_and_check(&["-E", "test(proxy)"]);
}

#[test]
fn a_run_killed_with_sigkill_is_reaped_by_its_policy() {
    let Some(shop) = Shop::ready("sigkill") else {
        return;
    };
    // SIGKILL to the run's whole process group, as a CI runner escalates a
    // cancel or the OOM killer strikes: no handler, no teardown of its own.
    let mut killed = false;
    let (code, output) = support::watch(shop.cargo(&["e2e", "--teardown", "purge"]), |line| {
        // Once containers exist, while `up` still works.
        let now =
            !killed && line.contains("up         waiting") && !container_ids(&shop).is_empty();
        killed |= now;
        now.then_some(nix::sys::signal::Signal::SIGKILL)
    });
    assert!(killed, "never saw up waiting with containers:\n{output}");
    assert_eq!(code, None, "killed by a signal:\n{output}");
    // The reaper, in its own process group, applies purge and says so in
    // its log once done.
    let runs = shop.root.join("target/e2e/runs");
    let log = || -> String {
        runs.read_dir_utf8()
            .unwrap()
            .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("reaper.log")).ok())
            .collect()
    };
    for _ in 0..120 {
        if log().contains("applied purge") || log().contains("error") {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let log = log();
    assert!(
        log.contains("went away without finishing: applying purge"),
        "{log}"
    );
    assert!(log.contains("applied purge to project"), "{log}");
    let left = shop.leftovers();
    assert!(left.is_empty(), "{left}\n{output}");
    // The next run of the project waits for the reaper (which holds the
    // project's lock until it is done), then runs.
    let (code, out) = shop.run(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
}

/// `docker run -d` of a sleeping container labelled as project `project`'s,
/// with the owner labels a purge run puts (`run` as `dev.cargo-e2e.run`).
fn labelled_container(project: &str, run: &str, created: u64) {
    let uid = nix::unistd::getuid().as_raw().to_string();
    let labels = [
        format!("com.docker.compose.project={project}"),
        format!("dev.cargo-e2e.run={run}"),
        format!("dev.cargo-e2e.user={uid}"),
        format!("dev.cargo-e2e.created={created}"),
    ];
    let mut args = vec!["run".to_owned(), "-d".into()];
    for l in labels {
        args.extend(["--label".to_owned(), l]);
    }
    args.extend([BASE_IMAGE.to_owned(), "sleep".into(), "infinity".into()]);
    compose::docker(args).output(&repo_root()).unwrap();
}

#[test]
fn reap_removes_only_what_dead_runs_left() {
    if !ready_or_skip("reap_removes_only_what_dead_runs_left") {
        return;
    }
    let id = std::process::id();
    let dead = format!("t{id}-reap-dead");
    let alive = format!("t{id}-reap-alive");
    let young = format!("t{id}-reap-young");
    let foreign = format!("t{id}-reap-foreign");
    let cleanup = [&dead, &alive, &young, &foreign].map(|p| p.to_string());
    struct Clean([String; 4]);
    impl Drop for Clean {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = compose::remove_project(p);
            }
        }
    }
    let _clean = Clean(cleanup);
    let here = pipeline::reap::Owner::current().unwrap();
    let gone = pipeline::reap::Owner {
        pid: 999_999,
        start: 1,
        ..here.clone()
    };
    let now = pipeline::config::unix_time();
    labelled_container(&dead, &gone.label(), now - 3600);
    labelled_container(&alive, &here.label(), now - 3600);
    labelled_container(&young, &gone.label(), now - 10);
    // A developer's own container of a project, without our labels.
    compose::docker([
        "run",
        "-d",
        "--label",
        &format!("com.docker.compose.project={foreign}"),
        BASE_IMAGE,
        "sleep",
        "infinity",
    ])
    .output(&repo_root())
    .unwrap();
    let run = |args: &[&str]| support::outcome(duct::cmd(BIN, args));
    let line = |out: &str, p: &str| {
        out.lines()
            .find(|l| l.starts_with(p))
            .unwrap_or_default()
            .to_owned()
    };
    let (code, out) = run(&["reap", "--dry-run"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        line(&out, &dead).contains("would remove: its run is gone"),
        "{out}"
    );
    assert!(
        line(&out, &alive).contains("kept: its run is alive"),
        "{out}"
    );
    assert!(
        line(&out, &young).contains("kept: its run is gone, but younger than 10m"),
        "{out}"
    );
    assert!(
        line(&out, &foreign).is_empty(),
        "not ours, not listed:\n{out}"
    );
    assert!(
        !compose::leftovers(&dead).unwrap().is_empty(),
        "a dry run removes nothing"
    );
    let (code, out) = run(&["reap"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        line(&out, &dead).contains("removed: its run is gone"),
        "{out}"
    );
    assert!(compose::leftovers(&dead).unwrap().is_empty());
    for kept in [&alive, &young, &foreign] {
        assert!(
            !compose::leftovers(kept).unwrap().is_empty(),
            "{kept} was removed:\n{out}"
        );
    }
}

#[test]
fn a_project_with_two_networks_of_one_name_is_repaired_by_the_next_run() {
    let Some(shop) = Shop::ready("dupnet") else {
        return;
    };
    // What two racing runs once left: two networks named <project>_default,
    // made here through the engine's API (the CLI refuses a duplicate name).
    let body = format!(
        r#"{{"Name":"{p}_default","CheckDuplicate":false,"Labels":{{"com.docker.compose.project":"{p}","com.docker.compose.network":"default","com.docker.compose.version":"2.40.3"}}}}"#,
        p = shop.project
    );
    let create = || {
        duct::cmd!(
            "curl",
            "--silent",
            "--write-out",
            "\n%{http_code}",
            "--unix-socket",
            "/var/run/docker.sock",
            "-H",
            "Content-Type: application/json",
            "-d",
            &body,
            "http://localhost/networks/create"
        )
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap()
    };
    let first = create();
    assert!(
        String::from_utf8_lossy(&first.stdout).ends_with("\n201"),
        "network create: {first:?}"
    );
    let second = create();
    let answer = String::from_utf8_lossy(&second.stdout).into_owned();
    // Engine 25 and newer refuse a second network of one name whatever
    // `CheckDuplicate` says (Engine 28 answers 409): the state cannot arise
    // there, and that is what this test then proves.
    if answer.ends_with("\n409") {
        assert!(answer.contains("already exists"), "{answer}");
        assert_eq!(shop.leftovers().networks.len(), 1);
        eprintln!(
            "this engine refuses duplicate network names itself (409: {}); nothing to repair",
            answer.lines().next().unwrap_or_default()
        );
        let (code, out) = shop.run(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
        assert_eq!(code, Some(0), "{out}");
        assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
        return;
    }
    assert!(answer.ends_with("\n201"), "network create: {answer}");
    assert_eq!(shop.leftovers().networks.len(), 2);
    let (code, out) = shop.run(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
    let report = shop.report();
    let up = report.containers.as_ref().expect("up ran");
    assert_eq!(up.repaired_networks.len(), 2, "{report}");
    assert!(
        phase(&report, Phase::Up)
            .note
            .contains("repaired: removed duplicate networks"),
        "{report}"
    );
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

/// The full ID of `image` on the engine.
fn image_id(image: &str) -> String {
    compose::docker(["image", "inspect", "--format", "{{.Id}}", image])
        .text(&repo_root())
        .unwrap()
        .trim()
        .to_owned()
}

/// Whether the engine holds anything of a project whose name starts with
/// `prefix` (under CI the run adds a pid and a time to the configured name).
fn anything_of(prefix: &str) -> Vec<String> {
    let here = repo_root();
    let list = |args: &[&str]| -> Vec<String> {
        compose::docker(args.iter().copied())
            .text(&here)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    };
    let mut all = list(&[
        "ps",
        "--all",
        "--format",
        "{{.Label \"com.docker.compose.project\"}} container {{.Names}}",
    ]);
    all.extend(list(&["network", "ls", "--format", "{{.Name}}"]));
    all.extend(list(&["volume", "ls", "--format", "{{.Name}}"]));
    all
}

#[test]
fn kill_9_in_build_up_or_test_under_ci_leaves_nothing() {
    let Some(shop) = Shop::ready("kill9") else {
        return;
    };
    for (phase, trigger) in [
        ("build", "build      started"),
        ("up", "up         waiting"),
        ("test", "test       started"),
    ] {
        let mut killed = false;
        // Under CI: a project of its own per run, and purge.
        let run = shop.cargo_ci(&["e2e"]);
        let (code, output) = support::watch(run, |line| {
            let now = !killed && line.contains(trigger);
            killed |= now;
            now.then_some(nix::sys::signal::Signal::SIGKILL)
        });
        assert!(killed, "{phase}: never saw `{trigger}`:\n{output}");
        assert_eq!(code, None, "{phase}: killed by a signal:\n{output}");
        let start = Instant::now();
        let mut left = anything_of(&shop.project);
        while !left.is_empty() && start.elapsed() < Duration::from_secs(15) {
            std::thread::sleep(Duration::from_millis(250));
            left = anything_of(&shop.project);
        }
        assert!(
            left.is_empty(),
            "{phase}: 15 s after kill -9 the engine still holds {left:?}\n{output}"
        );
    }
    // A stable-project run afterwards passes.
    let (code, out) = shop.run(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn two_runs_of_one_project_take_turns() {
    let Some(shop) = Shop::ready("turns") else {
        return;
    };
    let args = ["e2e", "--teardown", "stop", "-E", "test(proxy)"];
    let mut second: Option<std::thread::JoinHandle<(Option<i32>, String)>> = None;
    let mut no_wait = None;
    let (code, first) = support::watch(shop.cargo(&args), |line| {
        if second.is_none() && line.contains("up         started") {
            // The project is in use: --no-wait is told by whom, at once...
            no_wait = Some(shop.run(&["e2e", "--no-wait", "-E", "test(proxy)"]));
            // ...and a plain run waits its turn.
            let run = shop.cargo(&args);
            second = Some(std::thread::spawn(move || {
                let out = run.stdout_capture().run().unwrap();
                (
                    out.status.code(),
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                )
            }));
        }
        None
    });
    assert_eq!(code, Some(0), "{first}");
    let (nw_code, nw_out) = no_wait.expect("the first run reached up");
    assert_eq!(nw_code, Some(3), "{nw_out}");
    assert!(
        nw_out.contains(&format!("project {} is in use by run", shop.project)),
        "{nw_out}"
    );
    let (code, out) = second.unwrap().join().unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("waiting (Ctrl-C gives up)"), "{out}");
    // Each run has its own folder.
    let runs: Vec<String> = shop
        .root
        .join("target/e2e/runs")
        .read_dir_utf8()
        .unwrap()
        .map(|e| e.unwrap().file_name().to_owned())
        .collect();
    assert_eq!(
        runs.len(),
        2,
        "the two green runs (the refused one stopped before it made one): {runs:?}"
    );
    shop.purge_and_check(&["-E", "test(proxy)"]);
}

#[test]
fn too_little_disk_fails_preflight_before_any_container() {
    let Some(shop) = Shop::ready("disk") else {
        return;
    };
    shop.append_config("disk:\n  min_free: 1PiB\n");
    let (code, out) = shop.run(&["e2e"]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("under disk.min_free (1.0 PiB"), "{out}");
    assert!(
        out.contains("docker builder prune"),
        "the fix is named:\n{out}"
    );
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

/// The engine's BuildKit cache, in bytes (`docker system df`).
fn build_cache_bytes() -> u64 {
    let text = compose::docker(["system", "df", "--format", "{{.Type}}\t{{.Size}}"])
        .text(&repo_root())
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("Build Cache\t"))
        .and_then(|s| build_context::parse_size(s).ok())
        .unwrap_or(0)
}

// Tests named `engine_*` disturb the engine every test shares: nextest runs
// each alone (`threads-required` in .config/nextest.toml).

#[test]
fn engine_build_cache_budget_prunes_it_down() {
    let Some(shop) = Shop::ready("cachebudget") else {
        return;
    };
    // Something to prune: the shop's own build has just filled the cache.
    let (code, out) = shop.run(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
    let before = build_cache_bytes();
    assert!(before > 0, "no build cache to prune");
    let budget = before / 10 * 9;
    shop.append_config(&format!("disk:\n  build_cache: {budget}\n"));
    let (code, out) = shop.run(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
    let report = shop.report();
    assert!(
        report
            .disk
            .iter()
            .any(|l| l.starts_with("build cache kept under")),
        "{:?}",
        report.disk
    );
    let after = build_cache_bytes();
    assert!(
        after <= budget,
        "build cache {after} B after the run, over its budget {budget} B (was {before} B)"
    );
}

/// Stops the shared dockerd and starts it again with `.ci/engine`; the
/// guard makes sure the same engine (20.10, 28, ...) answers again whatever
/// the test did: with nothing answering, `.ci/engine` alone would start 20.10.
struct EngineBack(String);

impl EngineBack {
    fn new() -> EngineBack {
        let which = duct::cmd("bash", [repo_root().join(".ci/engine").as_str(), "which"])
            .read()
            .unwrap();
        assert!(
            !which.trim().is_empty(),
            "no engine answers before the test"
        );
        EngineBack(which.trim().to_owned())
    }
}

impl Drop for EngineBack {
    fn drop(&mut self) {
        let _ = duct::cmd("bash", [repo_root().join(".ci/engine").as_str()])
            .env("E2E_ENGINE", &self.0)
            .stdout_null()
            .stderr_null()
            .run();
    }
}

#[test]
fn engine_restart_during_up_fails_the_run_and_the_next_recovers() {
    if !ready_or_skip("engine_restart_during_up_fails_the_run_and_the_next_recovers") {
        return;
    }
    // It stops the machine's dockerd: only where that is allowed (`.ci/run`
    // sets it; a developer's `make test` leaves their engine alone).
    if std::env::var("E2E_ENGINE_RESTART").as_deref() != Ok("1") {
        eprintln!(
            "skipped: this test restarts the machine's dockerd; set E2E_ENGINE_RESTART=1 to allow it"
        );
        return;
    }
    let shop = Shop::new("restart");
    shop.init();
    let _back = EngineBack::new();
    let mut stopped = None;
    let (code, output) = support::watch(shop.cargo(&["e2e", "--teardown", "purge"]), |line| {
        if stopped.is_none() && line.contains("up         waiting") {
            let pid = duct::cmd!("pidof", "dockerd").read().unwrap();
            let pid: i32 = pid.split_whitespace().next().unwrap().parse().unwrap();
            let pid = nix::unistd::Pid::from_raw(pid);
            nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
            stopped = Some(pid);
        }
        None
    });
    let pid = stopped.unwrap_or_else(|| panic!("never saw up waiting:\n{output}"));
    // The old daemon finishes its shutdown before a new one may start.
    while nix::sys::signal::kill(pid, None).is_ok() {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(code, Some(3), "{output}");
    assert!(output.contains("the Docker engine went away"), "{output}");
    drop(_back);
    // Back up: the next run takes over what the interrupted one left.
    let (code, out) = shop.run(&["e2e", "--teardown", "purge", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(shop.leftovers().is_empty(), "{}", shop.leftovers());
}

#[test]
fn an_image_budget_removes_the_workspace_s_images_beyond_it() {
    let Some(shop) = Shop::ready("imagebudget") else {
        return;
    };
    // Any image is over a one-byte budget: every one no container uses goes.
    shop.append_config("disk:\n  images: 1\n");
    // `down` leaves the images and no container that uses them.
    let (code, out) = shop.run(&["e2e", "--teardown", "down", "-E", "test(proxy)"]);
    assert_eq!(code, Some(0), "{out}");
    let report = shop.report();
    assert!(
        report
            .disk
            .iter()
            .any(|l| l.starts_with("images of this workspace's projects:")
                && !l.contains(" 0 removed")),
        "{:?}",
        report.disk
    );
    let left = shop.leftovers();
    assert!(left.images.is_empty(), "{left}");
}
