//! `up` and the wait: Compose starts the stack (level by level where a
//! service waits for a healthy one) while we poll `ps` and judge each service
//! (`readiness.rs`), failing fast with the service's own last words, and
//! naming Compose's real error when `up` fails.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Container, Project, tail};
use crate::readiness::{HealthChecks, Probe, Readiness, being_replaced, default_probes};
use process::{GroupOptions, GroupOutput};

/// How often `up` asks `ps` while it waits (a `ps` itself takes ~0.1 s).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// How long `up` runs before the wait starts asking `ps`.
const UP_QUIET: Duration = Duration::from_secs(1);

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
        // A container a previous run stopped still says `exited`: until `up`
        // has returned, such a container is not judged.
        let found = match opts.known.take() {
            Some(known) => known,
            None => self.ps()?,
        };
        let mut wait = Wait::new(self, &opts, &found)?;
        let repaired_networks = if wait.skip_up || opts.only.is_some() {
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
        for level in 0..wait.plan.levels.len() {
            wait.level(level, &opts, &mut waiting)?;
        }
        Ok(wait.summary(repaired_networks, killed))
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
            if let Some(last) = crate::readiness::last_health(self, c) {
                out.push_str(&format!("\n  {last}"));
            }
        }
        out
    }
}

/// A service still awaited, and why: `(service, what it waits for)`.
type Awaited = (String, String);

/// The wait across `up`'s levels: what ran before `up`, which services are
/// settled, when each got ready, and the last listing of the containers.
struct Wait<'a> {
    project: &'a Project,
    start: Instant,
    /// When `up` started (seconds since the epoch): logs count from then.
    up_started: u64,
    /// Container ID to its state before `up`.
    before: BTreeMap<String, String>,
    /// A running container holds files that changed since: recreate all.
    stale: bool,
    /// Nothing changed and the same containers run: no `up`, only judged.
    skip_up: bool,
    /// The listing made before `up`, still current when `up` is skipped.
    reuse_listing: Option<Vec<Container>>,
    plan: StartPlan,
    checks: HealthChecks,
    settled: BTreeSet<String>,
    ready_at: BTreeMap<String, f64>,
    /// Who was last said to be awaited.
    last: Vec<(String, String)>,
    containers: Vec<Container>,
}

