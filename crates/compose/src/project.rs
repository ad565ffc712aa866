//! One Compose project and what the pipeline does to it: build, port check, up
//! with our own readiness polling, teardown, and the failure bundle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{ProjectSpec, Stack};
use crate::readiness::{Probe, Readiness, check, default_probes, judge_state, worst};
use process::{Cmd, GroupOptions, GroupOutput};

/// How often `up` asks `ps` while it waits (a `ps` itself takes ~0.1 s).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What to leave behind after a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Leave the stack running.
    Keep,
    /// Stop the containers; the next run starts them again.
    Stop,
    /// Remove containers and networks; keep volumes.
    Down,
    /// Remove containers, networks, volumes and orphans.
    Purge,
}

impl Policy {
    pub const NAMES: &'static [&'static str] = &["keep", "stop", "down", "purge"];

    pub fn parse(s: &str) -> Option<Policy> {
        match s {
            "keep" => Some(Policy::Keep),
            "stop" => Some(Policy::Stop),
            "down" => Some(Policy::Down),
            "purge" => Some(Policy::Purge),
            _ => None,
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Policy::NAMES[*self as usize])
    }
}

/// One container as `docker compose ps --all --format json` describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub service: String,
    pub state: String,
    #[serde(default)]
    pub health: String,
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub publishers: Option<Vec<Publisher>>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Publisher {
    #[serde(default, rename = "URL")]
    pub url: String,
    #[serde(default)]
    pub target_port: u16,
    /// 0 when the port is exposed but not published.
    #[serde(default)]
    pub published_port: u16,
    #[serde(default)]
    pub protocol: String,
}

impl Container {
    /// `HOST:PORT` where the engine publishes this container's TCP `target`
    /// port, as the engine reports it (so ports the engine picked are found too).
    pub fn published(&self, target: u16) -> Option<String> {
        let p =
            self.publishers.iter().flatten().find(|p| {
                p.target_port == target && p.published_port != 0 && p.protocol != "udp"
            })?;
        // Published on every address: the loopback one reaches it from here.
        let host = match p.url.as_str() {
            "" | "0.0.0.0" | "::" => "127.0.0.1",
            ip => ip,
        };
        Some(if host.contains(':') {
            format!("[{host}]:{}", p.published_port)
        } else {
            format!("{host}:{}", p.published_port)
        })
    }
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

/// A published host port and who has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortStatus {
    pub port: u16,
    pub service: String,
    pub state: PortState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    Free,
    /// Published by this project's own containers (a stack to reuse).
    Ours,
    /// Held by someone else, named.
    Taken(String),
    /// We may not bind it ourselves (a port below 1024 for a user who is not
    /// root): no evidence either way. The engine, which binds it, decides.
    Unknown(String),
}

/// What `up` did to each container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpSummary {
    /// New containers (first run, or config or image changed).
    pub created: usize,
    /// Containers that existed stopped and were started again.
    pub started: usize,
    /// Containers that were running already and were left alone.
    pub reused: usize,
    pub seconds: f64,
}

/// How `up` runs.
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// How long services may take to become ready.
    pub timeout: Duration,
    /// Files the containers read at start (certificates) last changed then:
    /// a running container started before it holds the old ones, and Compose,
    /// which sees no config change, would reuse it. Then all are recreated.
    pub mounted_files_changed: Option<SystemTime>,
    /// How a service is judged ready where the default does not fit.
    pub probes: BTreeMap<String, Probe>,
}

/// Whether a service's image changed in a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageBuild {
    pub service: String,
    pub image: String,
    /// `false` when BuildKit's cache gave the same image as before.
    pub built: bool,
}

/// What is left of a project on the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftovers {
    pub containers: Vec<LeftContainer>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    /// Images Compose built and named after the project (`<project>-<service>`).
    pub images: Vec<String>,
    /// Untagged images labelled with the project: what each rebuild leaves
    /// behind when it replaces the tag (by ID).
    pub dangling_images: Vec<String>,
}

