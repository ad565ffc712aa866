//! A three-machine CI, simulated: one build job on this engine (`shard build`),
//! then three shards (`shard run K/3`), each in a checkout of its own against
//! an engine of its own (`support::engine`: a `dockerd` in a network and
//! mount namespace, which has never seen the images), then `report merge`.
//! The engines themselves show that no shard built an image (their BuildKit
//! cache stays empty, and each runs the very image ID the build job made) and
//! the checkouts that no shard compiled (no cargo output in them); but the
//! third checkout's Dockerfile differs from the build's, and its shard builds
//! that image and says why. The merged report and JUnit file hold every test
//! exactly once.
//!
//! And stacks that share an engine: tests/fixtures/shared-names fixes its
//! container, network and volume names and publishes a UDP port; with
//! `--ephemeral-ports` two runs of it at once both pass (their tests reach
//! the UDP service at `{echo:5353/udp}`), and an external network is refused
//! under CI.

mod support;

use support::outcome;

use std::time::Instant;

use camino::Utf8Path;
use support::engine::{RemoteEngine, ready_or_skip};

const BIN: &str = env!("CARGO_BIN_EXE_cargo-e2e");

/// The six tests of tests/fixtures/shards.
const TESTS: [&str; 6] = [
    "greets_first",
    "greets_with_one_line",
    "greets_from_the_staged_binary",
    "greets_again",
    "greets_in_lowercase",
    "greets_briefly",
];

