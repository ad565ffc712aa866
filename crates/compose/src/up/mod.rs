//! `up` and the wait: Compose starts the stack (level by level where a
//! service waits for a healthy one) while we poll `ps` and judge each service
//! (`readiness.rs`), failing fast with the service's own last words, and
//! naming Compose's real error when `up` fails.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Container, Project, tail};
use crate::readiness::{Probe, default_probes};
use process::GroupOutput;

mod logs;
mod wait;
use wait::Wait;

/// What `up` tells its caller while it waits.
#[derive(Debug)]
pub enum UpEvent<'a> {
    /// Who is still awaited, and why: each time that changes.
    Waiting(&'a [(String, String)]),
    /// A line a service printed before it was ready (within its rate; with
    /// [`UpOptions::logs`]).
    Log { service: &'a str, line: &'a str },
    /// `count` lines of a service were not shown: it printed too many at once.
    Held { service: &'a str, count: usize },
    /// A poll went by (every ~0.1 s): the caller may show other news.
    Poll,
}

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
    /// When each service's container was created and started (seconds since
    /// the epoch; the newest container of a service), for the run's trace.
    #[serde(default)]
    pub times: BTreeMap<String, (f64, f64)>,
    /// Why each service whose container `up` replaced got a new one: its
    /// image changed, its config changed, the files it mounts changed.
    #[serde(default)]
    pub recreated: BTreeMap<String, String>,
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
    /// Hand the services' log lines to the caller while they start.
    pub logs: bool,
    /// No `up`: only these services are judged again, on a fresh listing
    /// (a watch cycle synced files into them, restarted them, or changed
    /// what they mount). A service restarted at a time given here counts
    /// log lines only from then; the others, their whole log.
    pub rejudge: Option<BTreeMap<String, Option<SystemTime>>>,
    /// The services' lines shown from then on (default: a second before the
    /// wait starts): judging again, from the change, so what a reloader said
    /// while the cycle waited for it is seen too.
    pub logs_since: Option<SystemTime>,
}

impl Project {
    /// Starts the stack (reusing unchanged containers) and waits for every
    /// service: healthy with a healthcheck, running without, exited 0 when
    /// one-shot. Fails fast on an exit or an unhealthy service. `on` hears
    /// who is still awaited, each time that changes, and the services' log
    /// lines while they start (see [`UpEvent`]).
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
        mut on: impl FnMut(UpEvent<'_>),
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
            let waited = wait.level(level, &opts, &mut on);
            if waited.is_err() {
                wait.flush(&mut on);
            }
            waited?;
        }
        wait.flush(&mut on);
        let mut summary = wait.summary(repaired_networks, killed);
        if !summary.unchanged {
            summary.times = self.container_times(&summary.containers);
        }
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
    pub(super) fn up_failed(
        &self,
        up: &process::Cmd,
        out: &GroupOutput,
        containers: &[Container],
    ) -> Error {
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
    pub(super) fn start_plan(&self, configured: &BTreeMap<String, Probe>) -> StartPlan {
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
    pub(super) fn any_running_started_before(
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

    /// When each service's newest container was created and started, by the
    /// engine's dates (one `docker inspect`; what cannot be read is left out).
    fn container_times(&self, containers: &[Container]) -> BTreeMap<String, (f64, f64)> {
        let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        if containers.is_empty() {
            return out;
        }
        let format = "{{index .Config.Labels \"com.docker.compose.service\"}} {{.Created}} {{.State.StartedAt}}";
        let args = ["inspect", "--format", format]
            .map(str::to_owned)
            .into_iter()
            .chain(containers.iter().map(|c| c.id.clone()));
        let Ok(text) = crate::docker(args).text(&self.spec.dir) else {
            return out;
        };
        let at = |t: &str| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                .ok()
                .map(|t| t.unix_timestamp_nanos() as f64 / 1e9)
        };
        for line in text.lines() {
            let mut words = line.split(' ');
            if let (Some(service), Some(Some(created)), Some(Some(started))) =
                (words.next(), words.next().map(at), words.next().map(at))
            {
                let slot = out.entry(service.to_owned()).or_insert((created, started));
                if created > slot.0 {
                    *slot = (created, started);
                }
            }
        }
        out
    }

    /// A failed service's last log lines and last health-check output, for the error.
    pub(super) fn last_words(&self, service: &str, containers: &[Container]) -> String {
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

/// How the stack starts: its levels (one level: a single `up` of everything)
/// and each service's probes.
#[derive(Debug)]
pub(super) struct StartPlan {
    pub(super) levels: Vec<Vec<String>>,
    pub(super) probes: BTreeMap<String, Vec<Probe>>,
}

/// A time in whole seconds since the epoch.
pub(super) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
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
