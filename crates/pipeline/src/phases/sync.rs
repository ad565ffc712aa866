//! A watch cycle's sync phase: what reaches running containers without an
//! image. Compose's `develop.watch` syncs (files copied in, or removed where
//! gone here), then its restarts, then its execs, as `docker compose watch`
//! orders them; a service that sees a change through a bind mount is given
//! the time to reload. Then each touched service is judged ready again.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use compose::{Container, Project, UpOptions};

use super::{Options, PhaseResult, Progress};
use crate::report::Phase;
use crate::watch::Live;

/// Applies `live` to the running containers of its services (as `up`
/// left them) and judges those services again.
pub(crate) fn sync_phase(
    opts: &Options,
    project: &Project,
    live: &Live,
    containers: &[Container],
    progress: &mut dyn Progress,
) -> PhaseResult<compose::UpSummary> {
    let of = |service: &str| -> Vec<String> {
        containers
            .iter()
            .filter(|c| c.service == service && c.state == "running")
            .map(|c| c.id.clone())
            .collect()
    };
    let mut said = Vec::new();
    for (service, copies) in &live.sync {
        let copies: Vec<_> = copies.iter().cloned().collect();
        let mut counts = (0, 0);
        for id in of(service) {
            counts = project.sync_into(&id, &copies)?;
        }
        said.push(match counts {
            (n, 0) => format!("synced {} into {service}", plural(n, "file")),
            (0, gone) => format!("removed {} from {service}", plural(gone, "file")),
            (n, gone) => format!(
                "synced {} into {service}, removed {}",
                plural(n, "file"),
                plural(gone, "file")
            ),
        });
    }
    let mut rejudge: BTreeMap<String, Option<SystemTime>> = BTreeMap::new();
    if !live.restart.is_empty() {
        let services: Vec<String> = live.restart.iter().cloned().collect();
        let at = SystemTime::now();
        progress.note(Phase::Sync, &format!("restarting {}", services.join(", ")));
        let grace = Duration::from_secs(opts.config.teardown.grace_s);
        let running = services.iter().flat_map(|s| of(s)).collect();
        let killed = project.restart(running, grace)?;
        rejudge.extend(services.iter().map(|s| (s.clone(), Some(at))));
        said.push(format!("restarted {}", services.join(", ")));
        if !killed.is_empty() {
            said.push(format!(
                "killed first (PID 1 ignores its stop signal): {}",
                killed.join(", ")
            ));
        }
    }
    for (service, hooks) in &live.exec {
        for hook in hooks.values() {
            for id in of(service) {
                project.exec_hook(&id, hook)?;
            }
        }
        said.push(format!(
            "ran {service}'s exec ({})",
            plural(hooks.len(), "hook")
        ));
    }
    if !live.mounted.is_empty() {
        let since = live.changed_at.unwrap_or_else(SystemTime::now);
        let ids: Vec<String> = live.mounted.iter().flat_map(|s| of(s)).collect();
        let names: Vec<&str> = live.mounted.iter().map(String::as_str).collect();
        let verb = if names.len() == 1 { "sees" } else { "see" };
        progress.note(
            Phase::Sync,
            &format!(
                "{} {verb} the change through a bind mount: waiting for a reload",
                names.join(", ")
            ),
        );
        let settled = project.settle(&ids, since)?;
        let who = if names.len() == 1 {
            format!("{} sees the change through its bind mount", names[0])
        } else {
            format!(
                "{} see the change through their bind mounts",
                names.join(", ")
            )
        };
        said.push(match (settled.lines, settled.busy) {
            (0, _) => format!(
                "{who} (no build, no recreate); it printed nothing within {:.1} s: no reload",
                compose::develop::FIRST_WORD.as_secs_f64()
            ),
            (n, busy) => format!(
                "{who} (no build, no recreate); it reloaded: {} after the change, {} {:.1} s",
                plural(n, "log line"),
                if busy {
                    "still printing at"
                } else {
                    "quiet from"
                },
                settled.seconds
            ),
        });
    }
    for service in live.services() {
        rejudge.entry(service).or_insert(None);
    }
    let up_opts = UpOptions {
        timeout: Duration::from_secs(opts.config.readiness.timeout_s),
        probes: opts.config.readiness.services.clone(),
        logs: opts.config.readiness.logs,
        rejudge: Some(rejudge),
        logs_since: live.changed_at,
        ..UpOptions::default()
    };
    let up = project.up_and_wait(up_opts, |event| {
        super::up::shown(progress, Phase::Sync, event, &|| None)
    })?;
    let ready: Vec<String> = up
        .ready_s
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect();
    let note = format!(
        "{}; containers kept; ready again: {}",
        said.join("; "),
        ready.join(", ")
    );
    Ok((up, note))
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}
