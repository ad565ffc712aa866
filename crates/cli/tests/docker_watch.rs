//! `cargo e2e --watch` driven with real file changes, on two fixtures from
//! workspaces that are not this one: tests/fixtures/watch (a service built
//! FROM the Debian base that serves page.txt, which its Dockerfile copies,
//! and a test that checks it serves what the file says) and
//! tests/fixtures/watch-staged (a static binary built on the host and staged
//! into a FROM scratch image), tests/fixtures/watch-live (Compose's
//! `develop.watch` rules and a bind mount) and tests/fixtures/flask-redis
//! (awesome-compose's sample with Debian-based stand-ins). Each change must do exactly what it should,
//! checked on the engine (container and image IDs); Ctrl-C at any point and
//! SIGKILL leave what the policy promises.
//! Long because it is one test binary for the watch fixtures' tests, which
//! share their scripted-session helpers: each binary more is one more link.

mod support;

use std::cell::Cell;

use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_cargo-e2e");
const BASE_IMAGE: &str = "debian:bookworm-slim";

/// The ID of the project's container of `service`.
fn container(project: &str, service: &str) -> String {
    let filter = [
        format!("label=com.docker.compose.project={project}"),
        format!("label=com.docker.compose.service={service}"),
    ];
    compose::docker([
        "ps",
        "-q",
        "--no-trunc",
        "--filter",
        &filter[0],
        "--filter",
        &filter[1],
    ])
    .text(camino::Utf8Path::new("/"))
    .unwrap()
}

/// The ID of the image `up` runs for the project's `service`.
fn image(project: &str, service: &str) -> String {
    compose::docker([
        "image",
        "inspect",
        "--format",
        "{{.Id}}",
        &format!("{project}-{service}"),
    ])
    .text(camino::Utf8Path::new("/"))
    .unwrap()
}

/// `cargo e2e --watch --project PROJECT --teardown POLICY EXTRA...` in the
/// fixture; `port` is the variable its compose file publishes on.
fn watch_cmd(
    fixture: &support::Fixture,
    port: &str,
    project: &str,
    policy: &str,
    extra: &[&str],
) -> duct::Expression {
    let mut args = vec![
        "e2e",
        "e2e",
        "--watch",
        "--project",
        project,
        "--teardown",
        policy,
    ];
    args.extend_from_slice(extra);
    fixture
        .cargo(&args)
        .env(port, support::free_port().to_string())
}

/// One step of a scripted watch: on the first output line (after the
/// previous step's) that contains `when`, `then` acts, and may return the
/// signal to send the watch.
struct Step<'a> {
    when: &'a str,
    then: Box<dyn FnMut() -> Option<Signal> + 'a>,
}

fn on<'a>(when: &'a str, then: impl FnMut() -> Option<Signal> + 'a) -> Step<'a> {
    Step {
        when,
        then: Box::new(then),
    }
}

/// What a scripted watch did.
struct Watched {
    code: Option<i32>,
    output: String,
    /// The cycles' summary lines (`cycle N done in ...`), the first run's first.
    done: Vec<String>,
    /// How many steps ran.
    steps: usize,
}

impl Watched {
    fn cycles(&self) -> String {
        self.done.join("\n")
    }
}

/// Drives a watch through `steps`, in order (five minutes at most).
fn script(expr: duct::Expression, mut steps: Vec<Step>) -> Watched {
    let mut at = 0;
    let mut done = Vec::new();
    let (code, output) = support::watch_until(expr, std::time::Duration::from_secs(300), |line| {
        if line.starts_with("cycle ") && line.contains(" done in ") {
            done.push(line.trim_end().to_owned());
        }
        let step = steps.get_mut(at)?;
        if !line.contains(step.when) {
            return None;
        }
        at += 1;
        (step.then)()
    });
    Watched {
        code,
        output,
        done,
        steps: at,
    }
}

/// Whether a process with this exact command line runs on this machine.
fn running(command_line: &str) -> bool {
    running_with(&format!("^{command_line}$"))
}

/// Whether a process whose command line matches `pattern` (pgrep's) runs.
fn running_with(pattern: &str) -> bool {
    duct::cmd("pgrep", ["-f", pattern])
        .stdout_null()
        .unchecked()
        .run()
        .is_ok_and(|o| o.status.success())
}

