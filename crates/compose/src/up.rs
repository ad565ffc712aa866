//! `up` and the wait: Compose starts the stack in a thread while we poll
//! `ps` and judge each service (`readiness.rs`), failing fast with the
//! service's own last words, and naming Compose's real error when `up` fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Container, Project, tail};
use crate::readiness::{Probe, Readiness, check, default_probes, judge_state, worst};
use process::{GroupOptions, GroupOutput};

/// How often `up` asks `ps` while it waits (a `ps` itself takes ~0.1 s).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

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

impl Project {
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
        let mut ready_at: BTreeMap<String, f64> = BTreeMap::new();
        let mut last: Vec<(String, String)> = Vec::new();
        loop {
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
            let containers = match self.ps() {
                Err(Error::Failed { stderr, .. })
                    if stderr.contains("No such container") && start.elapsed() < opts.timeout =>
                {
                    std::thread::sleep(POLL_INTERVAL);
                    continue;
                }
                other => other?,
            };
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
            if up_out.is_some() && pending.is_empty() {
                let mut summary = UpSummary {
                    seconds: start.elapsed().as_secs_f64(),
                    ready_s: std::mem::take(&mut ready_at),
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
}

fn unix_time() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
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
