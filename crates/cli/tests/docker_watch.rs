//! `cargo e2e --watch` driven with real file changes, on the watch fixture
//! (tests/fixtures/watch: a service built FROM the Debian base that serves
//! page.txt, which its Dockerfile copies, and a test that checks it serves
//! what the file says). Each change must do exactly what it should, checked
//! on the engine: a file nothing uses starts no cycle; a burst of writes to
//! a transferred file gives one cycle that rebuilds and recreates that
//! service; a test file reruns the tests only; a broken build is reported
//! and the next good change recovers; Ctrl-C ends with the policy.

mod support;

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

#[test]
fn each_change_does_what_it_should_and_ctrl_c_ends_with_the_policy() {
    let test = "each_change_does_what_it_should_and_ctrl_c_ends_with_the_policy";
    if !compose::testing::image_or_skip(test, BASE_IMAGE) {
        return;
    }
    let fixture = support::Fixture::new("watch", BIN);
    let root = fixture.root.clone();
    let project = format!("t{}-watch", std::process::id());
    let expr = fixture
        .cargo(&[
            "e2e",
            "e2e",
            "--watch",
            "--project",
            &project,
            "--teardown",
            "purge",
        ])
        .env("PAGE_PORT", support::free_port().to_string());
    let write = |path: &str, text: &str| std::fs::write(root.join(path), text).unwrap();
    let dockerfile = std::fs::read_to_string(root.join("docker/Dockerfile")).unwrap();

    let mut step = 0;
    let mut ids: Vec<String> = Vec::new();
    let mut images: Vec<String> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    let deadline = std::time::Duration::from_secs(300);
    let (code, output) = support::watch_until(expr, deadline, |line| {
        let line = line.trim_end();
        if line.starts_with("cycle ") || line.starts_with("no cycle") {
            seen.push(line.to_owned());
        }
        match step {
            // The first run is up: a file nothing uses.
            0 if line.starts_with("watching ") => {
                ids.push(container(&project, "page"));
                images.push(image(&project, "page"));
                write("notes.md", "more notes\n");
                step = 1;
            }
            // A burst of writes to the page: one cycle.
            1 if line.starts_with("no cycle: nothing uses") && line.contains("notes.md") => {
                for text in ["draft\n", "second draft\n", "second page\n"] {
                    write("page.txt", text);
                }
                step = 2;
            }
            2 if line.starts_with("cycle 1 done") => {
                ids.push(container(&project, "page"));
                images.push(image(&project, "page"));
                write(
                    "page-e2e/tests/page.rs",
                    &(std::fs::read_to_string(root.join("page-e2e/tests/page.rs")).unwrap()
                        + "// a comment\n"),
                );
                step = 3;
            }
            3 if line.starts_with("cycle 2 done") => {
                ids.push(container(&project, "page"));
                images.push(image(&project, "page"));
                write(
                    "docker/Dockerfile",
                    &dockerfile.replace("COPY page.txt", "COPY missing.txt"),
                );
                step = 4;
            }
            4 if line.starts_with("cycle 3 done") => {
                write("docker/Dockerfile", &dockerfile);
                step = 5;
            }
            5 if line.starts_with("cycle 4 done") => {
                step = 6;
                return Some(Signal::SIGINT);
            }
            _ => {}
        }
        None
    });
    let cycles = seen.join("\n");
    println!("{cycles}");
    assert_eq!(step, 6, "stopped at step {step}:\n{cycles}\n{output}");
    assert_eq!(code, Some(130), "Ctrl-C ends the watch: {output}");
    let done: Vec<&String> = seen.iter().filter(|l| l.contains(" done in ")).collect();
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
    // On the engine: the page change replaced the container, the test change did not.
    assert_ne!(ids[0], ids[1], "{cycles}");
    assert_eq!(ids[1], ids[2], "{cycles}");
    assert_ne!(
        images[0], images[1],
        "the page change built a new image: {cycles}"
    );
    assert_eq!(images[1], images[2], "the test change built none: {cycles}");
    // Ctrl-C applied the policy: purge leaves nothing.
    let left = compose::leftovers(&project).unwrap();
    assert!(left.is_empty(), "{left:?}\n{output}");
}