/// The status BuildKit's own history gives the newest build of `project`
/// (`completed`, `canceled`, `error`), where Compose builds through bake
/// (buildx keeps the history): `Ok(None)` without buildx (Engine 20.10 here),
/// an error where buildx is there but no build of the project is found.
fn newest_build_status(project: &str) -> Result<Option<String>, String> {
    let here = camino::Utf8Path::new(".");
    let Ok(list) = compose::docker(["buildx", "history", "ls", "--format", "json"]).text(here)
    else {
        return Ok(None);
    };
    // Newest first; other tests build meanwhile (the transfer test, a dozen).
    for line in list.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let Some(id) = entry["ref"].as_str().and_then(|r| r.rsplit('/').next()) else {
            continue;
        };
        let shown = compose::docker(["buildx", "history", "inspect", id, "--format", "json"])
            .text(here)
            .map_err(|e| e.to_string())?;
        let build: serde_json::Value = serde_json::from_str(&shown).map_err(|e| e.to_string())?;
        // Labels are a list of {Name, Value}.
        let mine = build["Labels"].as_array().is_some_and(|labels| {
            labels
                .iter()
                .any(|l| l["Name"] == "com.docker.compose.project" && l["Value"] == project)
        });
        if mine {
            return Ok(build["Status"].as_str().map(str::to_owned));
        }
    }
    Err(format!("no build of {project} in buildx history:\n{list}"))
}

/// A `RUN` step no other process on this machine runs: `sleep 120.<pid>`
/// (a plain `sleep 120` in someone's shell once passed for the step).
fn slow_step() -> String {
    format!("sleep 120.{}", std::process::id())
}

/// Waits up to a minute for `done` to hold.
fn wait_for(done: impl Fn() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if done() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    false
}

/// Waits until the engine holds what `policy` promises for `project` (a
/// reaper acts a moment after the run is gone), or a minute passed.
fn promise_kept(project: &str, policy: compose::Policy) -> Option<String> {
    let broken = || compose::leftovers(project).unwrap().broken_promise(policy);
    wait_for(|| broken().is_none());
    broken()
}

/// The watch fixture in a workspace of its own and a project name for
/// `test`, or `None` (said) when the engine or the Debian base is missing.
fn page_fixture(test: &str, suffix: &str) -> Option<(support::Fixture, String)> {
    compose::testing::image_or_skip(test, BASE_IMAGE).then(|| {
        (
            support::Fixture::new("watch", BIN),
            format!("t{}-{suffix}", std::process::id()),
        )
    })
}

#[test]
fn each_change_does_what_it_should_and_ctrl_c_ends_with_the_policy() {
    let Some((fixture, project)) = page_fixture(
        "each_change_does_what_it_should_and_ctrl_c_ends_with_the_policy",
        "watch",
    ) else {
        return;
    };
    let root = &fixture.root;
    let write = |path: &str, text: &str| std::fs::write(root.join(path), text).unwrap();
    let dockerfile = std::fs::read_to_string(root.join("docker/Dockerfile")).unwrap();
    let test_file = std::fs::read_to_string(root.join("page-e2e/tests/page.rs")).unwrap();
    // (container, image) when the first run is up, after the page change, after the test change.
    let seen = std::cell::RefCell::new(Vec::new());
    let look = || {
        seen.borrow_mut()
            .push((container(&project, "page"), image(&project, "page")))
    };
    let w = script(
        watch_cmd(&fixture, "PAGE_PORT", &project, "purge", &[]),
        vec![
            // The first run is up: a file nothing uses.
            on("watching ", || {
                look();
                write("notes.md", "more notes\n");
                None
            }),
            // A burst of writes to the page: one cycle.
            on("nothing uses notes.md", || {
                for text in ["draft\n", "second draft\n", "second page\n"] {
                    write("page.txt", text);
                }
                None
            }),
            on("cycle 1 done", || {
                look();
                write(
                    "page-e2e/tests/page.rs",
                    &format!("{test_file}// a comment\n"),
                );
                None
            }),
            on("cycle 2 done", || {
                look();
                write(
                    "docker/Dockerfile",
                    &dockerfile.replace("COPY page.txt", "COPY missing.txt"),
                );
                None
            }),
            on("cycle 3 done", || {
                write("docker/Dockerfile", &dockerfile);
                None
            }),
            on("cycle 4 done", || Some(Signal::SIGINT)),
        ],
    );
    let (cycles, output, done) = (w.cycles(), &w.output, &w.done);
    println!("{cycles}");
    assert_eq!(w.steps, 6, "stopped at step {}:\n{output}", w.steps);
    assert_eq!(w.code, Some(130), "Ctrl-C ends the watch: {output}");
    // The first run, then exactly the four cycles (one for the burst).
    assert_eq!(done.len(), 5, "{cycles}");
    assert!(
        done[1].contains("page.txt (sent by page's build)") && done[1].contains("built: page"),
        "{cycles}"
    );
    assert!(
        done[1].contains("1 passed, 0 failed"),
        "the new page is served: {cycles}"
    );
    // perl as PID 1 ignores SIGTERM: its old container is not given the grace.
    assert!(
        output.contains("old containers killed at once (PID 1 ignores its stop signal): page"),
        "{output}"
    );
    assert!(
        done[2].contains("tests page-e2e")
            && done[2].contains("built: nothing")
            && done[2].contains("containers recreated or started: 0"),
        "{cycles}"
    );
    assert!(
        done[3].contains("failed, waiting for the next change"),
        "{cycles}"
    );
    assert!(
        done[4].contains("1 passed, 0 failed"),
        "recovered: {cycles}"
    );
    // On the engine: the page change replaced container and image, the test change neither.
    let seen = seen.borrow();
    assert_ne!(seen[0].0, seen[1].0, "{cycles}");
    assert_ne!(seen[0].1, seen[1].1, "{cycles}");
    assert_eq!(seen[1], seen[2], "{cycles}");
    // Ctrl-C applied the policy: purge leaves nothing.
    let left = compose::leftovers(&project).unwrap();
    assert!(left.is_empty(), "{left:?}\n{output}");
}

