//! When a service is ready: the judgement from a container's state, and the
//! probes that look through its published ports or at its logs. Docker's
//! `running` only says a process started; a proxy without a healthcheck is
//! `running` half a second before its port answers, and tests that start then
//! get refused or hung connections.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use process::GroupOptions;
use serde::{Deserialize, Deserializer};

use crate::project::{Container, Project};

/// How one service is judged ready (`readiness.services.<name>` in the
/// config): a word (`healthcheck`, `running`, `exited`) or a one-key map
/// (`{ tcp: 8080 }`, `{ http: { port: 80, path: /health, status: 200 } }`,
/// `{ log: "ready to accept" }`).
#[derive(Debug, Clone)]
pub enum Probe {
    /// Docker's healthcheck says healthy (the default where one is defined).
    Healthcheck,
    /// The container runs, nothing more.
    Running,
    /// The container exited 0: a one-shot job (a migration, a seed).
    Exited,
    /// A TCP connection through the host port published for this container
    /// port is accepted and stays open (Docker's proxy accepts and then closes
    /// it while nothing listens behind it).
    Tcp(u16),
    /// An HTTP request through the published port gets an answer.
    Http(HttpProbe),
    /// A line of the container's log matches this regex.
    Log(Pattern),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// The container port; its published host port is asked.
    pub port: u16,
    #[serde(default = "root_path")]
    pub path: String,
    /// The status to expect; any answer when not given.
    pub status: Option<u16>,
}

fn root_path() -> String {
    "/".into()
}

const PROBES: &[&str] = &["healthcheck", "running", "exited", "tcp", "http", "log"];

// By hand: serde_yaml reads derived enums only from YAML tags (`!tcp 8080`),
// and the one-key map is what people write.
impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Probe, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Probe;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("healthcheck, running, exited, { tcp: PORT }, { http: { port: PORT } } or { log: REGEX }")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Probe, E> {
                match v {
                    "healthcheck" => Ok(Probe::Healthcheck),
                    "running" => Ok(Probe::Running),
                    "exited" => Ok(Probe::Exited),
                    other => Err(E::unknown_variant(other, PROBES)),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Probe, A::Error> {
                use serde::de::Error as _;
                let key: String = map
                    .next_key()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let probe = match key.as_str() {
                    "tcp" => Probe::Tcp(map.next_value()?),
                    "http" => Probe::Http(map.next_value()?),
                    "log" => Probe::Log(map.next_value()?),
                    other => return Err(A::Error::unknown_variant(other, PROBES)),
                };
                if map.next_key::<String>()?.is_some() {
                    return Err(A::Error::custom(
                        "a probe is one of tcp, http or log, not several",
                    ));
                }
                Ok(probe)
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// A regex, checked when the config is read.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text)
            .map(Pattern)
            .map_err(|e| serde::de::Error::custom(format!("`{text}` is not a regex: {e}")))
    }
}

/// How long a TCP probe's connection must stay open to count as served.
pub const TCP_HOLD: Duration = Duration::from_millis(150);

/// Where one service stands while we wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Waiting(String),
    Failed(String),
}

/// What a service's probes are, when the config names none: its healthcheck;
/// else a TCP connection on each published TCP port; else running.
pub fn default_probes(has_healthcheck: bool, published_tcp: &[u16]) -> Vec<Probe> {
    if has_healthcheck {
        vec![Probe::Healthcheck]
    } else if published_tcp.is_empty() {
        vec![Probe::Running]
    } else {
        published_tcp.iter().map(|&p| Probe::Tcp(p)).collect()
    }
}

