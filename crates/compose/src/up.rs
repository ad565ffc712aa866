//! `up` and the wait: Compose starts the stack in a thread while we poll
//! `ps` and judge each service (`readiness.rs`), failing fast with the
//! service's own last words, and naming Compose's real error when `up` fails.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Container, Project, tail};
use crate::readiness::{Probe, Readiness, check, default_probes, judge_state, worst};
use process::{GroupOptions, GroupOutput};

/// How often `up` asks `ps` while it waits (a `ps` itself takes ~0.1 s).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long `up` runs before the wait starts asking `ps`.
const UP_QUIET: Duration = Duration::from_secs(1);

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
    /// Seconds from the start of `up` until each service was first judged
    /// ready: which service costs what.
    #[serde(default)]
    pub ready_s: BTreeMap<String, f64>,
    /// How many `up`s started the stack: 1, or one per dependency level.
    #[serde(default)]
    pub levels: usize,
    /// Services whose healthcheck the tool ran itself (`docker exec`).
    #[serde(default)]
    pub checks_run_here: Vec<String>,
    /// Services whose healthcheck only Docker could run, and why.
    #[serde(default)]
    pub checks_left_to_docker: Vec<(String, String)>,
    /// Nothing changed and the same containers ran: `up` was not run, the
    /// containers were only judged.
    #[serde(default)]
    pub unchanged: bool,
    /// The containers as `up` left them: ID to [`Container::condition`].
    #[serde(skip)]
    pub conditions: BTreeMap<String, String>,
    /// Networks removed before `up` because the project had several of one
    /// name (two runs racing each other once left them; every later `up`
    /// then failed with "network ... is ambiguous").
    #[serde(default)]
    pub repaired_networks: Vec<String>,
    /// Services whose old container `up` was about to replace were killed
    /// at once: their PID 1 ignores its stop signal (a watch cycle's).
    #[serde(default)]
    pub killed: Vec<String>,
    /// The project's containers as the last look at them found them (what
    /// the tests are told: published ports).
    #[serde(skip)]
    pub containers: Vec<Container>,
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
    /// The containers an earlier run left ready, when the caller knows that
    /// nothing they were made from changed since (config, images): if exactly
    /// these run now, no `up` runs and they are only judged.
    /// Container ID to [`Container::condition`].
    pub unchanged: Option<BTreeMap<String, String>>,
    /// How long a container `up` replaces gets to stop before it is killed
    /// (Compose's default is 10 s, all of which a PID 1 deaf to its stop
    /// signal uses; the old container is discarded anyway).
    pub replace_grace: Duration,
    /// Start (recreating when their image or config changed) only these
    /// services, without their dependencies, and judge only them; the
    /// others are left as they are. A watch cycle's: what it rebuilt.
    pub only: Option<Vec<String>>,
    /// The project's containers as the caller saw them last (a watch
    /// session, which alone changes them): no `ps` before `up`.
    pub known: Option<Vec<Container>>,
}

