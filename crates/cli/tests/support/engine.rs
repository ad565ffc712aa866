//! A second engine, for real: a `dockerd` in a network namespace of its own
//! (its own address, reached over TCP with mutual TLS, certificates made by
//! our `certs` crate) and a mount namespace in which `/tmp` is an empty
//! tmpfs, so a workspace the tests copy there does not exist on the
//! engine's side, as on another machine. Needs root, iproute2, util-linux's
//! `nsenter`/`unshare` and `dockerd` (the CI machine has them).

use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use nix::sys::signal::Signal;

/// The second engine and how to reach it; dropped, it stops the daemon and
/// removes the namespace, the link and its folders.
pub struct RemoteEngine {
    netns: String,
    host_link: String,
    base: Utf8PathBuf,
    pub addr: String,
    client_certs: Utf8PathBuf,
    /// The daemon, our child: waited for once stopped (a zombie would still
    /// answer `kill(pid, 0)`).
    daemon: Option<duct::Handle>,
}

pub fn run(program: &str, args: &[&str]) -> Result<(), String> {
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
    /// Starts engine number `n` of this test process (several may run at once).
    pub fn start(n: u32) -> Result<RemoteEngine, String> {
        RemoteEngine::launch(n, None)
    }

    /// Like [`RemoteEngine::start`], its data kept in `data` (a small file
    /// system of the test's, to fill).
    pub fn start_with_data(n: u32, data: &Utf8Path) -> Result<RemoteEngine, String> {
        RemoteEngine::launch(n, Some(data))
    }

    fn launch(n: u32, data: Option<&Utf8Path>) -> Result<RemoteEngine, String> {
        let id = std::process::id();
        let octet = (id + n * 61) % 250 + 1;
        let mut engine = RemoteEngine {
            netns: format!("e2er{id}-{n}"),
            host_link: format!("e2eh{id}-{n}"),
            base: Utf8PathBuf::from(format!("/var/lib/e2e-remote-{id}-{n}")),
            addr: format!("10.231.{octet}.2"),
            client_certs: Utf8PathBuf::from(format!("/var/lib/e2e-remote-{id}-{n}/client")),
            daemon: None,
        };
        let peer = format!("e2en{id}-{n}");
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
             --data-root {data} --exec-root {b}/exec --pidfile {b}/pid \
             --containerd-namespace {ns} --containerd-plugins-namespace {ns}-plugins \
             -H tcp://{addr}:2376 --tlsverify --tlscacert {tls}/ca.crt \
             --tlscert {tls}/server.crt --tlskey {tls}/server.key",
            addr = engine.addr,
            data = data.map_or_else(|| format!("{b}/data"), |d| d.to_string()),
        );
        let log = std::fs::File::create(b.join("dockerd.log")).map_err(|e| e.to_string())?;
        // Its own mount namespace: /tmp there is empty, as on another machine.
        let daemon = duct::cmd(
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
        .unchecked()
        .start()
        .map_err(|e| format!("unshare: {e}"))?;
        engine.daemon = Some(daemon);
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

    pub fn env(&self) -> [(&'static str, String); 3] {
        [
            ("DOCKER_HOST", format!("tcp://{}:2376", self.addr)),
            ("DOCKER_TLS_VERIFY", "1".to_owned()),
            ("DOCKER_CERT_PATH", self.client_certs.to_string()),
        ]
    }

    pub fn docker(&self, args: &[&str]) -> Result<String, String> {
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
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGTERM);
        }
        if let Some(daemon) = self.daemon.take() {
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(daemon.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = daemon.kill();
        }
        let _ = run("ip", &["netns", "delete", &self.netns]);
        let _ = run("ip", &["link", "delete", &self.host_link]);
        let _ = std::fs::remove_dir_all(&self.base);
    }
}

/// Root and the tools, the engine and `image` (when one is named); or
/// `false` after saying why (a failure when `E2E_REQUIRE_DOCKER` is set).
pub fn ready_or_skip(test: &str, image: Option<&str>) -> bool {
    let engine = match image {
        Some(image) => compose::testing::image_or_skip(test, image),
        None => compose::testing::engine_or_skip(test).is_some(),
    };
    if !engine {
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
