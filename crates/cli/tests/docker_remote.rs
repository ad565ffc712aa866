//! A remote engine, for real: a second `dockerd` in a network namespace of
//! its own (its own address, reached over TCP with mutual TLS, certificates
//! made by our `certs` crate) and a mount namespace in which `/tmp` is an
//! empty tmpfs, so the workspace the tests copy there does not exist on the
//! engine's side, as on another machine. The fixture (tests/fixtures/remote)
//! runs one service on the Debian base that answers with what its host bind
//! mount holds.
//!
//! The engine is `support::engine`'s; skipped with the reason where it
//! cannot run, a failure when `E2E_REQUIRE_DOCKER` is set.

mod support;

use support::engine::{RemoteEngine, ready_or_skip};

use support::free_port;

use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_cargo-e2e");
const BASE_IMAGE: &str = "debian:bookworm-slim";

/// The fixture in a temporary folder under /tmp (which the engine's mount
/// namespace hides), with `cargo-e2e` on PATH.
struct Workspace(support::Fixture);

impl Workspace {
    fn new() -> Workspace {
        Workspace(support::Fixture::new("remote", BIN))
    }

    fn cargo(&self, engine: &RemoteEngine, args: &[&str]) -> duct::Expression {
        let mut expr = self
            .0
            .cargo(args)
            .env("WEB_PORT", free_port().to_string())
            .env("EXPECT_HOST", &engine.addr)
            // The engine mounts its own, empty /tmp/.../data: not the file beside the tests.
            .env("EXPECT_DATA", "nothing,cert,nocakey");
        for (k, v) in engine.env() {
            expr = expr.env(k, v);
        }
        expr
    }
}

/// What the project left on an engine: containers, networks and volumes by label.
fn left_on(engine: &RemoteEngine, project: &str) -> String {
    let filter = format!("label=com.docker.compose.project={project}");
    let containers = engine.docker(&["ps", "-aq", "--filter", &filter]).unwrap();
    let networks = engine
        .docker(&["network", "ls", "-q", "--filter", &filter])
        .unwrap();
    let volumes = engine
        .docker(&["volume", "ls", "-q", "--filter", &filter])
        .unwrap();
    format!("{containers}{networks}{volumes}")
}

#[test]
fn a_remote_engine_publishes_on_its_own_address_and_keeps_nothing() {
    let test = "a_remote_engine_publishes_on_its_own_address_and_keeps_nothing";
    if !ready_or_skip(test, Some(BASE_IMAGE)) {
        return;
    }
    let engine = RemoteEngine::start(0).unwrap();
    // The base image goes over as it would to a build host: save, load.
    let ws = Workspace::new();
    let image = ws.0.root.join("base.tar");
    compose::docker(["save", "-o", image.as_str(), BASE_IMAGE])
        .output(&ws.0.root)
        .unwrap();
    engine
        .docker(&["load", "-q", "-i", image.as_str()])
        .unwrap();
    std::fs::remove_file(&image).unwrap();

    // doctor names the engine's machine and the bind mount that will not follow.
    let doctor = ws.cargo(&engine, &["e2e", "doctor"]).read().unwrap();
    assert!(
        doctor.contains(&format!("engine machine   {} (remote", engine.addr)),
        "{doctor}"
    );
    assert!(doctor.contains("bind mount       web: "), "{doctor}");

    let project = format!("t{}-remote", std::process::id());
    let out = ws
        .cargo(
            &engine,
            &["e2e", "e2e", "--project", &project, "--teardown", "purge"],
        )
        .stdout_capture()
        .run()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    println!("{text}");
    // The test inside checked `{web:8080}` is on the engine's address and the
    // mount showed the engine's folder; the preflight said both would happen.
    assert!(
        text.contains(&format!(
            "engine on {}, ports reached at {}",
            engine.addr, engine.addr
        )),
        "{text}"
    );
    assert!(
        text.contains("host bind mounts do not reach a remote engine") && text.contains("-> /data"),
        "{text}"
    );
    // The certificates reached the container in a volume (the test saw
    // server.crt and no CA key in /certs), so they are not named as a bind mount.
    assert!(
        text.contains(&format!(
            "certificates copied into the volume {project}_e2e-certs for web (the CA key stays here)"
        )) && !text.contains("-> /certs"),
        "{text}"
    );
    assert_eq!(
        left_on(&engine, &project),
        "",
        "purge leaves nothing on the engine"
    );
    let local = compose::leftovers(&project).unwrap();
    assert!(
        local.containers.is_empty(),
        "nothing ran on the local engine: {local:?}"
    );

    // Ctrl-C while the stack starts: the teardown still reaches the remote engine.
    let project = format!("t{}-remote-int", std::process::id());
    let mut sent = false;
    let (code, output) = support::watch(
        ws.cargo(
            &engine,
            &["e2e", "e2e", "--project", &project, "--teardown", "purge"],
        ),
        |line| {
            (!sent && line.contains("up         started")).then(|| {
                sent = true;
                Signal::SIGINT
            })
        },
    );
    assert!(sent, "{output}");
    assert_ne!(code, Some(0), "{output}");
    assert_eq!(left_on(&engine, &project), "", "{output}");
}