impl Project {
    /// Starts the stack (reusing unchanged containers) and waits for every
    /// service: healthy with a healthcheck, running without, exited 0 when
    /// one-shot. Fails fast on an exit or an unhealthy service. `waiting` hears
    /// who is still awaited, each time that changes.
    ///
    /// A service with a healthcheck is ready as soon as its own check command
    /// passes (run here with `docker exec`), not when Docker next runs it
    /// (`interval` later). When a service waits for another to be healthy,
    /// Compose would gate it on Docker's timer, so the stack is started level
    /// by level instead (`up --no-deps` per level), each level once the
    /// conditions it depends on hold by that measure.
    pub fn up_and_wait(
        &self,
        mut opts: UpOptions,
        mut waiting: impl FnMut(&[(String, String)]),
    ) -> Result<UpSummary> {
        let start = Instant::now();
        let up_started = unix_time();
        // A container a previous run stopped still says `exited`: until `up`
        // has returned, such a container is not judged.
        let found = match opts.known.take() {
            Some(known) => known,
            None => self.ps()?,
        };
        let before: BTreeMap<String, String> = found
            .iter()
            .map(|c| (c.id.clone(), c.state.clone()))
            .collect();
        let stale = match opts.mounted_files_changed {
            Some(changed) => self.any_running_started_before(&before, changed)?,
            None => false,
        };
        let conditions: BTreeMap<String, String> = found
            .iter()
            .map(|c| (c.id.clone(), c.condition()))
            .collect();
        let skip_up = !stale
            && opts.only.is_none()
            && !conditions.is_empty()
            && opts.unchanged.as_ref() == Some(&conditions);
        let repaired_networks = if skip_up || opts.only.is_some() {
            Vec::new()
        } else {
            self.remove_duplicate_networks()?
        };
        let mut killed = Vec::new();
        // A watch cycle replaces these containers: one whose PID 1 is deaf
        // to its stop signal would cost the whole grace for nothing.
        if let Some(only) = &opts.only {
            let replaced: Vec<String> = found
                .iter()
                .filter(|c| c.state == "running" && only.contains(&c.service))
                .map(|c| c.id.clone())
                .collect();
            if !replaced.is_empty() {
                killed = self.kill_deaf(replaced)?;
            }
        }
        let mut reuse_listing = skip_up.then(|| found.clone());
        let mut plan = self.start_plan(&opts.probes);
        if skip_up {
            plan.levels = vec![self.stack.services.keys().cloned().collect()];
        }
        if let Some(only) = &opts.only {
            plan.levels = vec![only.clone()];
        }
        let checks = HealthChecks::default();
        let mut settled: BTreeSet<String> = BTreeSet::new();
        let mut ready_at: BTreeMap<String, f64> = BTreeMap::new();
        let mut last: Vec<(String, String)> = Vec::new();
        let mut containers: Vec<Container> = Vec::new();
        for (i, level) in plan.levels.iter().enumerate() {
            let mut args: Vec<String> = ["up", "--detach", "--no-build"].map(str::to_owned).into();
            args.extend([
                "--timeout".to_owned(),
                opts.replace_grace.as_secs().to_string(),
            ]);
            if i == 0 && opts.only.is_none() {
                args.push("--remove-orphans".into());
            }
            if stale {
                args.push("--force-recreate".into());
            }
            if plan.levels.len() > 1 || opts.only.is_some() {
                args.push("--no-deps".into());
                args.extend(level.iter().cloned());
            }
            let judged: BTreeSet<&str> = plan.levels[..=i]
                .iter()
                .flatten()
                .map(String::as_str)
                .collect();
            let up = self.compose(args);
            let dir = self.spec.dir.clone();
            let cmd = up.clone();
            let group = GroupOptions {
                capture: true,
                interruptible: true,
            };
            let mut child =
                (!skip_up).then(|| std::thread::spawn(move || cmd.run_group(&dir, group)));
            let level_started = Instant::now();
            // Said at once: the quiet second below asks nothing yet.
            if child.is_some() {
                let starting: Vec<(String, String)> = level
                    .iter()
                    .map(|s| (s.clone(), "starting".to_owned()))
                    .collect();
                waiting(&starting);
                last = starting;
            }
            // Stops `up` if it still runs, and waits for its thread: nothing outlives the wait.
            let stop_up = |child: &mut Option<std::thread::JoinHandle<_>>| {
                process::interrupt::terminate_running();
                if let Some(h) = child.take() {
                    let _ = h.join();
                }
            };
            let mut up_out: Option<GroupOutput> = None;
            loop {
                // `up` and `ps` are both heavy on the CPU: for `up`'s first
                // second only wait for it (a kept stack's `up` mostly ends by then).
                while child.as_ref().is_some_and(|h| !h.is_finished())
                    && level_started.elapsed() < UP_QUIET
                    && !process::interrupt::is_requested()
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                if process::interrupt::is_requested() {
                    stop_up(&mut child);
                    return Err(Error::Interrupted);
                }
                if let Some(h) = child.take_if(|h| h.is_finished()) {
                    up_out = Some(h.join().expect("the up thread does not panic")?);
                }
                // Compose lists the project's containers, then inspects each: one
                // that `up` replaces in between is "No such container" for this
                // poll only (seen while `up` created a new project's containers).
                // Skipping `up`, the listing made before is still current.
                let listed = reuse_listing.take().map(Ok);
                containers = match listed.unwrap_or_else(|| self.ps()) {
                    Err(Error::Failed { stderr, .. })
                        if stderr.contains("No such container")
                            && start.elapsed() < opts.timeout =>
                    {
                        std::thread::sleep(POLL_INTERVAL);
                        continue;
                    }
                    other => other?,
                };
                let being_replaced = |c: &Container| {
                    up_out.is_none()
                        && !skip_up
                        && being_replaced(before.get(&c.id).map(String::as_str), &c.state)
                };
                let fresh = |c: &Container| {
                    !being_replaced(c)
                        && (settled.contains(&c.service)
                            || skip_up
                            || up_out.is_some()
                            || before.get(&c.id) != Some(&c.state))
                };
                // A container that ran before `up` keeps its old log: a line from
                // an earlier start must not count as ready now.
                let since = |c: &Container| match before.get(&c.id).map(String::as_str) {
                    Some("running") => 0,
                    _ => up_started.saturating_sub(1),
                };
                let states: Vec<(String, Readiness)> =
                    self.readiness(&containers, &plan.probes, &checks, &judged, fresh, since);
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
                    return Err(self.up_failed(&up, out, &containers));
                }
                for (service, r) in &states {
                    if *r == Readiness::Ready && !ready_at.contains_key(service) {
                        ready_at.insert(service.clone(), start.elapsed().as_secs_f64());
                    }
                }
                let pending: Vec<(String, String)> = states
                    .into_iter()
                    .filter_map(|(s, r)| match r {
                        Readiness::Waiting(why) => Some((s, why)),
                        _ => None,
                    })
                    .collect();
                if (skip_up || up_out.is_some()) && pending.is_empty() {
                    settled.extend(level.iter().cloned());
                    break;
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
        let mut summary = UpSummary {
            seconds: start.elapsed().as_secs_f64(),
            ready_s: ready_at,
            levels: if skip_up { 0 } else { plan.levels.len() },
            unchanged: skip_up,
            repaired_networks,
            killed,
            conditions: containers
                .iter()
                .map(|c| (c.id.clone(), c.condition()))
                .collect(),
            checks_run_here: checks.used(),
            checks_left_to_docker: checks.unusable.into_inner().into_iter().collect(),
            ..UpSummary::default()
        };
        let judged: BTreeSet<&String> = plan.levels.iter().flatten().collect();
        for c in containers.iter().filter(|c| judged.contains(&c.service)) {
            match before.get(&c.id).map(String::as_str) {
                // No `up` ran: an exited one-shot was left as it was too.
                _ if skip_up => summary.reused += 1,
                None => summary.created += 1,
                Some("running") => summary.reused += 1,
                Some(_) => summary.started += 1,
            }
        }
        summary.containers = containers;
        Ok(summary)
    }

    /// Networks of this project that share a name with another: the ones no
    /// container uses are removed (all of them when none is used: `up` makes
    /// the network again). Returns the removed ones as `name (id)`.
    fn remove_duplicate_networks(&self) -> Result<Vec<String>> {
        let label = format!("label=com.docker.compose.project={}", self.name());
        let listed = crate::docker([
            "network",
            "ls",
            "--no-trunc",
            "--filter",
            &label,
            "--format",
            "{{.ID}}\t{{.Name}}",
        ])
        .text(&self.spec.dir)?;
        let mut by_name: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, name) in listed.lines().filter_map(|l| l.split_once('\t')) {
            by_name.entry(name).or_default().push(id);
        }
        let mut removed = Vec::new();
        for (name, ids) in by_name.into_iter().filter(|(_, ids)| ids.len() > 1) {
            let args = [
                "network",
                "inspect",
                "--format",
                "{{.Id}} {{len .Containers}}",
            ]
            .map(str::to_owned)
            .into_iter()
            .chain(ids.iter().map(|i| (*i).to_owned()));
            let used = crate::docker(args).text(&self.spec.dir)?;
            for line in used.lines() {
                if let Some((id, "0")) = line.split_once(' ') {
                    crate::docker(["network", "rm", id]).output(&self.spec.dir)?;
                    removed.push(format!("{name} ({})", &id[..12.min(id.len())]));
                }
            }
        }
        Ok(removed)
    }

    /// Compose's `up` failed: its first real error line, and the service it
    /// names with that service's own last lines (its last words are often
    /// about a dependent: "dependency failed to start").
    fn up_failed(&self, up: &process::Cmd, out: &GroupOutput, containers: &[Container]) -> Error {
        if let Some(detail) = crate::error::engine_gone(&out.stderr) {
            return Error::EngineGone {
                command: up.to_string(),
                detail,
            };
        }
        let first = first_error_line(&out.stderr);
        let service = containers
            .iter()
            .find(|c| first.contains(&c.name))
            .map(|c| c.service.clone());
        let words = service
            .as_deref()
            .map(|s| self.last_words(s, containers))
            .unwrap_or_default();
        Error::UpFailed {
            command: up.to_string(),
            first,
            detail: format!(
                "{words}\n  compose said:\n    {}",
                tail(&out.stderr, 10).replace('\n', "\n    ")
            ),
        }
    }

    /// How the stack starts: one `up` of everything, unless a service waits
    /// for another to be healthy and that one's check can be run from here;
    /// then level by level. And each service's probes: configured, else the
    /// defaults; level by level, a service another needs completed is judged
    /// by its exit (Compose no longer gates on it).
    fn start_plan(&self, configured: &BTreeMap<String, Probe>) -> StartPlan {
        let services = &self.stack.services;
        let gated_on_health = services.values().any(|s| {
            s.dependencies().iter().any(|(dep, condition)| {
                condition == "service_healthy"
                    && services
                        .get(dep)
                        .is_some_and(|d| d.health_command().is_some())
            })
        });
        let levels = match self.stack.levels() {
            Some(levels) if gated_on_health && levels.len() > 1 => levels,
            _ => vec![services.keys().cloned().collect()],
        };
        let by_level = levels.len() > 1;
        let probes = services
            .iter()
            .map(|(name, s)| {
                let completed = services.values().any(|other| {
                    other
                        .dependencies()
                        .iter()
                        .any(|(d, c)| d == name && c == "service_completed_successfully")
                });
                let probes = match configured.get(name) {
                    Some(p) => vec![p.clone()],
                    None if by_level && completed => vec![Probe::Exited],
                    None => default_probes(s.has_healthcheck(), &s.published_tcp()),
                };
                (name.clone(), probes)
            })
            .collect();
        StartPlan { levels, probes }
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
        probes: &BTreeMap<String, Vec<Probe>>,
        checks: &HealthChecks,
        judged: &BTreeSet<&str>,
        fresh: impl Fn(&Container) -> bool,
        since: impl Fn(&Container) -> u64,
    ) -> Vec<(String, Readiness)> {
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
}

/// How the stack starts: its levels (one level: a single `up` of everything)
/// and each service's probes.
#[derive(Debug)]
struct StartPlan {
    levels: Vec<Vec<String>>,
    probes: BTreeMap<String, Vec<Probe>>,
}

/// Healthchecks run here with `docker exec`: which containers passed, which
/// services' checks cannot be run from outside (left to Docker, with why).
#[derive(Debug, Default)]
struct HealthChecks {
    passed: RefCell<BTreeSet<String>>,
    used: RefCell<BTreeSet<String>>,
    unusable: RefCell<BTreeMap<String, String>>,
}

impl HealthChecks {
    /// Whether the container's check passes now; never waits longer than the
    /// check's own timeout (a hung check is left to finish on its own).
    fn passes(&self, project: &Project, c: &Container, cmd: &(Vec<String>, Duration)) -> bool {
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
                let why = first_error_line(&format!("{}{}", out.stderr, out.stdout));
                self.unusable.borrow_mut().insert(c.service.clone(), why);
                false
            }
            _ => false,
        }
    }

    /// The services whose check ran here.
    fn used(&self) -> Vec<String> {
        let unusable = self.unusable.borrow();
        self.used
            .borrow()
            .iter()
            .filter(|s| !unusable.contains_key(*s))
            .cloned()
            .collect()
    }
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whether a container's state, listed while `up` still runs, is Compose
/// stopping it to replace it (a changed image or config): a container that
/// ran before `up` and runs no more. Its exit is no verdict on the service.
/// The old container passes through `exited`, and `dead` or `removing` while
/// the engine deletes it (the daemon marks it dead before it removes its
/// layer). Seen on Engine 28 in CI: "api-1 exited with code 0" while its
/// replacement was `created`, which only a `dead` state reads as.
fn being_replaced(before: Option<&str>, now: &str) -> bool {
    before == Some("running") && !matches!(now, "running" | "restarting")
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
