//! A remote engine, for real: a second `dockerd` in a network namespace of
//! its own (its own address, reached over TCP with mutual TLS, certificates
//! made by our `certs` crate) and a mount namespace in which `/tmp` is an
//! empty tmpfs, so the workspace the tests copy there does not exist on the
//! engine's side, as on another machine. The fixture (tests/fixtures/remote)
//! runs one service on the Debian base that answers with what its host bind
//! mount holds.
//!
//! Needs root, iproute2, util-linux's `nsenter`/`unshare` and `dockerd` (the
//! CI machine has them); skipped with the reason otherwise, a failure when
//! `E2E_REQUIRE_DOCKER` is set.

mod support;

use support::free_port;

use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_cargo-e2e");
const BASE_IMAGE: &str = "debian:bookworm-slim";

/// The second engine and how to reach it; dropped, it stops the daemon and
/// removes the namespace, the link and its folders.
struct RemoteEngine {
    netns: String,
    host_link: String,
    base: Utf8PathBuf,
    addr: String,
    client_certs: Utf8PathBuf,
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    let out = duct::cmd(program, args)
        .stdout_capture()
        .stderr_capture()
        .unchecked()
        .run()
        .map_err(|e| format!("{program}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl RemoteEngine {
    fn start() -> Result<RemoteEngine, String> {
        let id = std::process::id();
        let octet = id % 250 + 1;
        let engine = RemoteEngine {
            netns: format!("e2er{id}"),
            host_link: format!("e2eh{id}"),
            base: Utf8PathBuf::from(format!("/var/lib/e2e-remote-{id}")),
            addr: format!("10.231.{octet}.2"),
            client_certs: Utf8PathBuf::from(format!("/var/lib/e2e-remote-{id}/client")),
        };
        let peer = format!("e2en{id}");
        let (ns, host) = (engine.netns.as_str(), engine.host_link.as_str());
        run("ip", &["netns", "add", ns])?;
        run(
            "ip",
            &["link", "add", host, "type", "veth", "peer", "name", &peer],
        )?;
        run("ip", &["link", "set", &peer, "netns", ns])?;
        run(
            "ip",
            &["addr", "add", &format!("10.231.{octet}.1/24"), "dev", host],
        )?;
        run("ip", &["link", "set", host, "up"])?;
        let in_ns = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns];
            all.extend_from_slice(args);
            run("ip", &all)
        };
        in_ns(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", engine.addr),
            "dev",
            &peer,
        ])?;
        in_ns(&["ip", "link", "set", &peer, "up"])?;
        in_ns(&["ip", "link", "set", "lo", "up"])?;

        // Mutual TLS: the server certificate names the engine's address.
        let tls = engine.base.join("tls");
        let spec = certs::Spec {
            dir: tls.clone(),
            ca_key_dir: engine.base.join("ca"),
            hosts: vec![engine.addr.clone()],
            validity_days: 30,
            renew_within_days: 1,
            client: true,
        };
        certs::ensure(&spec, certs::Mode::Ensure).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(&engine.client_certs).map_err(|e| e.to_string())?;
        for (from, to) in [
            ("ca.crt", "ca.pem"),
            ("client.crt", "cert.pem"),
            ("client.key", "key.pem"),
        ] {
            std::fs::copy(tls.join(from), engine.client_certs.join(to))
                .map_err(|e| format!("{from}: {e}"))?;
        }
        let b = &engine.base;
        let dockerd = format!(
            "mount -t tmpfs tmpfs /tmp && exec nsenter --net=/var/run/netns/{ns} dockerd \
             --data-root {b}/data --exec-root {b}/exec --pidfile {b}/pid \
             --containerd-namespace {ns} --containerd-plugins-namespace {ns}-plugins \
             -H tcp://{addr}:2376 --tlsverify --tlscacert {tls}/ca.crt \
             --tlscert {tls}/server.crt --tlskey {tls}/server.key",
            addr = engine.addr,
        );
        let log = std::fs::File::create(b.join("dockerd.log")).map_err(|e| e.to_string())?;
        // Its own mount namespace: /tmp there is empty, as on another machine.
        duct::cmd(
            "unshare",
            [
                "--mount",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                &dockerd,
            ],
        )
        .stdout_file(log.try_clone().map_err(|e| e.to_string())?)
        .stderr_file(log)
        .stdin_null()
        .start()
        .map_err(|e| format!("unshare: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if engine
                .docker(&["info", "--format", "{{.ServerVersion}}"])
                .is_ok()
            {
                return Ok(engine);
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        let log = std::fs::read_to_string(b.join("dockerd.log")).unwrap_or_default();
        Err(format!("the second engine did not answer in 60 s:\n{log}"))
    }

    fn env(&self) -> [(&'static str, String); 3] {
        [
            ("DOCKER_HOST", format!("tcp://{}:2376", self.addr)),
            ("DOCKER_TLS_VERIFY", "1".to_owned()),
            ("DOCKER_CERT_PATH", self.client_certs.to_string()),
        ]
    }

    fn docker(&self, args: &[&str]) -> Result<String, String> {
        let mut cmd = compose::docker(args.iter().copied());
        for (k, v) in self.env() {
            cmd = cmd.env(k, &v);
        }
        cmd.text(Utf8Path::new("/")).map_err(|e| e.to_string())
    }
}

impl Drop for RemoteEngine {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.base.join("pid"))
            && let Ok(pid) = pid.trim().parse::<i32>()
        {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(20);
            while nix::sys::signal::kill(pid, None).is_ok() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = run("ip", &["netns", "delete", &self.netns]);
        let _ = run("ip", &["link", "delete", &self.host_link]);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Root and the tools, the engine and the base image; or `false` after
/// saying why (a failure when `E2E_REQUIRE_DOCKER` is set).
fn ready_or_skip(test: &str) -> bool {
    if !compose::testing::image_or_skip(test, BASE_IMAGE) {
        return false;
    }
    let tools = ["ip", "nsenter", "unshare", "dockerd"];
    let missing: Vec<&str> = tools
        .into_iter()
        .filter(|t| {
            duct::cmd("sh", ["-c", &format!("command -v {t}")])
                .stdout_null()
                .unchecked()
                .run()
                .map_or(true, |o| !o.status.success())
        })
        .collect();
    let why = if !nix::unistd::geteuid().is_root() {
        Some("a second engine in a network namespace needs root".to_owned())
    } else if !missing.is_empty() {
        Some(format!("missing tools: {}", missing.join(", ")))
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            let required = std::env::var_os(compose::testing::REQUIRE_VAR)
                .is_some_and(|v| !v.is_empty() && v != "0");
            assert!(!required, "{test}: {why}");
            eprintln!("SKIPPED {test}: {why}");
            false
        }
    }
}

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
    if !ready_or_skip(test) {
        return;
    }
    let engine = RemoteEngine::start().unwrap();
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
