//! What a run leaves: the policies, the teardown that applies them, and the
//! failure bundle written before it (what the engine holds after, and
//! whether that keeps the promise, is `leftovers.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Project, status, tail, write_file};
use process::{Cmd, GroupOptions};

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

/// Every service's log, with the engine's timestamps.
const LOGS: [&str; 3] = ["logs", "--no-color", "--timestamps"];

/// Each service's lines in `compose logs` output, by the prefix Compose
/// gives a line: `<service>-<n>`, or the service's `container_name`.
fn by_service(
    text: &str,
    services: &BTreeMap<String, crate::model::Service>,
) -> BTreeMap<String, String> {
    let names: Vec<String> = services.keys().cloned().collect();
    let named: BTreeMap<String, String> = services
        .iter()
        .filter_map(|(s, c)| Some((c.container_name.clone()?, s.clone())))
        .collect();
    let mut out: BTreeMap<String, String> =
        names.iter().map(|s| (s.clone(), String::new())).collect();
    for line in text.lines() {
        let Some((prefix, rest)) = split_prefix(line) else {
            continue;
        };
        let log = out
            .entry(service_of(prefix, &names, &named).to_owned())
            .or_default();
        log.push_str(rest);
        log.push('\n');
    }
    out
}

/// `db-1  | the line` as Compose prefixes a line with its container.
fn split_prefix(line: &str) -> Option<(&str, &str)> {
    let (name, rest) = line.split_once(" | ")?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    Some((name.trim(), rest))
}

/// The service a `compose logs` prefix names: `<service>-<n>`, else a
/// container of that name (`container_name:`), else the prefix itself.
fn service_of<'a>(
    prefix: &'a str,
    services: &'a [String],
    named: &'a BTreeMap<String, String>,
) -> &'a str {
    if let Some(service) = named.get(prefix) {
        return service;
    }
    match prefix.rsplit_once('-') {
        Some((service, n))
            if n.bytes().all(|b| b.is_ascii_digit()) && services.iter().any(|s| s == service) =>
        {
            service
        }
        _ => prefix,
    }
}

/// The label Compose puts on a container: its service.
const SERVICE_LABEL: &str = "com.docker.compose.service";

/// Running containers, split by whether their PID 1 acts on the stop signal.
#[derive(Debug, Default)]
struct StopPlan {
    stop: Vec<String>,
    kill: Vec<String>,
    /// The services of `kill`.
    killed: Vec<String>,
}