#[test]
fn a_build_job_then_three_shards_on_their_own_engines() {
    let test = "a_build_job_then_three_shards_on_their_own_engines";
    if !ready_or_skip(test, None) {
        return;
    }
    let started = Instant::now();
    // The build job: a checkout of its own, this machine's engine.
    let build = support::Fixture::new("shards", BIN);
    let artifact = tempfile::tempdir().unwrap();
    let artifact = Utf8Path::from_path(artifact.path()).unwrap().to_owned();
    let project = format!("t{}-shardbuild", std::process::id());
    let out = build
        .cargo(&[
            "e2e",
            "shard",
            "build",
            "--out",
            artifact.as_str(),
            "--project",
            &project,
            "--teardown",
            "purge",
        ])
        .env("HELLO_PORT", support::free_port().to_string());
    let (code, said) = outcome(out);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("exported to"), "{said}");
    let built_s = started.elapsed().as_secs_f64();
    // The build job did compile, there: the checks below look in the right place.
    assert!(build.root.join("target/debug").exists());
    assert!(build.root.join("target/e2e/stage").exists());
    let image_id = std::fs::read_to_string(artifact.join("shard.json")).unwrap();
    let manifest: serde_json::Value = serde_json::from_str(&image_id).unwrap();
    let image_id = manifest["images"]["hello"]["built"]["image_id"]
        .as_str()
        .expect("the manifest records hello's image")
        .to_owned();

    // Three machines: an engine each, a checkout each, at once.
    let engines_started = Instant::now();
    let engines: Vec<RemoteEngine> = std::thread::scope(|s| {
        let starting: Vec<_> = (1..=3)
            .map(|n| s.spawn(move || RemoteEngine::start(n)))
            .collect();
        starting
            .into_iter()
            .map(|h| h.join().unwrap().unwrap())
            .collect()
    });
    let engines_s = engines_started.elapsed().as_secs_f64();
    let shards_started = Instant::now();
    let checkouts: Vec<support::Fixture> = (0..3)
        .map(|_| support::Fixture::new("shards", BIN))
        .collect();
    // The third checkout is not the build's: its Dockerfile differs, so its
    // shard must build that image itself, and say why.
    let dockerfile = checkouts[2].root.join("docker/hello/Dockerfile");
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    std::fs::write(&dockerfile, format!("{text}LABEL shard=three\n")).unwrap();
    let runs: Vec<(String, (Option<i32>, String))> = std::thread::scope(|s| {
        let handles: Vec<_> = engines
            .iter()
            .zip(&checkouts)
            .enumerate()
            .map(|(i, (engine, checkout))| {
                let artifact = artifact.clone();
                s.spawn(move || {
                    let project = format!("t{}-shard{}", std::process::id(), i + 1);
                    let part = format!("{}/3", i + 1);
                    let report = checkout.root.join("report.json");
                    let mut cmd = checkout
                        .cargo(&[
                            "e2e",
                            "shard",
                            "run",
                            &part,
                            "--from",
                            artifact.as_str(),
                            "--project",
                            &project,
                            "--teardown",
                            "purge",
                            "--report-json",
                            report.as_str(),
                        ])
                        .env("HELLO_PORT", support::free_port().to_string());
                    for (k, v) in engine.env() {
                        cmd = cmd.env(k, v);
                    }
                    (report.to_string(), outcome(cmd))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let shards_s = shards_started.elapsed().as_secs_f64();
    for (i, ((report, (code, said)), (engine, checkout))) in
        runs.iter().zip(engines.iter().zip(&checkouts)).enumerate()
    {
        assert_eq!(*code, Some(0), "{report}:\n{said}");
        assert!(
            said.contains("staged binaries: 1 restored from the shard build (cargo not asked)"),
            "{said}"
        );
        // The JUnit file beside the report, for the merge job's artifact.
        assert!(checkout.root.join("junit.xml").exists(), "{said}");
        // No compile: cargo wrote nothing into the checkout.
        for built in ["target/debug", "target/e2e/stage", "target/image"] {
            assert!(
                !checkout.root.join(built).exists(),
                "{built} in {}",
                checkout.root
            );
        }
        let cache = engine
            .docker(&["system", "df", "--format", "{{.Type}} {{.TotalCount}}"])
            .unwrap();
        let ids = engine
            .docker(&["image", "ls", "--no-trunc", "--format", "{{.ID}}"])
            .unwrap();
        if i == 2 {
            // Its inputs are not the build's: it built, and said which differs.
            assert!(
                said.contains("hello not taken from the shard build: its Dockerfile changed")
                    && said.contains("images: hello built"),
                "{said}"
            );
            assert!(!cache.contains("Build Cache 0"), "{cache}");
            assert!(!ids.lines().any(|l| l == image_id), "{ids}");
            continue;
        }
        assert!(
            said.contains("loaded from the shard build (its inputs are this checkout's): hello")
                && said.contains("images: hello unchanged"),
            "{said}"
        );
        // No build on the engine: BuildKit's cache is empty, and the image
        // it ran is the one the build job made.
        assert!(cache.contains("Build Cache 0"), "{cache}");
        assert!(ids.lines().any(|l| l == image_id), "{ids} lacks {image_id}");
    }
    // One report of the three: every test exactly once.
    let merged = artifact.join("merged.xml");
    let mut args = vec!["report", "merge", "--junit", merged.as_str()];
    args.extend(runs.iter().map(|(r, _)| r.as_str()));
    let (code, said) = outcome(duct::cmd(BIN, &args).dir(&build.root));
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("e2e shards merged: 3 reports"), "{said}");
    assert!(said.contains("6 passed, 0 failed, 0 skipped"), "{said}");
    let junit = std::fs::read_to_string(&merged).unwrap();
    assert_eq!(junit.matches("<testcase ").count(), 6, "{junit}");
    for name in TESTS {
        assert_eq!(
            junit.matches(&format!("name=\"{name}\"")).count(),
            1,
            "{name}: {junit}"
        );
    }
    println!(
        "build job {built_s:.1} s; three engines started in {engines_s:.1} s; then three shards at once {shards_s:.1} s"
    );
    // The engines stop side by side (each waits for its dockerd).
    let stopping = Instant::now();
    std::thread::scope(|s| {
        for e in engines {
            s.spawn(move || drop(e));
        }
    });
    println!(
        "engines stopped in {:.1} s",
        stopping.elapsed().as_secs_f64()
    );
}

/// `cargo e2e e2e ARGS` in `fixture`, its port picked here; code and output.
fn e2e_in(fixture: &support::Fixture, ci: bool, args: &[&str]) -> (Option<i32>, String) {
    let mut all = vec!["e2e", "e2e"];
    all.extend_from_slice(args);
    let cmd = if ci {
        fixture.cargo_ci(&all)
    } else {
        fixture.cargo(&all)
    }
    .env("PAGE_PORT", support::free_port().to_string())
    .env("ECHO_PORT", support::free_port().to_string());
    outcome(cmd)
}

#[test]
fn fixed_names_are_scoped_so_two_runs_share_an_engine() {
    let test = "fixed_names_are_scoped_so_two_runs_share_an_engine";
    if !compose::testing::image_or_skip(test, "debian:bookworm-slim") {
        return;
    }
    let pid = std::process::id();
    let (a, b) = (
        support::Fixture::new("shared-names", BIN),
        support::Fixture::new("shared-names", BIN),
    );
    let projects = [format!("t{pid}-names-a"), format!("t{pid}-names-b")];
    let runs: Vec<(Option<i32>, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = [&a, &b]
            .into_iter()
            .zip(&projects)
            .map(|(f, p)| {
                s.spawn(move || {
                    e2e_in(
                        f,
                        false,
                        &["--project", p, "--ephemeral-ports", "--teardown", "purge"],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (code, said) in &runs {
        assert_eq!(*code, Some(0), "{said}");
        assert!(
            said.contains(
                "scoped to this project for the run (override file, not yours): \
                 service page's container_name shared-page (compose.yaml:6), \
                 network front's fixed name shared-front (compose.yaml:20), \
                 volume data's fixed name shared-data (compose.yaml:23)"
            ),
            "{said}"
        );
    }
    for p in &projects {
        let left = compose::leftovers(p).unwrap();
        assert!(left.is_empty(), "{p}: {left:?}");
    }
    // `init` gives the UDP port a variable too.
    let init = a
        .cargo(&["e2e", "init", "--print"])
        .stdout_capture()
        .run()
        .unwrap();
    let init = String::from_utf8_lossy(&init.stdout);
    assert!(
        init.contains("ECHO_5353_UDP: \"{echo:5353/udp}\""),
        "{init}"
    );
    // Without the isolation mode, CI is told what collides, line by line.
    let project = format!("t{pid}-names-c");
    let (code, said) = e2e_in(&a, true, &["--project", &project]);
    assert_eq!(code, Some(0), "{said}");
    assert!(
        said.contains("warning: two runs of this stack cannot share an engine: service echo's host port ")
            && said.contains("/udp, service page's container_name shared-page (compose.yaml:6), service page's host port"),
        "{said}"
    );
    assert!(
        compose::leftovers(&project).unwrap().is_empty(),
        "CI's purge"
    );
    // An external network cannot be scoped: refused under CI before anything starts.
    let project = format!("t{pid}-names-d");
    let (code, said) = e2e_in(
        &a,
        true,
        &[
            "--config",
            "e2e-external.yaml",
            "--project",
            &project,
            "--ephemeral-ports",
        ],
    );
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("external network e2e-made-elsewhere (external.yaml:7)"),
        "{said}"
    );
    assert!(compose::leftovers(&project).unwrap().is_empty());
}