#[test]
fn config_changes_new_folders_and_ctrl_c_during_a_build() {
    let Some((fixture, project)) = page_fixture(
        "config_changes_new_folders_and_ctrl_c_during_a_build",
        "watchbuild",
    ) else {
        return;
    };
    let root = &fixture.root;
    let write = |path: &str, text: &str| std::fs::write(root.join(path), text).unwrap();
    let dockerfile = std::fs::read_to_string(root.join("docker/Dockerfile")).unwrap();
    let config = std::fs::read_to_string(root.join("e2e.yaml")).unwrap();
    let in_build = Cell::new(false);
    let step = slow_step();
    let w = script(
        watch_cmd(&fixture, "PAGE_PORT", &project, "purge", &[]),
        vec![
            // A top-level folder made after the start, with a file in it.
            on("watching ", || {
                std::fs::create_dir(root.join("later")).unwrap();
                write("later/first.md", "1\n");
                None
            }),
            // Seen only if the new folder is watched.
            on("later/first.md", || {
                write("later/second.md", "2\n");
                None
            }),
            // A config that does not load: said, and nothing runs.
            on("later/second.md", || {
                write("e2e.yaml", &format!("{config}readiness: [\n"));
                None
            }),
            // One that loads is used: the page is judged by a line it never says.
            on("fix it and save again", || {
                write(
                    "e2e.yaml",
                    &config
                        .replace("{ log: listening }", "{ log: never said }")
                        .replace("readiness:\n", "readiness:\n  timeout_s: 3\n"),
                );
                None
            }),
            on("cycle 1 done", || {
                write("e2e.yaml", &config);
                None
            }),
            // A build that takes a minute: Ctrl-C lands in it.
            on("cycle 2 done", || {
                write(
                    "docker/Dockerfile",
                    &dockerfile.replace(
                        "COPY page.txt /srv/page.txt",
                        &format!("COPY page.txt /srv/page.txt\nRUN {step}"),
                    ),
                );
                None
            }),
            // Once BuildKit runs the slow step (its process is this
            // machine's: the engine is local).
            on("build      started", || {
                in_build.set(wait_for(|| running(&step)));
                in_build.get().then_some(Signal::SIGINT)
            }),
        ],
    );
    let (cycles, output, done) = (w.cycles(), &w.output, &w.done);
    assert_eq!(w.steps, 7, "stopped at step {}:\n{output}", w.steps);
    assert!(in_build.get(), "the slow step never ran:\n{output}");
    assert_eq!(w.code, Some(130), "{output}");
    assert!(
        done[1].contains("e2e.yaml (config)") && done[1].contains("never said"),
        "the changed config was used: {cycles}"
    );
    assert!(done[2].contains("1 passed, 0 failed"), "{cycles}");
    assert!(output.contains("watch ended: purge done"), "{output}");
    let step_gone = wait_for(|| !running(&step));
    // The engine's own account: bake's build was cancelled, not completed later.
    let status = newest_build_status(&project);
    assert!(
        step_gone,
        "the build's step still runs (BuildKit's history says {status:?}); \
         processes now:\n{}",
        duct::cmd!("ps", "-eo", "pid,pgid,etimes,args")
            .read()
            .unwrap_or_default()
    );
    if let Some(status) = status.unwrap() {
        assert_eq!(status, "canceled", "BuildKit's history of the build");
    }
    let broken = promise_kept(&project, compose::Policy::Purge);
    assert_eq!(broken, None, "{output}");
}