/// `cargo e2e --watch --project PROJECT --teardown POLICY EXTRA...` in the fixture.
fn watch_cmd(
    fixture: &support::Fixture,
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
        .env("PAGE_PORT", support::free_port().to_string())
}

/// Whether a process with this exact command line runs on this machine.
fn running(command_line: &str) -> bool {
    duct::cmd("pgrep", ["-f", &format!("^{command_line}$")])
        .stdout_null()
        .unchecked()
        .run()
        .is_ok_and(|o| o.status.success())
}

/// Waits up to a minute for such a process.
fn wait_for_process(command_line: &str) -> bool {
    wait_for(|| running(command_line))
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

#[test]
fn config_changes_new_folders_and_ctrl_c_during_a_build() {
    let test = "config_changes_new_folders_and_ctrl_c_during_a_build";
    if !compose::testing::image_or_skip(test, BASE_IMAGE) {
        return;
    }
    let fixture = support::Fixture::new("watch", BIN);
    let root = fixture.root.clone();
    let project = format!("t{}-watchbuild", std::process::id());
    let dockerfile = std::fs::read_to_string(root.join("docker/Dockerfile")).unwrap();
    let config = std::fs::read_to_string(root.join("e2e.yaml")).unwrap();
    let mut step = 0;
    let mut done = Vec::new();
    let (code, output) = support::watch_until(
        watch_cmd(&fixture, &project, "purge", &[]),
        std::time::Duration::from_secs(300),
        |line| {
            if line.starts_with("cycle ") && line.contains(" done in ") {
                done.push(line.trim_end().to_owned());
            }
            match step {
                0 if line.starts_with("watching ") => {
                    // A top-level folder made after the start, with a file in it.
                    std::fs::create_dir(root.join("later")).unwrap();
                    std::fs::write(root.join("later/first.md"), "1\n").unwrap();
                    step = 1;
                }
                1 if line.starts_with("no cycle") && line.contains("later/first.md") => {
                    // Seen only if the new folder is watched.
                    std::fs::write(root.join("later/second.md"), "2\n").unwrap();
                    step = 2;
                }
                2 if line.starts_with("no cycle") && line.contains("later/second.md") => {
                    // A config that does not load: said, and nothing runs.
                    std::fs::write(root.join("e2e.yaml"), format!("{config}readiness: [\n"))
                        .unwrap();
                    step = 3;
                }
                3 if line.starts_with("no cycle") && line.contains("e2e.yaml:") => {
                    // One that loads is used: the page is judged by a line it never says.
                    std::fs::write(
                        root.join("e2e.yaml"),
                        config
                            .replace("{ log: listening }", "{ log: never said }")
                            .replace("readiness:\n", "readiness:\n  timeout_s: 3\n"),
                    )
                    .unwrap();
                    step = 4;
                }
                4 if line.starts_with("cycle 1 done") => {
                    std::fs::write(root.join("e2e.yaml"), &config).unwrap();
                    step = 5;
                }
                5 if line.starts_with("cycle 2 done") => {
                    // A build that takes a minute: Ctrl-C lands in it.
                    let slow = dockerfile.replace(
                        "COPY page.txt /srv/page.txt",
                        "COPY page.txt /srv/page.txt\nRUN sleep 120",
                    );
                    std::fs::write(root.join("docker/Dockerfile"), slow).unwrap();
                    step = 6;
                }
                // Ctrl-C once BuildKit runs the slow step (its process is
                // this machine's: the engine is local).
                6 if line.contains("build      started") => {
                    step = 7;
                    if wait_for_process("sleep 120") {
                        step = 8;
                        return Some(Signal::SIGINT);
                    }
                }
                _ => {}
            }
            None
        },
    );
    assert_eq!(step, 8, "stopped at step {step}:\n{output}");
    assert_eq!(code, Some(130), "{output}");
    let cycles = done.join("\n");
    assert!(
        done[1].contains("e2e.yaml (config)") && done[1].contains("never said"),
        "the changed config was used: {cycles}"
    );
    assert!(done[2].contains("1 passed, 0 failed"), "{cycles}");
    assert!(output.contains("watch ended: purge done"), "{output}");
    assert!(
        wait_for(|| !running("sleep 120")),
        "the build's step was stopped too"
    );
    let broken = promise_kept(&project, compose::Policy::Purge);
    assert_eq!(broken, None, "{output}");
}

#[test]
fn only_the_failed_tests_rerun_and_ctrl_c_during_the_tests_ends_with_the_policy() {
    let test = "only_the_failed_tests_rerun_and_ctrl_c_during_the_tests_ends_with_the_policy";
    if !compose::testing::image_or_skip(test, BASE_IMAGE) {
        return;
    }
    let fixture = support::Fixture::new("watch", BIN);
    let root = fixture.root.clone();
    let project = format!("t{}-watchtests", std::process::id());
    let tests = root.join("page-e2e/tests/more.rs");
    let with_test = |body: &str| {
        std::fs::write(
            &tests,
            format!("#[test]\nfn another_check() {{\n    {body}\n}}\n"),
        )
        .unwrap()
    };
    let mut step = 0;
    let mut seen = Vec::new();
    let (code, output) = support::watch_until(
        watch_cmd(&fixture, &project, "down", &["--only-failed"]),
        std::time::Duration::from_secs(300),
        |line| {
            if line.starts_with("cycle ") && line.contains(" done in ") {
                seen.push(line.trim_end().to_owned());
            }
            match step {
                0 if line.starts_with("watching ") => {
                    with_test("assert_eq!(1 + 1, 3, \"a failing check\");");
                    step = 1;
                }
                // Both tests ran, one failed: the next cycle runs only it.
                1 if line.starts_with("cycle 1 done") => {
                    std::fs::write(root.join("page.txt"), "a new page\n").unwrap();
                    step = 2;
                }
                2 if line.starts_with("cycle 2 done") => {
                    with_test("assert_eq!(1 + 1, 2);");
                    step = 3;
                }
                // It passes: the next cycle runs them all again.
                3 if line.starts_with("cycle 3 done") => {
                    std::fs::write(root.join("page.txt"), "another page\n").unwrap();
                    step = 4;
                }
                4 if line.starts_with("cycle 4 done") => {
                    with_test("std::thread::sleep(std::time::Duration::from_secs(120));");
                    step = 5;
                }
                // nextest has started the slow test: Ctrl-C lands in the tests.
                5 if line.contains("Starting 2 tests") => {
                    step = 6;
                    return Some(Signal::SIGINT);
                }
                _ => {}
            }
            None
        },
    );
    let cycles = seen.join("\n");
    assert_eq!(step, 6, "stopped at step {step}:\n{output}");
    assert_eq!(code, Some(130), "{output}");
    assert!(
        seen[1].contains("1 passed, 1 failed; failed: page-e2e::more another_check"),
        "{cycles}"
    );
    assert!(
        output.contains(
            "cycle 2: page.txt (sent by page's build); running only the tests that failed last"
        ),
        "{output}"
    );
    assert!(
        seen[2].contains("built: page") && seen[2].contains("0 passed, 1 failed"),
        "{cycles}"
    );
    assert!(
        seen[3].contains("1 passed, 0 failed"),
        "only the fixed one ran: {cycles}"
    );
    assert!(
        seen[4].contains("2 passed, 0 failed"),
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
    let test = "a_watch_killed_outright_leaves_what_its_policy_says";
    if !compose::testing::image_or_skip(test, BASE_IMAGE) {
        return;
    }
    let fixture = support::Fixture::new("watch", BIN);
    let project = format!("t{}-watchkill", std::process::id());
    let mut killed = false;
    let (code, output) = support::watch_until(
        watch_cmd(&fixture, &project, "purge", &[]),
        std::time::Duration::from_secs(300),
        |line| {
            if !killed && line.starts_with("watching ") {
                killed = true;
                return Some(Signal::SIGKILL);
            }
            None
        },
    );
    assert!(killed, "{output}");
    assert_eq!(code, None, "killed by a signal: {output}");
    // The session's reaper saw it go and applied the policy.
    let broken = promise_kept(&project, compose::Policy::Purge);
    assert_eq!(broken, None, "{output}");
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

/// tests/fixtures/watch-staged: `hello`, a static binary built on the host
/// and staged into a FROM scratch image. A change to its sources rebuilds
/// and restages it; the image follows only when its bytes changed.
#[test]
fn a_staged_binary_s_image_follows_only_when_its_bytes_changed() {
    let test = "a_staged_binary_s_image_follows_only_when_its_bytes_changed";
    if compose::testing::engine_or_skip(test).is_none() {
        return;
    }
    let fixture = support::Fixture::new("watch-staged", BIN);
    let root = fixture.root.clone();
    let project = format!("t{}-watchstaged", std::process::id());
    let main_rs = root.join("hello/src/main.rs");
    let source = std::fs::read_to_string(&main_rs).unwrap();
    let test_rs = root.join("hello-e2e/tests/hello.rs");
    let test_source = std::fs::read_to_string(&test_rs).unwrap();
    let expr = fixture
        .cargo(&[
            "e2e",
            "e2e",
            "--watch",
            "--project",
            &project,
            "--teardown",
            "purge",
        ])
        .env("HELLO_PORT", support::free_port().to_string());
    let mut step = 0;
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut done = Vec::new();
    let (code, output) = support::watch_until(expr, std::time::Duration::from_secs(300), |line| {
        if line.starts_with("cycle ") && line.contains(" done in ") {
            done.push(line.trim_end().to_owned());
        }
        match step {
            0 if line.starts_with("watching ") => {
                seen.push((container(&project, "hello"), image(&project, "hello")));
                // A comment: cargo builds again, the bytes stay.
                std::fs::write(&main_rs, format!("{source}// a comment\n")).unwrap();
                step = 1;
            }
            1 if line.starts_with("cycle 1 done") => {
                seen.push((container(&project, "hello"), image(&project, "hello")));
                let changed = source.replace("hello from the staged binary", "hello again");
                assert_ne!(changed, source);
                std::fs::write(&main_rs, changed).unwrap();
                step = 2;
            }
            // A change made while cycle 2 runs is not lost: it starts cycle 3.
            2 if line.starts_with("cycle 2: ") => {
                std::fs::write(&test_rs, format!("{test_source}// a comment\n")).unwrap();
                step = 3;
            }
            3 if line.starts_with("cycle 2 done") => {
                seen.push((container(&project, "hello"), image(&project, "hello")));
                step = 4;
            }
            4 if line.starts_with("cycle 3 done") => {
                step = 5;
                return Some(Signal::SIGINT);
            }
            _ => {}
        }
        None
    });
    let cycles = done.join("\n");
    assert_eq!(step, 5, "stopped at step {step}:\n{output}");
    assert_eq!(code, Some(130), "{output}");
    assert!(
        done[3].contains("hello-e2e/tests/hello.rs (tests hello-e2e)")
            && done[3].contains("built: nothing"),
        "the change made during cycle 2: {cycles}"
    );
    assert!(
        output.contains("staged binaries: 0 of 1 changed"),
        "the comment left the binary as it was: {output}"
    );
    assert!(
        done[1].contains("staged binary hello")
            && done[1].contains("built: nothing; containers recreated or started: 0")
            && done[1].contains("1 passed, 0 failed"),
        "{cycles}"
    );
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
    let broken = promise_kept(&project, compose::Policy::Purge);
    assert_eq!(broken, None, "{output}");
}