/// A container left behind, and its state (`running`, `exited`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftContainer {
    pub name: String,
    pub state: String,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.networks.is_empty()
            && self.volumes.is_empty()
            && self.images.is_empty()
            && self.dangling_images.is_empty()
    }

    /// What the engine holds that `policy` said it would not, in words.
    pub fn broken_promise(&self, policy: Policy) -> Option<String> {
        let running: Vec<&str> = self
            .containers
            .iter()
            .filter(|c| c.state == "running")
            .map(|c| c.name.as_str())
            .collect();
        let names: Vec<&str> = self.containers.iter().map(|c| c.name.as_str()).collect();
        match policy {
            Policy::Keep => None,
            Policy::Stop if !running.is_empty() => Some(format!("still running: {running:?}")),
            Policy::Stop => None,
            Policy::Down if !names.is_empty() || !self.networks.is_empty() => Some(format!(
                "left behind: containers {names:?}, networks {:?}",
                self.networks
            )),
            Policy::Down => None,
            Policy::Purge if !self.is_empty() => Some(format!("left behind: {self}")),
            Policy::Purge => None,
        }
    }
}

impl std::fmt::Display for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing");
        }
        let containers: Vec<String> = self
            .containers
            .iter()
            .map(|c| format!("{} ({})", c.name, c.state))
            .collect();
        let parts = [
            ("containers", containers),
            ("networks", self.networks.clone()),
            ("volumes", self.volumes.clone()),
            ("images", self.images.clone()),
            ("dangling images", self.dangling_images.clone()),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(what, v)| format!("{what} {}", v.join(", ")))
            .collect();
        f.write_str(&shown.join("; "))
    }
}

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    pub spec: ProjectSpec,
    pub stack: Stack,
}

impl Project {
    pub fn load(spec: ProjectSpec) -> Result<Project> {
        let stack = Stack::load(&spec)?;
        Ok(Project { spec, stack })
    }

    pub fn name(&self) -> &str {
        &self.stack.name
    }