/// The judgement from the container's state alone: failed (exited non-zero,
/// restarting, unhealthy), ready without more to check, waiting, or `None`
/// when it runs and the probes decide.
pub fn judge_state(c: &Container, probes: &[Probe]) -> Option<Readiness> {
    let one_shot = probes.iter().any(|p| matches!(p, Probe::Exited));
    Some(match (c.state.as_str(), c.health.as_str()) {
        // A crash loop under `restart:` shows as `restarting` between tries:
        // the service will not come up by waiting.
        ("restarting", _) => Readiness::Failed(format!(
            "{} keeps restarting (last exit code {})",
            c.name, c.exit_code
        )),
        ("running", "unhealthy") => Readiness::Failed(format!("{} is unhealthy", c.name)),
        ("running", _) if one_shot => {
            Readiness::Waiting("running; a one-shot, waiting for it to exit".into())
        }
        ("running", _) => return None,
        ("exited", _) if c.exit_code == 0 => Readiness::Ready,
        ("exited" | "dead", _) => {
            Readiness::Failed(format!("{} exited with code {}", c.name, c.exit_code))
        }
        (state, _) => Readiness::Waiting(state.to_owned()),
    })
}

/// A running container's probe: ports published on every address are
/// reached at `host`; `logs` reads its log when a probe needs it.
pub fn check(
    c: &Container,
    probe: &Probe,
    host: &str,
    logs: &dyn Fn() -> Option<String>,
) -> Readiness {
    match probe {
        Probe::Healthcheck => match c.health.as_str() {
            "healthy" => Readiness::Ready,
            // Engine 28 lists a container that has just started without its
            // health for a moment. A service with no healthcheck never gets
            // this probe: preflight refuses `healthcheck` for it.
            "" => Readiness::Waiting("health: not reported yet".into()),
            h => Readiness::Waiting(format!("health: {h}")),
        },
        Probe::Running | Probe::Exited => Readiness::Ready,
        Probe::Tcp(port) => match c.published(*port, host) {
            None => Readiness::Failed(format!("{} publishes no port {port} to probe", c.name)),
            Some(addr) if tcp_stays_open(&addr) => Readiness::Ready,
            Some(addr) => Readiness::Waiting(format!("port {port} ({addr}) not answering")),
        },
        Probe::Http(h) => match c.published(h.port, host) {
            None => Readiness::Failed(format!("{} publishes no port {} to probe", c.name, h.port)),
            Some(addr) => match http_status(&addr, &h.path) {
                Some(s) if h.status.is_none_or(|want| want == s) => Readiness::Ready,
                Some(s) => Readiness::Waiting(format!("http://{addr}{} answers {s}", h.path)),
                None => Readiness::Waiting(format!("http://{addr}{} not answering", h.path)),
            },
        },
        Probe::Log(p) => match logs() {
            Some(text) if text.lines().any(|l| p.0.is_match(l)) => Readiness::Ready,
            _ => Readiness::Waiting(format!("no log line matches `{}` yet", p.0)),
        },
    }
}

/// The worse of two: failed over waiting over ready.
pub fn worst(a: Readiness, b: Readiness) -> Readiness {
    match (a, b) {
        (f @ Readiness::Failed(_), _) | (_, f @ Readiness::Failed(_)) => f,
        (w @ Readiness::Waiting(_), _) | (_, w @ Readiness::Waiting(_)) => w,
        _ => Readiness::Ready,
    }
}

/// Connects, then waits a moment: a server keeps the connection open (or
/// speaks first), Docker's port proxy with nothing behind it closes it.
fn tcp_stays_open(addr: &str) -> bool {
    let Some(sock) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&sock, Duration::from_millis(500)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(TCP_HOLD));
    let mut byte = [0u8; 1];
    match stream.read(&mut byte) {
        Ok(0) => false,
        Ok(_) => true,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

/// The status of `GET path` on `addr`, or `None` when nothing answers. A
/// probe needs only the status line: one request written out, the answer
/// parsed by httparse. (An HTTP client crate would bring URL and IDNA
/// handling, the slowest part of the tool's cold compile, for nothing here.)
fn http_status(addr: &str, path: &str) -> Option<u16> {
    use std::io::Write as _;
    let sock = addr.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nUser-Agent: cargo-e2e\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(_) if response.code.is_some() => return response.code,
            Ok(_) if buf.len() < 64 * 1024 => continue,
            _ => return None,
        }
    }
}

