//! What Docker this machine has: client, daemon, Compose flavour, BuildKit.

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::facts::Facts;
use crate::versions::Builder;
use process::Cmd;

const INFO: [&str; 3] = ["info", "--format", "{{json .}}"];
const VERSION: [&str; 3] = ["version", "--format", "{{json .Server}}"];

/// Which Compose answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "version", rename_all = "kebab-case")]
pub enum ComposeFlavor {
    /// `docker compose` (the v2 plugin): what this tool drives.
    Plugin(String),
    /// A standalone `docker-compose` binary of version 2.
    StandaloneV2(String),
    /// Python `docker-compose` 1.x: end of life, no `--wait`; detected only to say so.
    V1(String),
    Missing,
}

/// The findings of `Engine::detect`.
#[derive(Debug, Clone, Serialize)]
pub struct Engine {
    pub client_version: Option<String>,
    /// The daemon's account of itself, when it answers.
    pub facts: Option<Facts>,
    pub compose: ComposeFlavor,
    /// How Compose builds against this engine, when Compose v2 answers.
    pub builder: Option<Builder>,
    /// Why the daemon did not answer, when it did not.
    pub daemon_error: Option<String>,
}

impl Facts {
    /// Free bytes where the daemon keeps its data, when that folder is on
    /// this machine: the engine is reached through a local socket and the
    /// folder exists here. `None` for a remote engine.
    pub fn free_bytes(&self) -> Option<u64> {
        let endpoint = Engine::endpoint();
        if !(endpoint == "default" || endpoint.starts_with("unix://")) || self.root_dir.is_empty() {
            return None;
        }
        let stat = nix::sys::statvfs::statvfs(self.root_dir.as_str()).ok()?;
        Some(stat.blocks_available() as u64 * stat.fragment_size() as u64)
    }
}

/// Where the engine publishes ports, when a configuration says (set once,
/// before the first lookup).
static REMOTE_HOST: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
static CONTEXT: std::sync::OnceLock<Option<(String, String)>> = std::sync::OnceLock::new();

/// The current docker context's endpoint and name: one `docker context
/// inspect` per process, however many ask.
fn current_context() -> Option<(String, String)> {
    CONTEXT
        .get_or_init(|| {
            let fmt = "{{.Endpoints.docker.Host}}\t{{.Name}}";
            let text = crate::docker(["context", "inspect", "--format", fmt])
                .text(Utf8Path::new("."))
                .ok()?;
            let (host, name) = text.trim().split_once('\t')?;
            Some((host.to_owned(), name.to_owned()))
        })
        .clone()
}