    fn compose<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all = self.spec.args();
        // The model names the project; use it even when the spec left it to Compose.
        if self.spec.project.is_none() {
            all.extend(["-p".to_owned(), self.stack.name.clone()]);
        }
        all.extend(args.into_iter().map(Into::into));
        crate::docker(all)
            .envs(&self.spec.env)
            // Older tools build with BuildKit only when asked; Compose v2 always does.
            .env("DOCKER_BUILDKIT", "1")
            .env("COMPOSE_DOCKER_CLI_BUILD", "1")
    }

    /// Builds every image with BuildKit, writing the whole log to `log`; on
    /// failure the error holds the log's tail, where the failing step is.
    pub fn build(&self, log: &Utf8Path) -> Result<Vec<ImageBuild>> {
        let cmd = self.compose(["--progress", "plain", "build"]);
        let out = cmd.run_group(
            &self.spec.dir,
            GroupOptions {
                capture: true,
                interruptible: true,
            },
        )?;
        interrupted_check(&out)?;
        let text = format!("{}{}", out.stdout, out.stderr);
        write_file(log, &text)?;
        if !out.success() {
            return Err(Error::Failed {
                command: cmd.to_string(),
                status: status(&out),
                stderr: format!("{}\n(whole log: {log})", tail(&text, 40)),
            });
        }
        let ran = services_that_ran_steps(&text);
        Ok(self
            .images()
            .into_iter()
            .map(|(service, image)| ImageBuild {
                built: ran.contains(&service),
                service,
                image,
            })
            .collect())
    }

    /// `(service, image name)` for every service that builds; Compose names an
    /// image without `image:` after the project and the service.
    pub fn images(&self) -> Vec<(String, String)> {
        self.stack
            .services
            .iter()
            .filter(|(_, s)| s.build.is_some())
            .map(|(name, s)| {
                (
                    name.clone(),
                    s.image
                        .clone()
                        .unwrap_or_else(|| format!("{}-{name}", self.name())),
                )
            })
            .collect()
    }

    /// Every published host port must be free, or published by this project already.
    pub fn check_ports(&self) -> Result<()> {
        for p in self.port_status()? {
            if let PortState::Taken(holder) = p.state {
                return Err(Error::PortTaken {
                    port: p.port,
                    service: p.service,
                    holder,
                });
            }
        }
        Ok(())
    }

    /// Each published host port: free, held by this project, or taken (by whom).
    pub fn port_status(&self) -> Result<Vec<PortStatus>> {
        let ours: BTreeSet<u16> = self
            .ps()?
            .iter()
            .flat_map(|c| c.publishers.iter().flatten().map(|p| p.published_port))
            .collect();
        let mut out = Vec::new();
        for (service, s) in &self.stack.services {
            for port in &s.ports {
                let Some(published) = port
                    .published
                    .as_deref()
                    .and_then(|p| p.parse::<u16>().ok())
                else {
                    continue;
                };
                let ip = port
                    .host_ip
                    .clone()
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into());
                let state = if ours.contains(&published) {
                    PortState::Ours
                } else {
                    match std::net::TcpListener::bind((ip.as_str(), published)) {
                        Ok(_) => PortState::Free,
                        Err(e) => port_state(&e, || holder(published)),
                    }
                };
                out.push(PortStatus {
                    port: published,
                    service: service.clone(),
                    state,
                });
            }
        }
        Ok(out)
    }

    /// The project's containers, stopped ones included.
    pub fn ps(&self) -> Result<Vec<Container>> {
        let cmd = self.compose(["ps", "--all", "--format", "json"]);
        let text = cmd.text(&self.spec.dir)?;
        let parse_error = |e: serde_json::Error| Error::Parse {
            command: cmd.to_string(),
            detail: e.to_string(),
        };
        // Older Compose prints one array, newer one object per line.
        if text.starts_with('[') {
            return serde_json::from_str(&text).map_err(parse_error);
        }
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).map_err(parse_error))
            .collect()
    }

    /// Starts the stack (reusing unchanged containers) and waits for every
    /// service: healthy with a healthcheck, running without, exited 0 when
    /// one-shot. Fails fast on an exit or an unhealthy service. `waiting` hears
    /// who is still awaited, each time that changes.
    pub fn up_and_wait(
        &self,
        opts: UpOptions,
        mut waiting: impl FnMut(&[(String, String)]),
    ) -> Result<UpSummary> {
        let start = Instant::now();
        let up_started = unix_time();
        // A container a previous run stopped still says `exited`: until `up`
        // has returned, such a container is not judged.
        let before: BTreeMap<String, String> =
            self.ps()?.into_iter().map(|c| (c.id, c.state)).collect();
        let stale = match opts.mounted_files_changed {
            Some(changed) => self.any_running_started_before(&before, changed)?,
            None => false,
        };
        let recreate = stale.then_some("--force-recreate");
        let up = self.compose(
            ["up", "--detach", "--no-build", "--remove-orphans"]
                .into_iter()
                .chain(recreate),
        );
        let dir = self.spec.dir.clone();
        let cmd = up.clone();
        let group = GroupOptions {
            capture: true,
            interruptible: true,
        };
        let mut child = Some(std::thread::spawn(move || cmd.run_group(&dir, group)));
        // Stops `up` if it still runs, and waits for its thread: nothing outlives the wait.
        let stop_up = |child: &mut Option<std::thread::JoinHandle<_>>| {
            process::interrupt::terminate_running();
            if let Some(h) = child.take() {
                let _ = h.join();
            }
        };
        let mut up_out: Option<GroupOutput> = None;
        let mut last: Vec<(String, String)> = Vec::new();
        loop {
            if process::interrupt::is_requested() {
                stop_up(&mut child);
                return Err(Error::Interrupted);
            }
            if let Some(h) = child.take_if(|h| h.is_finished()) {
                up_out = Some(h.join().expect("the up thread does not panic")?);
            }
            let containers = self.ps()?;
            let fresh = |c: &Container| up_out.is_some() || before.get(&c.id) != Some(&c.state);
            // A container that ran before `up` keeps its old log: a line from
            // an earlier start must not count as ready now.
            let since = |c: &Container| match before.get(&c.id).map(String::as_str) {
                Some("running") => 0,
                _ => up_started.saturating_sub(1),
            };
            let states = self.readiness(&containers, &opts.probes, fresh, since);
            // A service that failed explains more than Compose's own error does.
            if let Some((service, detail)) = states.iter().find_map(|(s, r)| match r {
                Readiness::Failed(why) => Some((s.clone(), why.clone())),
                _ => None,
            }) {
                stop_up(&mut child);
                let detail = format!("{detail}{}", self.last_words(&service, &containers));
                return Err(Error::ServiceFailed { service, detail });
            }
            if let Some(out) = &up_out
                && !out.success()
            {
                // Compose's last words are often about a dependent ("dependency
                // failed to start"): name its first real error, and the service
                // it names, with that service's own last lines.
                let first = first_error_line(&out.stderr);
                let service = containers
                    .iter()
                    .find(|c| first.contains(&c.name))
                    .map(|c| c.service.clone());
                let words = service
                    .as_deref()
                    .map(|s| self.last_words(s, &containers))
                    .unwrap_or_default();
                return Err(Error::UpFailed {
                    command: up.to_string(),
                    first,
                    detail: format!(
                        "{words}\n  compose said:\n    {}",
                        tail(&out.stderr, 10).replace('\n', "\n    ")
                    ),
                });
            }
            let pending: Vec<(String, String)> = states
                .into_iter()
                .filter_map(|(s, r)| match r {
                    Readiness::Waiting(why) => Some((s, why)),
                    _ => None,
                })
                .collect();
            if up_out.is_some() && pending.is_empty() {
                let mut summary = UpSummary {
                    seconds: start.elapsed().as_secs_f64(),
                    ..UpSummary::default()
                };
                for c in &containers {
                    match before.get(&c.id).map(String::as_str) {
                        None => summary.created += 1,
                        Some("running") => summary.reused += 1,
                        Some(_) => summary.started += 1,
                    }
                }
                return Ok(summary);
            }
            if start.elapsed() > opts.timeout {
                stop_up(&mut child);
                let list = pending
                    .iter()
                    .map(|(s, w)| format!("{s} ({w})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                return Err(Error::NotReady {
                    waiting: list,
                    seconds: opts.timeout.as_secs(),
                });
            }
            if pending != last && !pending.is_empty() {
                waiting(&pending);
                last = pending;
            }
            // `ps` itself takes ~0.1 s: together a state change is seen within ~0.2 s.
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Whether a running container (of `containers`: id to state) started
    /// before `time`; one `docker inspect`, only when some run.
    fn any_running_started_before(
        &self,
        containers: &BTreeMap<String, String>,
        time: SystemTime,
    ) -> Result<bool> {
        let running: Vec<&str> = containers
            .iter()
            .filter(|(_, s)| *s == "running")
            .map(|(id, _)| id.as_str())
            .collect();
        if running.is_empty() {
            return Ok(false);
        }
        let args = ["inspect", "--format", "{{.State.StartedAt}}"]
            .into_iter()
            .chain(running);
        let cmd = crate::docker(args);
        let text = cmd.text(&self.spec.dir)?;
        for line in text.lines() {
            let started = time::OffsetDateTime::parse(
                line.trim(),
                &time::format_description::well_known::Rfc3339,
            )
            .map_err(|e| Error::Parse {
                command: cmd.to_string(),
                detail: format!("{line}: {e}"),
            })?;
            if SystemTime::from(started) < time {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A failed service's last log lines and last health-check output, for the error.
    fn last_words(&self, service: &str, containers: &[Container]) -> String {
        let mut out = String::new();
        if let Ok(logs) = self
            .compose(["logs", "--no-color", "--tail", "5", service])
            .text(&self.spec.dir)
            && !logs.is_empty()
        {
            out.push_str(&format!(
                "\n  last log lines:\n    {}",
                logs.replace('\n', "\n    ")
            ));
        }
        for c in containers.iter().filter(|c| c.service == service) {
            if let Ok(json) =
                crate::docker(["inspect", "--format", "{{json .State.Health}}", &c.id])
                    .text(&self.spec.dir)
                && let Ok(health) = serde_json::from_str::<Health>(&json)
                && let Some(last) = health.log.last()
            {
                out.push_str(&format!(
                    "\n  last health check (exit {}): {}",
                    last.exit_code,
                    last.output.trim()
                ));
            }
        }
        out
    }

    fn readiness(
        &self,
        containers: &[Container],
        probes: &BTreeMap<String, Probe>,
        fresh: impl Fn(&Container) -> bool,
        since: impl Fn(&Container) -> u64,
    ) -> Vec<(String, Readiness)> {
        self.stack
            .services
            .iter()
            .map(|(name, service)| {
                let mine: Vec<&Container> =
                    containers.iter().filter(|c| &c.service == name).collect();
                let probes = probes.get(name).map_or_else(
                    || default_probes(service.has_healthcheck(), &service.published_tcp()),
                    |p| vec![p.clone()],
                );
                let r = if mine.is_empty() {
                    Readiness::Waiting("not created yet".into())
                } else {
                    mine.iter()
                        .map(|c| {
                            if !fresh(c) {
                                return Readiness::Waiting("starting".into());
                            }
                            judge_state(c, &probes).unwrap_or_else(|| {
                                let logs = || self.logs_since(c, since(c));
                                probes
                                    .iter()
                                    .map(|p| check(c, p, &logs))
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

    /// Applies the policy; `grace` is how long each container gets after SIGTERM.
    pub fn teardown(&self, policy: Policy, grace: Duration) -> Result<()> {
        let t = grace.as_secs().to_string();
        // After `docker stop`, Compose's own command handles what that does not:
        // containers not running (created, restarting), networks, volumes, images.
        let args: Vec<&str> = match policy {
            Policy::Keep => return Ok(()),
            Policy::Stop => vec!["stop", "--timeout", &t],
            Policy::Down => vec!["down", "--timeout", &t, "--remove-orphans"],
            // `--rmi local`: the images Compose named after the project (services
            // without `image:`), which a unique CI project name would otherwise
            // leave behind run after run. BuildKit's cache keeps their layers.
            Policy::Purge => vec![
                "down",
                "--timeout",
                &t,
                "--remove-orphans",
                "--volumes",
                "--rmi",
                "local",
            ],
        };
        self.stop_all_at_once(grace)?;
        self.run_teardown_step(&self.compose(args))?;
        if policy == Policy::Purge {
            // `--rmi local` removes the tagged images; each rebuild also left
            // the image it replaced, untagged but still labelled with the project.
            let dangling = leftovers(self.name())?.dangling_images;
            if !dangling.is_empty() {
                let args = ["image", "rm", "--force"]
                    .map(str::to_owned)
                    .into_iter()
                    .chain(dangling);
                self.run_teardown_step(&crate::docker(args))?;
            }
        }
        Ok(())
    }

    /// Not interruptible: a first Ctrl-C during teardown lets it finish.
    fn run_teardown_step(&self, cmd: &Cmd) -> Result<()> {
        let out = cmd.run_group(
            &self.spec.dir,
            GroupOptions {
                capture: true,
                interruptible: false,
            },
        )?;
        if !out.success() {
            return Err(Error::Failed {
                command: cmd.to_string(),
                status: status(&out),
                stderr: tail(&out.stderr, 20),
            });
        }
        Ok(())
    }

    /// Stops every running container of the project in one `docker stop`,
    /// which signals them all at once: the grace is paid once, where Compose's
    /// dependency-ordered stop pays it once per level (two SIGTERM-ignoring
    /// services: 2.2 s against 4.4 s). A test stack loses nothing by the order.
    fn stop_all_at_once(&self, grace: Duration) -> Result<()> {
        let running: Vec<String> = self
            .ps()?
            .into_iter()
            .filter(|c| c.state == "running")
            .map(|c| c.id)
            .collect();
        if running.is_empty() {
            return Ok(());
        }
        let args = [
            "stop".to_owned(),
            "--time".to_owned(),
            grace.as_secs().to_string(),
        ]
        .into_iter()
        .chain(running);
        self.run_teardown_step(&crate::docker(args))
    }

    /// Writes every service's logs, `ps --all` and each container's state
    /// (with its health-check log) into `dir`. What a command could not get is
    /// written in its place, so the bundle is never missing a file silently.
    pub fn bundle(&self, dir: &Utf8Path) -> Result<Utf8PathBuf> {
        let text = |cmd: Cmd| {
            cmd.output(&self.spec.dir).map_or_else(
                |e| e.to_string(),
                |b| String::from_utf8_lossy(&b).into_owned(),
            )
        };
        write_file(
            &dir.join("logs.txt"),
            &text(self.compose(["logs", "--no-color", "--timestamps"])),
        )?;
        write_file(&dir.join("ps.txt"), &text(self.compose(["ps", "--all"])))?;
        for c in self.ps().unwrap_or_default() {
            let state = text(crate::docker([
                "inspect",
                "--format",
                "{{json .State}}",
                &c.id,
            ]));
            write_file(&dir.join(format!("state-{}.json", c.name)), &state)?;
        }
        Ok(dir.to_owned())
    }

    /// What the engine still holds for this project.
    pub fn leftovers(&self) -> Result<Leftovers> {
        leftovers(self.name())
    }
}

/// What the engine holds for a project name, found by Compose's labels (the
/// five listings at once: this runs after every teardown).
pub fn leftovers(project: &str) -> Result<Leftovers> {
    let here = Utf8Path::new(".");
    let label = format!("label=com.docker.compose.project={project}");
    let lines = |args: &[&str]| -> Result<Vec<String>> {
        let text = crate::docker(args.iter().copied()).text(here)?;
        Ok(text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    };
    std::thread::scope(|s| {
        let containers = s.spawn(|| {
            lines(&[
                "ps",
                "--all",
                "--filter",
                &label,
                "--format",
                "{{.Names}}\t{{.State}}",
            ])
        });
        let networks =
            s.spawn(|| lines(&["network", "ls", "--filter", &label, "--format", "{{.Name}}"]));
        let volumes =
            s.spawn(|| lines(&["volume", "ls", "--filter", &label, "--format", "{{.Name}}"]));
        let images = s.spawn(|| {
            lines(&[
                "image",
                "ls",
                "--filter",
                &label,
                "--format",
                "{{.Repository}}",
            ])
        });
        let dangling = s.spawn(|| {
            lines(&[
                "image",
                "ls",
                "--quiet",
                "--no-trunc",
                "--filter",
                "dangling=true",
                "--filter",
                &label,
            ])
        });
        let joined = |h: std::thread::ScopedJoinHandle<'_, Result<Vec<String>>>| {
            h.join().expect("listing does not panic")
        };
        Ok(Leftovers {
            containers: joined(containers)?
                .into_iter()
                .map(|line| {
                    let (name, state) = line.split_once('\t').unwrap_or((&line, ""));
                    LeftContainer {
                        name: name.to_owned(),
                        state: state.to_owned(),
                    }
                })
                .collect(),
            networks: joined(networks)?,
            volumes: joined(volumes)?,
            images: joined(images)?
                .into_iter()
                .filter(|name| name.starts_with(&format!("{project}-")))
                .collect(),
            dangling_images: joined(dangling)?,
        })
    })
}

/// The services for which BuildKit ran at least one Dockerfile instruction,
/// read from `--progress plain`: `#4 [backend 1/2] COPY ...` names step 4 and
/// its service, and `#4 CACHED` says the cache answered it. Image IDs cannot
/// tell this: two projects building one tag at once can each miss the cache,
/// and later hits may return either of the two equal images.
fn services_that_ran_steps(log: &str) -> BTreeSet<String> {
    let mut service_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut cached: BTreeSet<&str> = BTreeSet::new();
    for line in log.lines() {
        let Some((step, rest)) = line.strip_prefix('#').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        if rest == "CACHED" {
            cached.insert(step);
        } else if let Some((label, instruction)) = rest.strip_prefix('[').and_then(|r| r.split_once("] "))
            // `[service k/n]` or `[service stage k/n]`; `[service internal]` is no instruction.
            && label.rsplit(' ').next().is_some_and(|k| k.contains('/'))
            // FROM resolves a base image; it runs nothing.
            && !instruction.starts_with("FROM ")
        {
            service_of.insert(step, label.split(' ').next().unwrap_or_default());
        }
    }
    service_of
        .into_iter()
        .filter(|(step, _)| !cached.contains(step))
        .map(|(_, s)| s.to_owned())
        .collect()
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn write_file(path: &Utf8Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_string(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })
}

fn interrupted_check(out: &GroupOutput) -> Result<()> {
    if process::interrupt::is_requested() && !out.success() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

fn status(out: &GroupOutput) -> String {
    out.code.map_or_else(
        || "killed by a signal".to_owned(),
        |c| format!("exit status {c}"),
    )
}

/// The line of Compose's output that says what went wrong: the first that
/// reads as an error, else the last one.
fn first_error_line(stderr: &str) -> String {
    let lines: Vec<&str> = stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("error") || l.contains("error response") || l.contains("failed")
        })
        .or(lines.last())
        .map_or_else(|| "(no output)".to_owned(), |l| (*l).to_owned())
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// What a failed test bind says: only "address in use" is evidence that
/// someone holds the port; a permission error (a port below 1024 for a user
/// without CAP_NET_BIND_SERVICE, where the daemon binds it for them) is not.
fn port_state(e: &std::io::Error, holder: impl FnOnce() -> String) -> PortState {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => PortState::Taken(holder()),
        _ => PortState::Unknown(e.to_string()),
    }
}

/// Who holds a host port: a container (by name and project), or a process.
fn holder(port: u16) -> String {
    let filter = format!("publish={port}");
    let fmt = "{{.Names}} (project {{.Label \"com.docker.compose.project\"}})";
    match crate::docker(["ps", "--filter", &filter, "--format", fmt]).text(Utf8Path::new(".")) {
        Ok(names) if !names.is_empty() => format!("container {}", names.replace('\n', ", ")),
        _ => format!("a process outside Docker (find it with `ss -ltnp 'sport = :{port}'`)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_error_line_of_compose_is_found() {
        let out = " Container shop-db-1  Starting\n Container shop-db-1  Started\n\
                   Error response from daemon: unable to find user nosuchuser: no matching entries in passwd file\n";
        assert_eq!(
            first_error_line(out),
            "Error response from daemon: unable to find user nosuchuser: no matching entries in passwd file"
        );
        let dep = " Container shop-api-1  Waiting\ndependency failed to start: container shop-db-1 is unhealthy\n";
        assert_eq!(
            first_error_line(dep),
            "dependency failed to start: container shop-db-1 is unhealthy"
        );
        assert_eq!(first_error_line("just this\n"), "just this");
        assert_eq!(first_error_line(""), "(no output)");
    }

    #[test]
    fn each_policy_promises_what_it_leaves() {
        let c = |name: &str, state: &str| LeftContainer {
            name: name.into(),
            state: state.into(),
        };
        let stopped = Leftovers {
            containers: vec![c("p-api-1", "exited")],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
            images: vec!["p-api".into()],
            dangling_images: vec![],
        };
        let running = Leftovers {
            containers: vec![c("p-api-1", "running")],
            ..stopped.clone()
        };
        let volumes_only = Leftovers {
            volumes: vec!["p_data".into()],
            ..Leftovers::default()
        };
        let dangling = Leftovers {
            dangling_images: vec!["sha256:ab".into()],
            ..Leftovers::default()
        };
        let kept = |l: &Leftovers, p| l.broken_promise(p).is_none();
        assert!(kept(&running, Policy::Keep));
        assert!(kept(&stopped, Policy::Stop) && !kept(&running, Policy::Stop));
        assert!(kept(&volumes_only, Policy::Down) && !kept(&stopped, Policy::Down));
        assert!(kept(&Leftovers::default(), Policy::Purge));
        assert!(!kept(&volumes_only, Policy::Purge));
        assert_eq!(
            dangling.broken_promise(Policy::Purge).as_deref(),
            Some("left behind: dangling images sha256:ab")
        );
        assert_eq!(
            running.to_string(),
            "containers p-api-1 (running); networks p_default; volumes p_data; images p-api"
        );
    }

    #[test]
    fn only_address_in_use_means_taken() {
        use std::io::{Error, ErrorKind};
        let holder = || "container x".to_owned();
        assert_eq!(
            port_state(&Error::from(ErrorKind::AddrInUse), holder),
            PortState::Taken("container x".into())
        );
        assert!(matches!(
            port_state(&Error::from(ErrorKind::PermissionDenied), holder),
            PortState::Unknown(_)
        ));
        assert!(matches!(
            port_state(&Error::from(ErrorKind::AddrNotAvailable), holder),
            PortState::Unknown(_)
        ));
    }

    #[test]
    fn buildkit_progress_tells_which_services_ran_steps() {
        // Trimmed from real `docker compose --progress plain build` output.
        let log = "\
#3 [backend internal] load build context
#3 transferring context: 4.04MB 0.0s done
#3 DONE 0.0s

#4 [backend 1/1] COPY bin/demo-backend /demo-backend
#4 CACHED

#5 [backend] exporting to image
#5 DONE 0.0s

#9 [gateway 1/1] COPY bin/demo-gateway /demo-gateway
#9 DONE 0.1s

#11 [api builder 1/3] FROM docker.io/library/rust:1.95
#11 DONE 0.0s

#12 [api builder 2/3] RUN cargo build
#12 CACHED

#13 [api stage-1 3/3] COPY --from=builder /app /app
#13 CACHED
";
        let ran: Vec<String> = services_that_ran_steps(log).into_iter().collect();
        assert_eq!(ran, ["gateway"]);
        assert!(services_that_ran_steps("").is_empty());
    }
}