impl<'a> Wait<'a> {
    fn new(project: &'a Project, opts: &UpOptions, found: &[Container]) -> Result<Wait<'a>> {
        let before: BTreeMap<String, String> = found
            .iter()
            .map(|c| (c.id.clone(), c.state.clone()))
            .collect();
        let stale = match opts.mounted_files_changed {
            Some(changed) => project.any_running_started_before(&before, changed)?,
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
        let mut plan = project.start_plan(&opts.probes);
        if skip_up {
            plan.levels = vec![project.stack.services.keys().cloned().collect()];
        }
        if let Some(only) = &opts.only {
            plan.levels = vec![only.clone()];
        }
        Ok(Wait {
            project,
            start: Instant::now(),
            up_started: unix_time(),
            before,
            stale,
            skip_up,
            reuse_listing: skip_up.then(|| found.to_vec()),
            plan,
            checks: HealthChecks::default(),
            settled: BTreeSet::new(),
            ready_at: BTreeMap::new(),
            last: Vec::new(),
            containers: Vec::new(),
        })
    }

    /// `compose up` of level `i`.
    fn up_command(&self, i: usize, opts: &UpOptions) -> process::Cmd {
        let mut args: Vec<String> = ["up", "--detach", "--no-build"].map(str::to_owned).into();
        args.extend([
            "--timeout".to_owned(),
            opts.replace_grace.as_secs().to_string(),
        ]);
        if i == 0 && opts.only.is_none() {
            args.push("--remove-orphans".into());
        }
        if self.stale {
            args.push("--force-recreate".into());
        }
        if self.plan.levels.len() > 1 || opts.only.is_some() {
            args.push("--no-deps".into());
            args.extend(self.plan.levels[i].iter().cloned());
        }
        self.project.compose(args)
    }

    /// Starts level `i` (unless `up` is skipped) and waits until each of its
    /// services (and those of the levels before) is ready. Dropping the
    /// running `up` on the way out stops it: nothing outlives the wait.
    fn level(
        &mut self,
        i: usize,
        opts: &UpOptions,
        waiting: &mut dyn FnMut(&[Awaited]),
    ) -> Result<()> {
        let up = self.up_command(i, opts);
        let group = GroupOptions {
            capture: true,
            interruptible: true,
        };
        let mut child = match self.skip_up {
            true => None,
            false => Some(up.start_group(&self.project.spec.dir, group)?),
        };
        let level_started = Instant::now();
        // Said at once: the quiet second below asks nothing yet.
        if child.is_some() {
            let starting: Vec<(String, String)> = self.plan.levels[i]
                .iter()
                .map(|s| (s.clone(), "starting".to_owned()))
                .collect();
            waiting(&starting);
            self.last = starting;
        }
        let mut up_out: Option<GroupOutput> = None;
        loop {
            // `up` and `ps` are both heavy on the CPU: for `up`'s first
            // second only wait for it (a kept stack's `up` mostly ends by then).
            while let Some(c) = &mut child {
                if let Some(out) = c.try_wait()? {
                    up_out = Some(out);
                    child = None;
                    break;
                }
                if level_started.elapsed() >= UP_QUIET || process::interrupt::is_requested() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if process::interrupt::is_requested() {
                return Err(Error::Interrupted);
            }
            let Some(containers) = self.list(opts)? else {
                std::thread::sleep(POLL_INTERVAL);
                continue;
            };
            self.containers = containers;
            let states = self.judge(i, up_out.is_some());
            // A service that failed explains more than Compose's own error does.
            if let Some((service, detail)) = states.iter().find_map(|(s, r)| match r {
                Readiness::Failed(why) => Some((s.clone(), why.clone())),
                _ => None,
            }) {
                drop(child);
                let words = self.project.last_words(&service, &self.containers);
                return Err(Error::ServiceFailed {
                    service,
                    detail: format!("{detail}{words}"),
                });
            }
            if let Some(out) = &up_out
                && !out.success()
            {
                return Err(self.project.up_failed(&up, out, &self.containers));
            }
            for (service, r) in &states {
                if *r == Readiness::Ready && !self.ready_at.contains_key(service) {
                    let at = self.start.elapsed().as_secs_f64();
                    self.ready_at.insert(service.clone(), at);
                }
            }
            let pending: Vec<(String, String)> = states
                .into_iter()
                .filter_map(|(s, r)| match r {
                    Readiness::Waiting(why) => Some((s, why)),
                    _ => None,
                })
                .collect();
            if (self.skip_up || up_out.is_some()) && pending.is_empty() {
                self.settled.extend(self.plan.levels[i].iter().cloned());
                return Ok(());
            }
            if self.start.elapsed() > opts.timeout {
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
            if pending != self.last && !pending.is_empty() {
                waiting(&pending);
                self.last = pending;
            }
            // `ps` itself takes ~0.1 s: together a state change is seen within ~0.2 s.
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The project's containers now; `None` for a listing to try again.
    fn list(&mut self, opts: &UpOptions) -> Result<Option<Vec<Container>>> {
        // Skipping `up`, the listing made before is still current.
        if let Some(listed) = self.reuse_listing.take() {
            return Ok(Some(listed));
        }
        // Compose lists the project's containers, then inspects each: one
        // that `up` replaces in between is "No such container" for this
        // poll only (seen while `up` created a new project's containers).
        match self.project.ps() {
            Err(Error::Failed { stderr, .. })
                if stderr.contains("No such container") && self.start.elapsed() < opts.timeout =>
            {
                Ok(None)
            }
            other => other.map(Some),
        }
    }

    /// Each service of the levels up to `i`, judged on the last listing;
    /// `up_done`: the level's `up` has returned.
    fn judge(&self, i: usize, up_done: bool) -> Vec<(String, Readiness)> {
        let judged: BTreeSet<&str> = self.plan.levels[..=i]
            .iter()
            .flatten()
            .map(String::as_str)
            .collect();
        let before = |c: &Container| self.before.get(&c.id).map(String::as_str);
        let up_running = !up_done && !self.skip_up;
        let fresh = |c: &Container| {
            !(up_running && being_replaced(before(c), &c.state))
                && (self.settled.contains(&c.service)
                    || self.skip_up
                    || up_done
                    || before(c) != Some(c.state.as_str()))
        };
        // A container that ran before `up` keeps its old log: a line from
        // an earlier start must not count as ready now.
        let since = |c: &Container| match before(c) {
            Some("running") => 0,
            _ => self.up_started.saturating_sub(1),
        };
        self.project.readiness(
            &self.containers,
            &self.plan.probes,
            &self.checks,
            &judged,
            fresh,
            since,
        )
    }

    fn summary(self, repaired_networks: Vec<String>, killed: Vec<String>) -> UpSummary {
        let mut summary = UpSummary {
            seconds: self.start.elapsed().as_secs_f64(),
            ready_s: self.ready_at,
            levels: if self.skip_up {
                0
            } else {
                self.plan.levels.len()
            },
            unchanged: self.skip_up,
            repaired_networks,
            killed,
            conditions: self
                .containers
                .iter()
                .map(|c| (c.id.clone(), c.condition()))
                .collect(),
            checks_run_here: self.checks.used(),
            checks_left_to_docker: self.checks.unusable.into_inner().into_iter().collect(),
            ..UpSummary::default()
        };
        let judged: BTreeSet<&String> = self.plan.levels.iter().flatten().collect();
        for c in self
            .containers
            .iter()
            .filter(|c| judged.contains(&c.service))
        {
            match self.before.get(&c.id).map(String::as_str) {
                // No `up` ran: an exited one-shot was left as it was too.
                _ if self.skip_up => summary.reused += 1,
                None => summary.created += 1,
                Some("running") => summary.reused += 1,
                Some(_) => summary.started += 1,
            }
        }
        summary.containers = self.containers;
        summary
    }
}

/// How the stack starts: its levels (one level: a single `up` of everything)
/// and each service's probes.
#[derive(Debug)]
struct StartPlan {
    levels: Vec<Vec<String>>,
    probes: BTreeMap<String, Vec<Probe>>,
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The line of Compose's output that says what went wrong: the first that
/// reads as an error, else the last one.
pub(crate) fn first_error_line(stderr: &str) -> String {
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