/// The host of a Docker endpoint that is another machine: `tcp://HOST:PORT`,
/// `ssh://[USER@]HOST[:PORT]`; `None` for a local socket (`unix://`,
/// `npipe://`, `fd://`) or an address of this machine's loopback.
pub fn endpoint_host(endpoint: &str) -> Option<String> {
    let rest = endpoint
        .strip_prefix("tcp://")
        .or_else(|| endpoint.strip_prefix("ssh://"))
        .or_else(|| endpoint.strip_prefix("http://"))
        .or_else(|| endpoint.strip_prefix("https://"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split_once(']').map_or(v6, |(h, _)| h)
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let local = host.is_empty()
        || host == "localhost"
        || host == "::1"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback());
    (!local).then(|| host.to_owned())
}

impl Engine {
    /// The host of the engine when it runs on another machine (from
    /// `DOCKER_HOST`, else the docker context's endpoint); `None` for an
    /// engine on this machine. Asked once per process.
    pub fn remote_host() -> Option<String> {
        REMOTE_HOST
            .get_or_init(|| {
                let endpoint = Engine::endpoint();
                if !endpoint.starts_with("context-") {
                    return endpoint_host(&endpoint);
                }
                current_context().and_then(|(host, _)| endpoint_host(&host))
            })
            .clone()
    }

    /// Where published ports answer from here: the `configured` host, else
    /// the remote engine's host, else this machine's loopback.
    pub fn publish_host(configured: Option<&str>) -> String {
        configured
            .map(str::to_owned)
            .or_else(Engine::remote_host)
            .unwrap_or_else(|| "127.0.0.1".to_owned())
    }

    /// Which engine the docker CLI talks to, without starting it: `DOCKER_HOST`,
    /// else `DOCKER_CONTEXT`, else the CLI config's current context.
    pub fn endpoint() -> String {
        if let Some(h) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
            return h;
        }
        if let Some(c) = std::env::var("DOCKER_CONTEXT")
            .ok()
            .filter(|c| !c.is_empty())
        {
            return format!("context-{c}");
        }
        let config = std::env::var("DOCKER_CONFIG")
            .map(Utf8PathBuf::from)
            .or_else(|_| std::env::var("HOME").map(|h| Utf8PathBuf::from(h).join(".docker")))
            .map(|d| d.join("config.json"));
        let current = config
            .ok()
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("currentContext")?.as_str().map(str::to_owned))
            .filter(|c| !c.is_empty() && c != "default");
        current.map_or_else(|| "default".to_owned(), |c| format!("context-{c}"))
    }

    /// Asks the client, the daemon and Compose (at once: each call costs a
    /// process start and a round trip); never fails, only reports.
    pub fn detect() -> Engine {
        let here = Utf8Path::new(".");
        let (client, info, version, compose) = std::thread::scope(|s| {
            // `docker --version` answers without a daemon; `docker version` does not.
            let client = s.spawn(|| crate::docker(["--version"]).text(here));
            let info = s.spawn(|| crate::docker(INFO).text(here));
            let version = s.spawn(|| crate::docker(VERSION).text(here));
            let compose = s.spawn(|| detect_compose(here));
            let lost = "detection does not panic";
            (
                client.join().expect(lost),
                info.join().expect(lost),
                version.join().expect(lost),
                compose.join().expect(lost),
            )
        });
        let client_version = client.ok().and_then(|v| {
            let v = v.strip_prefix("Docker version ")?;
            Some(v.split(',').next().unwrap_or(v).to_owned())
        });
        let (facts, daemon_error) = match info {
            Ok(text) => match Facts::parse(&text, version.ok().as_deref()) {
                Ok(f) => (Some(f), None),
                Err(e) => (None, Some(format!("cannot read `docker info`: {e}"))),
            },
            // Docker's own words say why (no socket, permission, TLS), not our command line.
            Err(process::Error::Failed { stderr, .. }) => (None, Some(first_line(&stderr))),
            Err(e) => (None, Some(first_line(&e.to_string()))),
        };
        let builder = match &compose {
            ComposeFlavor::Plugin(v) | ComposeFlavor::StandaloneV2(v) => {
                let bake = std::env::var("COMPOSE_BAKE").ok();
                let product = facts.as_ref().map(|f| f.product);
                Some(crate::versions::builder(v, bake.as_deref(), product))
            }
            _ => None,
        };
        Engine {
            client_version,
            facts,
            compose,
            builder,
            daemon_error,
        }
    }

    /// The daemon's account of itself, or why it does not answer: one
    /// `docker info`. What a run needs before it starts; Compose proves
    /// itself by loading the stack (see [`Engine::require`] for the full check).
    pub fn server() -> Result<Facts> {
        match crate::docker(INFO).text(Utf8Path::new(".")) {
            Ok(text) => Facts::parse(&text, None).map_err(|e| Error::Parse {
                command: format!("docker {}", INFO.join(" ")),
                detail: e.to_string(),
            }),
            Err(process::Error::Failed { stderr, .. }) => Err(daemon_error(&stderr)),
            Err(e) => Err(Error::NoDaemon {
                detail: first_line(&e.to_string()),
            }),
        }
    }

    /// Which engine the client talks to: `DOCKER_HOST`, else the docker
    /// context's endpoint (for `doctor`; the pipeline does not need it).
    pub fn host() -> Option<String> {
        if let Some(h) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty()) {
            return Some(format!("{h} (DOCKER_HOST)"));
        }
        current_context().map(|(host, name)| format!("{host} (context {name})"))
    }

    /// An engine and Compose v2 answer, or the error that says what to do.
    pub fn require() -> Result<Engine> {
        let engine = Engine::detect();
        if let Some(detail) = &engine.daemon_error {
            return Err(daemon_error(detail));
        }
        match &engine.compose {
            ComposeFlavor::Plugin(_) | ComposeFlavor::StandaloneV2(_) => Ok(engine),
            ComposeFlavor::V1(v) => Err(Error::NoCompose {
                v1: format!(" (only docker-compose {v} was found, which is v1 and unsupported)"),
            }),
            ComposeFlavor::Missing => Err(Error::NoCompose { v1: String::new() }),
        }
    }
}

fn detect_compose(here: &Utf8Path) -> ComposeFlavor {
    if let Ok(v) = crate::docker(["compose", "version", "--short"]).text(here) {
        return ComposeFlavor::Plugin(v.trim_start_matches('v').to_owned());
    }
    let standalone = Cmd::new("docker-compose", ["version", "--short"]);
    match standalone.text(here) {
        Ok(v) if v.trim_start_matches('v').starts_with('1') => ComposeFlavor::V1(v),
        Ok(v) => ComposeFlavor::StandaloneV2(v.trim_start_matches('v').to_owned()),
        Err(_) => ComposeFlavor::Missing,
    }
}

/// Why `docker info` failed: an engine that refuses this client's API
/// version answers, so it is not "not answering".
fn daemon_error(stderr: &str) -> Error {
    match crate::versions::api_refusal(stderr) {
        Some((client, min)) => Error::ClientTooOld { client, min },
        None => Error::NoDaemon {
            detail: first_line(stderr),
        },
    }
}

fn first_line(s: &str) -> String {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod endpoint_tests {
    use super::{daemon_error, endpoint_host};
    use crate::Error;

    #[test]
    fn an_engine_refusing_the_client_is_not_an_engine_that_does_not_answer() {
        let refused = "Error response from daemon: client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version";
        let e = daemon_error(refused);
        assert!(matches!(e, Error::ClientTooOld { .. }), "{e:?}");
        assert!(e.to_string().contains("upgrade the docker CLI"), "{e}");
        let gone = "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?";
        assert!(matches!(daemon_error(gone), Error::NoDaemon { .. }));
    }

    #[test]
    fn the_host_of_an_endpoint_on_another_machine() {
        let table = [
            ("tcp://10.0.0.2:2376", Some("10.0.0.2")),
            ("tcp://build-host.example:2375", Some("build-host.example")),
            ("ssh://ci@runner-3", Some("runner-3")),
            ("ssh://ci@runner-3:2222", Some("runner-3")),
            ("tcp://[fd00::2]:2376", Some("fd00::2")),
            ("https://10.1.2.3:2376", Some("10.1.2.3")),
            ("unix:///var/run/docker.sock", None),
            ("npipe:////./pipe/docker_engine", None),
            ("fd://", None),
            ("tcp://127.0.0.1:2375", None),
            ("tcp://localhost:2375", None),
            ("default", None),
        ];
        for (endpoint, host) in table {
            assert_eq!(endpoint_host(endpoint).as_deref(), host, "{endpoint}");
        }
    }
}