/// Judging the services of a stack that is starting: each service's
/// containers by their state, their own healthcheck run here, and the probes.
impl Project {
    /// How each service in `judged` stands now: `fresh` says whether a
    /// container's state is news (not left by an earlier run or being
    /// replaced), `since` from when its log counts.
    pub(crate) fn readiness(
        &self,
        containers: &[Container],
        probes: &BTreeMap<String, Vec<Probe>>,
        checks: &HealthChecks,
        judged: &BTreeSet<&str>,
        fresh: impl Fn(&Container) -> bool,
        since: impl Fn(&Container) -> u64,
    ) -> Vec<(String, Readiness)> {
        let host = self.spec.publish_host();
        // Only the services in scope: judging another may run its check.
        self.stack
            .services
            .iter()
            .filter(|(name, _)| judged.contains(name.as_str()))
            .map(|(name, service)| {
                let mine: Vec<&Container> =
                    containers.iter().filter(|c| &c.service == name).collect();
                let probes = probes.get(name).map(Vec::as_slice).unwrap_or_default();
                let r = if mine.is_empty() {
                    Readiness::Waiting("not created yet".into())
                } else {
                    mine.iter()
                        .map(|c| {
                            if !fresh(c) {
                                return Readiness::Waiting("starting".into());
                            }
                            judge_state(c, probes).unwrap_or_else(|| {
                                // Its own check, run now, rather than Docker's next run of it.
                                if c.health == "starting"
                                    && probes.iter().any(|p| matches!(p, Probe::Healthcheck))
                                    && let Some(cmd) = service.health_command()
                                    && checks.passes(self, c, &cmd)
                                {
                                    return Readiness::Ready;
                                }
                                let logs = || self.logs_since(c, since(c));
                                probes
                                    .iter()
                                    .map(|p| check(c, p, &host, &logs))
                                    .fold(Readiness::Ready, worst)
                            })
                        })
                        .fold(Readiness::Ready, worst)
                };
                (name.clone(), r)
            })
            .collect()
    }

    /// A container's log since `since` (seconds since the epoch; 0: all of it).
    fn logs_since(&self, c: &Container, since: u64) -> Option<String> {
        let mut args = vec!["logs".to_owned()];
        if since > 0 {
            args.extend(["--since".to_owned(), since.to_string()]);
        }
        args.push(c.id.clone());
        let out = crate::docker(args).run_group(
            &self.spec.dir,
            GroupOptions {
                capture: true,
                interruptible: false,
            },
        );
        out.ok().map(|o| format!("{}{}", o.stdout, o.stderr))
    }
}

/// Healthchecks run here with `docker exec`: which containers passed, which
/// services' checks cannot be run from outside (left to Docker, with why).
#[derive(Debug, Default)]
pub(crate) struct HealthChecks {
    passed: RefCell<BTreeSet<String>>,
    used: RefCell<BTreeSet<String>>,
    pub(crate) unusable: RefCell<BTreeMap<String, String>>,
}

impl HealthChecks {
    /// Whether the container's check passes now; never waits longer than the
    /// check's own timeout (a hung check is left to finish on its own).
    pub(crate) fn passes(
        &self,
        project: &Project,
        c: &Container,
        cmd: &(Vec<String>, Duration),
    ) -> bool {
        if self.passed.borrow().contains(&c.id) {
            return true;
        }
        if self.unusable.borrow().contains_key(&c.service) {
            return false;
        }
        self.used.borrow_mut().insert(c.service.clone());
        let (argv, timeout) = cmd;
        let exec = crate::docker(
            ["exec".to_owned(), c.id.clone()]
                .into_iter()
                .chain(argv.iter().cloned()),
        );
        let dir = project.spec.dir.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let out = exec.run_group(
                &dir,
                GroupOptions {
                    capture: true,
                    interruptible: false,
                },
            );
            let _ = tx.send(out);
        });
        match rx.recv_timeout(*timeout) {
            Ok(Ok(out)) if out.success() => {
                self.passed.borrow_mut().insert(c.id.clone());
                true
            }
            // The runtime could not start the command at all: only Docker can run this check.
            Ok(Ok(out)) if matches!(out.code, Some(126 | 127)) => {
                let why = crate::up::first_error_line(&format!("{}{}", out.stderr, out.stdout));
                self.unusable.borrow_mut().insert(c.service.clone(), why);
                false
            }
            _ => false,
        }
    }

    /// The services whose check ran here.
    pub(crate) fn used(&self) -> Vec<String> {
        let unusable = self.unusable.borrow();
        self.used
            .borrow()
            .iter()
            .filter(|s| !unusable.contains_key(*s))
            .cloned()
            .collect()
    }
}

