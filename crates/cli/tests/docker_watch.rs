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
                write(
                    "page-e2e/tests/page.rs",
                    &(std::fs::read_to_string(root.join("page-e2e/tests/page.rs")).unwrap()
                        + "// a comment\n"),
                );
                step = 3;
            }
            3 if line.starts_with("cycle 2 done") => {
                ids.push(container(&project, "page"));
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
    // Ctrl-C applied the policy: purge leaves nothing.
    let left = compose::leftovers(&project).unwrap();
    assert!(left.is_empty(), "{left:?}\n{output}");
}