/// What `docker inspect` says of a container, as much as the stop needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspected {
    id: String,
    state: InspectedState,
    config: InspectedConfig,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedState {
    #[serde(default)]
    pid: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedConfig {
    #[serde(default)]
    stop_signal: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// How the running containers stopped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Stopped {
    /// The services killed at once because their PID 1 would not act on the
    /// stop signal (see [`crate::signals`]).
    pub killed: Vec<String>,
    /// Seconds from the stop until each service's container had exited, as
    /// the engine dates the exit (the slowest container of a service).
    pub stop_s: BTreeMap<String, f64>,
    /// Each service's whole log, when asked for.
    pub logs: Vec<Utf8PathBuf>,
}

impl Project {
    /// Applies the policy; `grace` is how long each container gets after
    /// SIGTERM. With `logs`, each service's whole log is saved there (see
    /// [`Project::save_logs`]) once its containers stopped and before they
    /// are removed, so nothing they printed is lost.
    pub fn teardown(
        &self,
        policy: Policy,
        grace: Duration,
        logs: Option<&Utf8Path>,
    ) -> Result<Stopped> {
        let t = grace.as_secs().to_string();
        // After `docker stop`, Compose's own command handles what that does not:
        // containers not running (created, restarting), networks, volumes, images.
        let args: Vec<&str> = match policy {
            Policy::Keep => {
                return Ok(Stopped {
                    logs: logs
                        .map(|d| self.save_logs(d).unwrap_or_default())
                        .unwrap_or_default(),
                    ..Stopped::default()
                });
            }
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
        let mut stopped = self.stop_all_at_once(grace)?;
        // A log that cannot be saved fails nothing: the policy comes first.
        if let Some(dir) = logs {
            stopped.logs = self.save_logs(dir).unwrap_or_default();
        }
        self.run_teardown_step(&self.compose(args))?;
        if policy == Policy::Purge {
            // `--rmi local` removes the tagged images; each rebuild also left
            // the image it replaced, untagged but still labelled with the project.
            let dangling = crate::leftovers(self.name())?.dangling_images;
            if !dangling.is_empty() {
                let args = ["image", "rm", "--force"]
                    .map(str::to_owned)
                    .into_iter()
                    .chain(dangling);
                self.run_teardown_step(&crate::docker(args))?;
            }
        }
        Ok(stopped)
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

    /// Stops every running container of the project at once: the grace is
    /// paid once, where Compose's dependency-ordered stop pays it once per
    /// level (two SIGTERM-ignoring services: 2.2 s against 4.4 s). A container
    /// whose PID 1 would not act on its stop signal is killed at once instead
    /// of being waited for (`docker stop` would send the signal, wait the
    /// whole grace, then kill it anyway).
    fn stop_all_at_once(&self, grace: Duration) -> Result<Stopped> {
        let StopPlan {
            stop,
            kill,
            mut killed,
        } = self.stop_plan()?;
        let ids: Vec<String> = stop.iter().chain(&kill).cloned().collect();
        let since = time::OffsetDateTime::now_utc();
        let secs = grace.as_secs().to_string();
        let stop_cmd = (!stop.is_empty()).then(|| {
            crate::docker(
                ["stop", "--time", &secs]
                    .map(str::to_owned)
                    .into_iter()
                    .chain(stop),
            )
        });
        let kill_cmd =
            (!kill.is_empty()).then(|| crate::docker(["kill".to_owned()].into_iter().chain(kill)));
        std::thread::scope(|s| {
            let stopping = stop_cmd.map(|c| s.spawn(move || self.run_teardown_step(&c)));
            let killing = kill_cmd.map(|c| s.spawn(move || self.run_teardown_step(&c)));
            for h in [stopping, killing].into_iter().flatten() {
                h.join().expect("a teardown step does not panic")?;
            }
            Ok::<(), Error>(())
        })?;
        killed.sort();
        Ok(Stopped {
            killed,
            stop_s: self.exit_times(&ids, since),
            logs: Vec::new(),
        })
    }

    /// Per service, seconds from `since` until its containers exited, by the
    /// engine's `FinishedAt` (what cannot be read is left out: it is a report).
    fn exit_times(&self, ids: &[String], since: time::OffsetDateTime) -> BTreeMap<String, f64> {
        let mut out: BTreeMap<String, f64> = BTreeMap::new();
        if ids.is_empty() {
            return out;
        }
        let format =
            format!("{{{{index .Config.Labels \"{SERVICE_LABEL}\"}}}} {{{{.State.FinishedAt}}}}");
        let args = ["inspect", "--format", &format]
            .map(str::to_owned)
            .into_iter()
            .chain(ids.iter().cloned());
        let Ok(text) = crate::docker(args).text(&self.spec.dir) else {
            return out;
        };
        for line in text.lines() {
            let Some((service, finished)) = line.split_once(' ') else {
                continue;
            };
            let Ok(at) = time::OffsetDateTime::parse(
                finished.trim(),
                &time::format_description::well_known::Rfc3339,
            ) else {
                continue;
            };
            let s = (at - since).as_seconds_f64().max(0.0);
            let slot = out.entry(service.to_owned()).or_default();
            *slot = slot.max(s);
        }
        out
    }

    /// The running services whose PID 1 would not act on its stop signal
    /// (for `doctor`); `None` when nothing runs, so nothing can be told.
    pub fn deaf_to_stop_signal(&self) -> Result<Option<Vec<String>>> {
        let plan = self.stop_plan()?;
        if plan.stop.is_empty() && plan.kill.is_empty() {
            return Ok(None);
        }
        let mut deaf = plan.killed;
        deaf.sort();
        Ok(Some(deaf))
    }

    /// Which running containers get their stop signal and the grace, and
    /// which are killed at once (with their services).
    fn stop_plan(&self) -> Result<StopPlan> {
        let running: Vec<String> = self
            .ps()?
            .into_iter()
            .filter(|c| c.state == "running")
            .map(|c| c.id)
            .collect();
        Ok(self.split_by_stop_signal(running))
    }

    /// Kills at once the running containers among `ids` whose PID 1 would
    /// not act on its stop signal: `up` is about to replace them, and would
    /// wait the whole grace for nothing. Returns their services.
    pub(crate) fn kill_deaf(&self, ids: Vec<String>) -> Result<Vec<String>> {
        let plan = self.split_by_stop_signal(ids);
        if !plan.kill.is_empty() {
            crate::docker(["kill".to_owned()].into_iter().chain(plan.kill))
                .output(&self.spec.dir)?;
        }
        Ok(plan.killed)
    }

    /// `running` (container IDs) split into those that get their stop
    /// signal and the grace, and those killed at once.
    fn split_by_stop_signal(&self, running: Vec<String>) -> StopPlan {
        let mut plan = StopPlan::default();
        if running.is_empty() {
            return plan;
        }
        // The whole JSON: a template naming `.Config.StopSignal` fails on
        // containers that never set one (the key is then absent).
        let inspect = crate::docker(
            ["inspect".to_owned()]
                .into_iter()
                .chain(running.iter().cloned()),
        );
        let inspected: Vec<Inspected> = inspect
            .output(&self.spec.dir)
            .ok()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .unwrap_or_default();
        // Whoever cannot be told apart keeps the grace.
        for id in running {
            // Compose lists short IDs; inspect answers with whole ones.
            let c = inspected.iter().find(|c| c.id.starts_with(&id));
            let acts = c.and_then(|c| {
                crate::signals::pid1_acts_on(&c.id, c.state.pid, &c.config.stop_signal)
            });
            match (acts, c) {
                (Some(false), Some(c)) => {
                    plan.kill.push(id);
                    plan.killed.push(
                        c.config
                            .labels
                            .get(SERVICE_LABEL)
                            .cloned()
                            .unwrap_or_default(),
                    );
                }
                _ => plan.stop.push(id),
            }
        }
        plan
    }

    /// Saves each service's whole log, with the engine's timestamps, as
    /// `dir/<service>.log` (one `compose logs` for all); returns the files.
    pub fn save_logs(&self, dir: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
        let text = self.compose(LOGS).text(&self.spec.dir)?;
        self.write_service_logs(&text, dir)
    }

    /// `compose logs` output split into `dir/<service>.log`, an empty file
    /// for a service that said nothing.
    fn write_service_logs(&self, text: &str, dir: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
        let mut files = Vec::new();
        for (service, log) in by_service(text, &self.stack.services) {
            let file = dir.join(format!("{service}.log"));
            write_file(&file, &log)?;
            files.push(file);
        }
        Ok(files)
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
        let logs = text(self.compose(LOGS));
        write_file(&dir.join("logs.txt"), &logs)?;
        // Each service's on its own too: the failing window, whatever the
        // policy removes after.
        let _ = self.write_service_logs(&logs, &dir.join("logs"));
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_logs_split_by_service_a_container_name_and_replicas_included() {
        // Recorded: Compose 2.40.3 on Engine 20.10, `web` with
        // `container_name: logrec-custom-web`, `db` with two replicas.
        let text = crate::build::tests::recorded("engine-20.10/compose-logs.txt");
        let services: BTreeMap<String, crate::model::Service> =
            serde_json::from_value(serde_json::json!({
                "web": {"image": "debian", "container_name": "logrec-custom-web"},
                "db": {"image": "debian"},
                "quiet": {"image": "debian"},
            }))
            .unwrap();
        let logs = by_service(&text, &services);
        assert_eq!(
            logs.keys().collect::<Vec<_>>(),
            ["db", "quiet", "web"],
            "a file per service, none per container"
        );
        assert!(logs["web"].contains("Z web says hi\n"), "{logs:?}");
        assert!(
            logs["web"].ends_with("Z a | pipe in the line\n"),
            "{logs:?}"
        );
        assert_eq!(logs["db"].matches("db ready").count(), 2, "{logs:?}");
        assert_eq!(logs["quiet"], "");
        assert_eq!(split_prefix("no prefix here"), None);
    }
}