/// Whether a container's state, listed while `up` still runs, is Compose
/// stopping it to replace it (a changed image or config): a container that
/// ran before `up` and runs no more. Its exit is no verdict on the service.
/// The old container passes through `exited`, and `dead` or `removing` while
/// the engine deletes it (the daemon marks it dead before it removes its
/// layer). Seen on Engine 28 in CI: "api-1 exited with code 0" while its
/// replacement was `created`, which only a `dead` state reads as.
pub(crate) fn being_replaced(before: Option<&str>, now: &str) -> bool {
    before == Some("running") && !matches!(now, "running" | "restarting")
}

/// `docker inspect`'s `.State.Health`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Health {
    #[serde(default)]
    log: Vec<HealthProbe>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthProbe {
    exit_code: i64,
    output: String,
}

/// The last output of a container's healthcheck, as Docker recorded it.
pub(crate) fn last_health(project: &Project, c: &Container) -> Option<String> {
    let json = crate::docker(["inspect", "--format", "{{json .State.Health}}", &c.id])
        .text(&project.spec.dir)
        .ok()?;
    let health = serde_json::from_str::<Health>(&json).ok()?;
    let last = health.log.last()?;
    Some(format!(
        "last health check (exit {}): {}",
        last.exit_code,
        last.output.trim()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::Publisher;

    fn container(state: &str, health: &str, exit_code: i32, ports: &[(u16, u16)]) -> Container {
        Container {
            id: "id".into(),
            name: "shop-api-1".into(),
            service: "api".into(),
            state: state.into(),
            health: health.into(),
            exit_code,
            publishers: Some(
                ports
                    .iter()
                    .map(|&(target, published)| Publisher {
                        url: "0.0.0.0".into(),
                        target_port: target,
                        published_port: published,
                        protocol: "tcp".into(),
                    })
                    .collect(),
            ),
            labels: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_container_that_ran_before_up_and_stops_meanwhile_is_being_replaced() {
        for (before, now, replaced) in [
            (Some("running"), "exited", true),
            (Some("running"), "dead", true),
            (Some("running"), "removing", true),
            (Some("running"), "running", false),
            (Some("running"), "restarting", false),
            // Stopped before `up`: `up` starts it again, its exit counts.
            (Some("exited"), "exited", false),
            (Some("created"), "dead", false),
            // New: `up` made it, its exit counts.
            (None, "exited", false),
            (None, "dead", false),
        ] {
            assert_eq!(being_replaced(before, now), replaced, "{before:?} -> {now}");
        }
    }

    #[test]
    fn a_health_not_reported_yet_is_waited_for() {
        // Engine 28 lists a just-started container without its health.
        let none = || None;
        let c = container("running", "", 0, &[]);
        assert_eq!(
            check(&c, &Probe::Healthcheck, "127.0.0.1", &none),
            Readiness::Waiting("health: not reported yet".into())
        );
        let c = container("running", "healthy", 0, &[]);
        assert_eq!(
            check(&c, &Probe::Healthcheck, "127.0.0.1", &none),
            Readiness::Ready
        );
    }

    #[test]
    fn the_state_alone_decides_failures_and_one_shots() {
        type Row<'a> = (&'a str, &'a str, i32, &'a [Probe], Option<Readiness>);
        let running = [Probe::Running];
        let table: &[Row] = &[
            ("running", "", 0, &running, None),
            (
                "running",
                "unhealthy",
                0,
                &running,
                Some(Readiness::Failed("shop-api-1 is unhealthy".into())),
            ),
            (
                "restarting",
                "",
                1,
                &running,
                Some(Readiness::Failed(
                    "shop-api-1 keeps restarting (last exit code 1)".into(),
                )),
            ),
            ("exited", "", 0, &running, Some(Readiness::Ready)),
            (
                "exited",
                "",
                3,
                &running,
                Some(Readiness::Failed("shop-api-1 exited with code 3".into())),
            ),
            (
                "created",
                "",
                0,
                &running,
                Some(Readiness::Waiting("created".into())),
            ),
            (
                "running",
                "",
                0,
                &[Probe::Exited],
                Some(Readiness::Waiting(
                    "running; a one-shot, waiting for it to exit".into(),
                )),
            ),
        ];
        for (state, health, code, probes, want) in table {
            let c = container(state, health, *code, &[]);
            assert_eq!(&judge_state(&c, probes), want, "{state} {health} {code}");
        }
    }

    #[test]
    fn defaults_follow_the_healthcheck_then_the_published_ports() {
        assert!(matches!(
            default_probes(true, &[80])[..],
            [Probe::Healthcheck]
        ));
        assert!(matches!(default_probes(false, &[])[..], [Probe::Running]));
        assert!(matches!(
            default_probes(false, &[80, 443])[..],
            [Probe::Tcp(80), Probe::Tcp(443)]
        ));
    }

    #[test]
    fn a_tcp_probe_wants_a_connection_that_stays_open() {
        let none = || None;
        // A listener that accepts and keeps the connection: ready.
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let open_port = open.local_addr().unwrap().port();
        let c = container("running", "", 0, &[(8080, open_port)]);
        assert_eq!(
            check(&c, &Probe::Tcp(8080), "127.0.0.1", &none),
            Readiness::Ready
        );
        // One that accepts and closes at once, as Docker's proxy does while
        // nothing listens in the container: not ready.
        let closing = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let closing_port = closing.local_addr().unwrap().port();
        let closer = std::thread::spawn(move || {
            let (s, _) = closing.accept().unwrap();
            drop(s);
        });
        let c = container("running", "", 0, &[(8080, closing_port)]);
        assert!(matches!(
            check(&c, &Probe::Tcp(8080), "127.0.0.1", &none),
            Readiness::Waiting(_)
        ));
        closer.join().unwrap();
        // Nothing there at all: not ready; a port that is not published: a config error.
        drop(open);
        let c = container("running", "", 0, &[(8080, open_port)]);
        assert!(matches!(
            check(&c, &Probe::Tcp(8080), "127.0.0.1", &none),
            Readiness::Waiting(_)
        ));
        assert!(matches!(
            check(&c, &Probe::Tcp(9999), "127.0.0.1", &none),
            Readiness::Failed(_)
        ));
    }

    #[test]
    fn http_and_log_probes() {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let serve = std::thread::spawn(move || {
            for _ in 0..2 {
                let r = server.recv().unwrap();
                let code = if r.url() == "/health" { 200 } else { 503 };
                r.respond(tiny_http::Response::empty(code)).unwrap();
            }
        });
        let c = container("running", "", 0, &[(80, port)]);
        let none = || None;
        let http = |path: &str| {
            Probe::Http(HttpProbe {
                port: 80,
                path: path.into(),
                status: Some(200),
            })
        };
        assert_eq!(
            check(&c, &http("/health"), "127.0.0.1", &none),
            Readiness::Ready
        );
        assert!(
            matches!(check(&c, &http("/"), "127.0.0.1", &none), Readiness::Waiting(w) if w.contains("answers 503"))
        );
        serve.join().unwrap();

        let log = Probe::Log(Pattern(regex::Regex::new("listening on \\d+").unwrap()));
        let said = || Some("starting\nlistening on 8080\n".to_owned());
        assert_eq!(check(&c, &log, "127.0.0.1", &said), Readiness::Ready);
        let quiet = || Some("starting\n".to_owned());
        assert!(matches!(
            check(&c, &log, "127.0.0.1", &quiet),
            Readiness::Waiting(_)
        ));
    }
}