#[test]
fn only_the_failed_tests_rerun_and_ctrl_c_during_the_tests_ends_with_the_policy() {
    let Some((fixture, project)) = page_fixture(
        "only_the_failed_tests_rerun_and_ctrl_c_during_the_tests_ends_with_the_policy",
        "watchtests",
    ) else {
        return;
    };
    let root = &fixture.root;
    let page = |text: &str| std::fs::write(root.join("page.txt"), text).unwrap();
    let another_check = |body: &str| {
        let test = format!("#[test]\nfn another_check() {{\n    {body}\n}}\n");
        std::fs::write(root.join("page-e2e/tests/more.rs"), test).unwrap();
    };
    let w = script(
        watch_cmd(&fixture, "PAGE_PORT", &project, "down", &["--only-failed"]),
        vec![
            on("watching ", || {
                another_check("assert_eq!(1 + 1, 3, \"a failing check\");");
                None
            }),
            // Both tests ran, one failed: the next cycle runs only it.
            on("cycle 1 done", || {
                page("a new page\n");
                None
            }),
            on("cycle 2 done", || {
                another_check("assert_eq!(1 + 1, 2);");
                None
            }),
            // It passes: the next cycle runs them all again.
            on("cycle 3 done", || {
                page("another page\n");
                None
            }),
            on("cycle 4 done", || {
                another_check("std::thread::sleep(std::time::Duration::from_secs(120));");
                None
            }),
            // nextest has started the slow test: Ctrl-C lands in the tests.
            on("Starting 2 tests", || Some(Signal::SIGINT)),
        ],
    );
    let (cycles, output, done) = (w.cycles(), &w.output, &w.done);
    assert_eq!(w.steps, 6, "stopped at step {}:\n{output}", w.steps);
    assert_eq!(w.code, Some(130), "{output}");
    assert!(
        done[1].contains("1 passed, 1 failed; failed: page-e2e::more another_check"),
        "{cycles}"
    );
    assert!(
        output.contains(
            "cycle 2: page.txt (sent by page's build); running only the tests that failed last"
        ),
        "{output}"
    );
    assert!(
        done[2].contains("built: page") && done[2].contains("0 passed, 1 failed"),
        "{cycles}"
    );
    assert!(
        done[3].contains("1 passed, 0 failed"),
        "only the fixed one ran: {cycles}"
    );
    assert!(
        done[4].contains("2 passed, 0 failed"),
        "all again: {cycles}"
    );
    assert!(output.contains("watch ended: down done"), "{output}");
    let broken = promise_kept(&project, compose::Policy::Down);
    assert_eq!(broken, None, "{output}");
    // `down` keeps the image: removing it is the test's own cleanup.
    let _ = compose::docker(["image", "rm", "-f", &format!("{project}-page")])
        .text(camino::Utf8Path::new("/"));
}

#[test]
fn a_watch_killed_outright_leaves_what_its_policy_says() {
    let Some((fixture, project)) = page_fixture(
        "a_watch_killed_outright_leaves_what_its_policy_says",
        "watchkill",
    ) else {
        return;
    };
    let w = script(
        watch_cmd(&fixture, "PAGE_PORT", &project, "purge", &[]),
        vec![on("watching ", || Some(Signal::SIGKILL))],
    );
    assert_eq!(w.steps, 1, "{}", w.output);
    assert_eq!(w.code, None, "killed by a signal: {}", w.output);
    // The session's reaper saw it go and applied the policy.
    let broken = promise_kept(&project, compose::Policy::Purge);
    assert_eq!(broken, None, "{}", w.output);
}

