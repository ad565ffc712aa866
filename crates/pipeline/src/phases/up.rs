//! The up phase: the stack started (or left as it is when nothing it is
//! made from changed) and every service judged ready.

use std::collections::BTreeMap;
use std::time::Duration;

use compose::{Container, Engine, Project, UpEvent, UpOptions};

use super::preflight::CERTS_VOLUME;
use super::{Options, PhaseResult, Progress, Work};
use crate::fingerprint::{self, Store};
use crate::report::Phase;

/// When the certificate folder's files last changed (by the certs phase, or
/// by `cargo xtask certs` between runs).
fn newest_certificate(opts: &Options) -> Option<std::time::SystemTime> {
    let dir = opts.config.certs_dir()?;
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
        .max()
}

/// Shows what the wait of `up` (or of the sync phase) tells: who is awaited,
/// the services' lines, and the work beside it on each poll.
pub(super) fn shown(
    progress: &mut dyn Progress,
    phase: Phase,
    event: UpEvent<'_>,
    beside: &dyn Fn() -> Option<Work>,
) {
    match event {
        UpEvent::Waiting(pending) => {
            let list: Vec<String> = pending.iter().map(|(s, w)| format!("{s} ({w})")).collect();
            progress.note(phase, &format!("waiting for {}", list.join(", ")));
        }
        UpEvent::Log { service, line } => progress.service_log(service, line),
        UpEvent::Held { service, count } => progress.service_held(service, count),
        UpEvent::Poll => {
            if let Some(w) = beside() {
                progress.work(phase, &w);
            }
        }
    }
}

/// What a run or a watch cycle asks of the up phase.
pub(crate) struct UpRequest<'a> {
    /// The engine's image IDs, when the build phase listed them.
    pub image_ids: Option<BTreeMap<String, String>>,
    /// Start only these (a watch cycle's rebuilt services).
    pub only: Option<Vec<String>>,
    /// The containers as the caller saw them last (a watch session).
    pub known: Option<Vec<Container>>,
    /// News of the work beside the phases (the test build), shown while waiting.
    pub beside: &'a dyn Fn() -> Option<Work>,
}

pub(crate) fn up_phase(
    opts: &Options,
    project: &Project,
    store: &mut Store,
    request: UpRequest<'_>,
    progress: &mut dyn Progress,
) -> PhaseResult<compose::UpSummary> {
    let UpRequest {
        image_ids,
        only,
        known,
        beside,
    } = request;
    let image_ids = match image_ids {
        Some(ids) => ids,
        None => compose::image_ids(&project.spec.dir)?,
    };
    // Nothing the containers are made from changed since the last `up`: if
    // the containers it left are still as it left them, `up` is skipped.
    let key = fingerprint::stack_key(project, opts.ephemeral_ports, &image_ids);
    let unchanged = match (&key, &store.state.stack) {
        (Some(key), Some(last)) if !opts.rebuild && &last.key == key => {
            Some(last.containers.clone())
        }
        _ => None,
    };
    // Nothing they are made from changed: the containers the last run left
    // are judged from one `docker inspect` of them (if they are all still
    // there) instead of a listing of the project.
    let known = known.or_else(|| {
        let ids: Vec<String> = unchanged.as_ref()?.keys().cloned().collect();
        project.inspect(&ids)
    });
    // A running container holds the certificates it read at start: new ones
    // need new containers, which Compose would not make for unchanged config.
    let up_opts = UpOptions {
        timeout: Duration::from_secs(opts.config.readiness.timeout_s),
        // A watch cycle's certificates are the session's.
        mounted_files_changed: only.is_none().then(|| newest_certificate(opts)).flatten(),
        probes: opts.config.readiness.services.clone(),
        unchanged,
        replace_grace: Duration::from_secs(opts.config.teardown.grace_s),
        only,
        known,
        logs: opts.config.readiness.logs,
        rejudge: None,
        logs_since: None,
    };
    // A remote engine gets the certificates in a volume, filled anew each run
    // (new certificates recreate the containers, as with a bind mount).
    if Engine::remote_host().is_some()
        && let Some(dir) = opts.config.certs_dir()
    {
        let certs = opts.config.certs_mounts(&project.stack);
        if !certs.is_empty() {
            // The images of the services that mount them first, then any other.
            let mut images: Vec<String> = Vec::new();
            let services = certs
                .iter()
                .map(|b| b.service.as_str())
                .chain(project.stack.services.keys().map(String::as_str));
            for image in services.filter_map(|s| project.image_of(s)) {
                if !images.contains(&image) {
                    images.push(image);
                }
            }
            project.fill_volume(CERTS_VOLUME, &dir, &images)?;
        }
    }
    let up = project.up_and_wait(up_opts, |event| shown(progress, Phase::Up, event, beside))?;
    store.state.stack = key.map(|key| fingerprint::Started {
        key,
        containers: up.conditions.clone(),
    });
    let _ = store.save();
    let mut by_time: Vec<(&String, &f64)> = up.ready_s.iter().collect();
    by_time.sort_by(|a, b| a.1.total_cmp(b.1));
    let ready: Vec<String> = by_time
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect();
    let mut note = if up.unchanged {
        format!(
            "unchanged: {} containers as the last run left them, `up` skipped (the stack's config, \
             its images' IDs and its containers match the last up); ready: {}",
            up.reused,
            ready.join(", ")
        )
    } else {
        format!(
            "containers: {} created, {} started, {} reused; ready: {}",
            up.created,
            up.started,
            up.reused,
            ready.join(", ")
        )
    };
    if !up.recreated.is_empty() {
        let why: Vec<String> = up
            .recreated
            .iter()
            .map(|(s, why)| format!("{s} ({why})"))
            .collect();
        note.push_str(&format!("; recreated: {}", why.join(", ")));
    }
    if !up.checks_run_here.is_empty() {
        note.push_str(&format!(
            "; health checks run by the tool: {}",
            up.checks_run_here.join(", ")
        ));
    }
    if up.levels > 1 {
        note.push_str(&format!("; started in {} dependency levels", up.levels));
    }
    if !up.killed.is_empty() {
        note.push_str(&format!(
            "; old containers killed at once (PID 1 ignores its stop signal): {}",
            up.killed.join(", ")
        ));
    }
    if !up.repaired_networks.is_empty() {
        note.push_str(&format!(
            "; repaired: removed duplicate networks {}",
            up.repaired_networks.join(", ")
        ));
    }
    for (service, why) in &up.checks_left_to_docker {
        note.push_str(&format!("; {service}: Docker's own check ({why})"));
    }
    Ok((up, note))
}