/// SIGKILL of the tool while BuildKit runs a slow step: the run's reaper
/// stops the build's process group (Compose and buildx get the SIGTERM a
/// Ctrl-C would send), so the step, buildx and Compose are gone, the
/// engine's history says cancelled, and the policy holds.
#[test]
fn sigkill_during_a_slow_build_stops_the_build_in_the_engine() {
    let Some((fixture, project)) = page_fixture(
        "sigkill_during_a_slow_build_stops_the_build_in_the_engine",
        "killbuild",
    ) else {
        return;
    };
    let root = &fixture.root;
    let dockerfile = root.join("docker/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let step = slow_step();
    std::fs::write(
        &dockerfile,
        text.replace(
            "COPY page.txt /srv/page.txt",
            &format!("COPY page.txt /srv/page.txt\nRUN {step}"),
        ),
    )
    .unwrap();
    let args = ["e2e", "--project", &project, "--teardown", "purge"];
    let run = fixture
        .cargo(&args)
        .env("PAGE_PORT", support::free_port().to_string());
    let mut killed = false;
    let (code, output) = support::watch(run, |line| {
        if killed || !line.contains("build      started") {
            return None;
        }
        killed = wait_for(|| running(&step));
        killed.then_some(Signal::SIGKILL)
    });
    assert!(killed, "the slow step never ran:\n{output}");
    assert_eq!(code, None, "killed by a signal:\n{output}");
    // Compose names the project; bake, the fixture's folder (`--allow fs.read=...`).
    let compose_of_it = format!("-p {project} ");
    let gone = wait_for(|| {
        !running(&step) && !running_with(&compose_of_it) && !running_with(root.as_str())
    });
    assert!(
        gone,
        "still running a minute after kill -9:\n{}",
        duct::cmd!("ps", "-eo", "pid,pgid,etimes,args")
            .read()
            .unwrap_or_default()
    );
    if let Some(status) = newest_build_status(&project).unwrap() {
        assert_eq!(status, "canceled", "BuildKit's history of the build");
    }
    let broken = promise_kept(&project, compose::Policy::Purge);
    assert_eq!(broken, None, "{output}");
}

/// A change to a staged binary's sources rebuilds and restages it; the
/// image follows only when its bytes changed.
#[test]
fn a_staged_binary_s_image_follows_only_when_its_bytes_changed() {
    let test = "a_staged_binary_s_image_follows_only_when_its_bytes_changed";
    if compose::testing::engine_or_skip(test).is_none() {
        return;
    }
    let fixture = support::Fixture::new("watch-staged", BIN);
    let root = &fixture.root;
    let project = format!("t{}-watchstaged", std::process::id());
    let main_rs = root.join("hello/src/main.rs");
    let source = std::fs::read_to_string(&main_rs).unwrap();
    let test_rs = root.join("hello-e2e/tests/hello.rs");
    let test_source = std::fs::read_to_string(&test_rs).unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let look = || {
        seen.borrow_mut()
            .push((container(&project, "hello"), image(&project, "hello")))
    };
    let w = script(
        watch_cmd(&fixture, "HELLO_PORT", &project, "purge", &[]),
        vec![
            // A comment: cargo builds again, the bytes stay.
            on("watching ", || {
                look();
                std::fs::write(&main_rs, format!("{source}// a comment\n")).unwrap();
                None
            }),
            on("cycle 1 done", || {
                look();
                let changed = source.replace("hello from the staged binary", "hello again");
                std::fs::write(&main_rs, changed).unwrap();
                None
            }),
            // A change made while cycle 2 runs is not lost: it starts cycle 3.
            on("cycle 2: ", || {
                std::fs::write(&test_rs, format!("{test_source}// a comment\n")).unwrap();
                None
            }),
            on("cycle 2 done", || {
                look();
                None
            }),
            on("cycle 3 done", || Some(Signal::SIGINT)),
        ],
    );
    let (cycles, output, done) = (w.cycles(), &w.output, &w.done);
    assert_eq!(w.steps, 5, "stopped at step {}:\n{output}", w.steps);
    assert_eq!(w.code, Some(130), "{output}");
    assert!(
        output.contains("staged binaries: 0 of 1 changed"),
        "the comment left the binary as it was: {output}"
    );
    // No test source changed in cycles 1 and 2: their test binaries ran as built.
    assert_eq!(
        output
            .matches("test binaries as an earlier cycle built them")
            .count(),
        2,
        "{output}"
    );
    assert!(
        done[1].contains("staged binary hello")
            && done[1].contains("built: nothing; containers recreated or started: 0")
            && done[1].contains("1 passed, 0 failed"),
        "{cycles}"
    );
    let seen = seen.borrow();
    assert_eq!(
        seen[0], seen[1],
        "no new image, no new container:\n{cycles}"
    );
    assert!(
        output.contains("staged binaries: 1 of 1 changed"),
        "{output}"
    );
    assert!(
        done[2].contains("built: hello; containers recreated or started: 1")
            && done[2].contains("1 passed, 0 failed"),
        "{cycles}"
    );
    assert_ne!(seen[1].1, seen[2].1, "a new image:\n{cycles}");
    assert_ne!(seen[1].0, seen[2].0, "a new container:\n{cycles}");
    assert!(
        done[3].contains("hello-e2e/tests/hello.rs (tests hello-e2e)")
            && done[3].contains("built: nothing"),
        "the change made during cycle 2: {cycles}"
    );
    let broken = promise_kept(&project, compose::Policy::Purge);
    assert_eq!(broken, None, "{output}");
}

/// Changes that need no image, on tests/fixtures/watch-live: Compose's
/// `develop.watch` rules (`sync+restart` of page.txt, which the service reads
/// at start; `sync` of static/, read at each request; a removal) and a bind
/// mount whose service reloads by itself. No build and no new container;
/// each cycle's tests see the new content.
#[test]
fn develop_watch_rules_and_bind_mounts_update_the_running_containers() {
    let test = "develop_watch_rules_and_bind_mounts_update_the_running_containers";
    if !compose::testing::image_or_skip(test, BASE_IMAGE) {
        return;
    }
    let fixture = support::Fixture::new("watch-live", BIN);
    let root = &fixture.root;
    let project = format!("t{}-watchlive", std::process::id());
    let write = |path: &str, text: &str| std::fs::write(root.join(path), text).unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let look = || {
        seen.borrow_mut().push((
            container(&project, "page"),
            container(&project, "mounted"),
            image(&project, "page"),
        ))
    };
    let in_page = |path: &str| {
        let id = container(&project, "page");
        compose::docker(["exec", &id, "cat", path])
            .text(camino::Utf8Path::new("/"))
            .ok()
    };
    let hooked = std::cell::RefCell::new(None);
    // What git ignores and nothing uses is not watched at all.
    std::fs::create_dir_all(root.join("node_modules/pkg/lib")).unwrap();
    let old_was_there = Cell::new(false);
    let old_gone = Cell::new(false);
    let w = script(
        watch_cmd(&fixture, "PAGE_PORT", &project, "purge", &[])
            .env("LIVE_PORT", support::free_port().to_string()),
        vec![
            // A burst of an unused file and a synced one: the synced one's cycle.
            on("watching ", || {
                look();
                write("notes.md", "notes\n");
                write("node_modules/pkg/lib/index.js", "x\n");
                write("page.txt", "second page\n");
                None
            }),
            on("cycle 1 done", || {
                look();
                write("static/note.txt", "another note\n");
                None
            }),
            on("cycle 2 done", || {
                old_was_there.set(in_page("/srv/static/old.txt").is_some());
                std::fs::remove_file(root.join("static/old.txt")).unwrap();
                None
            }),
            on("cycle 3 done", || {
                old_gone.set(in_page("/srv/static/old.txt").is_none());
                write("live/app.txt", "app v2\n");
                None
            }),
            on("cycle 4 done", || {
                write("hook.txt", "hook v2\n");
                None
            }),
            on("cycle 5 done", || {
                *hooked.borrow_mut() = in_page("/srv/hooked.txt");
                write("live/conf.txt", "conf v2\n");
                None
            }),
            on("cycle 6 done", || {
                look();
                Some(Signal::SIGINT)
            }),
        ],
    );
    let (cycles, output, done) = (w.cycles(), &w.output, &w.done);
    println!("{cycles}");
    assert_eq!(w.steps, 7, "stopped at step {}:\n{output}", w.steps);
    assert_eq!(w.code, Some(130), "{output}");
    assert_eq!(done.len(), 7, "{cycles}");
    assert!(
        output.contains(
            "not watched (git ignores them and nothing the run uses is in them): node_modules"
        ),
        "{output}"
    );
    assert!(!output.contains("index.js"), "{output}");
    for d in &done[1..] {
        assert!(
            d.contains("built: nothing; containers recreated or started: 0")
                && d.contains("2 passed, 0 failed"),
            "no image, no new container, and the tests see the change: {cycles}"
        );
    }
    assert!(
        done[1].contains("page.txt (page's develop.watch sync+restart)")
            && done[1].contains("synced 1 file into page; restarted page"),
        "{cycles}"
    );
    assert!(
        done[2].contains("static/note.txt (page's develop.watch sync)")
            && !done[2].contains("restarted"),
        "{cycles}"
    );
    assert!(old_was_there.get(), "the image had static/old.txt");
    assert!(done[3].contains("removed 1 file from page"), "{cycles}");
    assert!(old_gone.get(), "removed in the container too: {cycles}");
    assert!(
        done[4].contains("live/app.txt (mounted by mounted)")
            && done[4].contains("mounted sees the change through its bind mount")
            && done[4].contains("it reloaded"),
        "{cycles}"
    );
    assert!(
        done[5].contains("hook.txt (page's develop.watch sync+exec)")
            && done[5].contains("ran page's exec (1 hook)"),
        "{cycles}"
    );
    assert_eq!(hooked.borrow().as_deref(), Some("hook v2"), "{cycles}");
    assert!(
        done[6].contains("live/conf.txt (mounted's develop.watch restart)")
            && done[6].contains("restarted mounted")
            && !done[6].contains("synced"),
        "a restart rule on a mounted file restarts only: {cycles}"
    );
    let seen = seen.borrow();
    assert_eq!(seen[0], seen[1], "same containers and image:\n{cycles}");
    assert_eq!(seen[1], seen[2], "same containers and image:\n{cycles}");
    let broken = promise_kept(&project, compose::Policy::Purge);
    assert_eq!(broken, None, "{output}");
}

/// awesome-compose's flask-redis (tests/fixtures/flask-redis, its compose
/// file as published with Debian-based stand-ins): the app's source reaches
/// the container through `.:/code` and the dev server's reloader restarts it.
/// A change starts no build and no recreate; the cycle waits for the reload,
/// and the test sees the new greeting.
#[test]
fn flask_redis_reloads_through_its_bind_mount() {
    let test = "flask_redis_reloads_through_its_bind_mount";
    if !compose::testing::image_or_skip(test, BASE_IMAGE) {
        return;
    }
    let fixture = support::Fixture::new("flask-redis", BIN);
    let root = &fixture.root;
    let project = format!("t{}-flask", std::process::id());
    let app = root.join("app.pl");
    let source = std::fs::read_to_string(&app).unwrap();
    let ids = std::cell::RefCell::new(Vec::new());
    let w = script(
        watch_cmd(&fixture, "WEB_PORT", &project, "purge", &[])
            .env("REDIS_PORT", support::free_port().to_string()),
        vec![
            on("watching ", || {
                ids.borrow_mut().push(container(&project, "web"));
                std::fs::write(&app, source.replace("Hello World!", "Hello Rust!")).unwrap();
                None
            }),
            on("cycle 1 done", || {
                ids.borrow_mut().push(container(&project, "web"));
                Some(Signal::SIGINT)
            }),
        ],
    );
    let (cycles, output, done) = (w.cycles(), &w.output, &w.done);
    println!("{cycles}");
    assert_eq!(w.steps, 2, "stopped at step {}:\n{output}", w.steps);
    assert_eq!(w.code, Some(130), "{output}");
    assert!(
        done[1].contains("app.pl (mounted by web)")
            && done[1].contains("built: nothing; containers recreated or started: 0")
            && done[1].contains("web sees the change through its bind mount")
            && done[1].contains("it reloaded")
            && done[1].contains("1 passed, 0 failed"),
        "{cycles}"
    );
    // What the reloader said while the cycle waited for it is shown.
    assert!(
        output.contains("web |  * Detected change in '/code/app.pl', reloading"),
        "{output}"
    );
    let ids = ids.borrow();
    assert_eq!(ids[0], ids[1], "the same container:\n{cycles}");
    let broken = promise_kept(&project, compose::Policy::Purge);
    assert_eq!(broken, None, "{output}");
}
