//! Teardown: a bundle on failure, then the policy, then a check that the
//! engine holds what the policy promises (a second pass mends what a racing
//! interrupted `up` left). It runs whatever happened before it.

use std::time::{Duration, Instant};

use compose::{Policy, Project};

use super::{Options, Phases};
use crate::report::{Phase, Status, TeardownDone, Verdict};

/// The bundle (on failure), the policy, and a check that the engine holds what
/// the policy promises; a second pass mends what a racing interrupted `up` left.
/// Returns what went wrong, if anything.
pub(crate) fn teardown(
    opts: &Options,
    project: &Project,
    verdict: &Verdict,
    phases: &mut Phases,
) -> Option<String> {
    let failed = !matches!(verdict, Verdict::Passed | Verdict::Interrupted);
    if failed {
        let dir = opts.run_dir.join("bundle");
        phases.report.bundle = project.bundle(&dir).ok();
    }
    let policy = if failed && opts.keep_on_failure {
        Policy::Keep
    } else {
        opts.teardown
    };
    let grace = Duration::from_secs(opts.config.teardown.grace_s);
    phases.progress.start(Phase::Teardown);
    if let Some(lock) = &mut phases.lock {
        lock.doing(Phase::Teardown.name());
    }
    let start = Instant::now();
    let logs = opts.run_dir.join("logs");
    let (stopped, leftovers, failure) = apply_policy(project, policy, grace, Some(&logs));
    phases.report.logs = stopped.logs.clone();
    let killed = &stopped.killed;
    let mut note = match (&failure, policy) {
        (Some(f), _) => format!("FAILED: {f}"),
        (None, Policy::Keep) if failed => keep_hint(opts, project),
        (None, Policy::Keep) => format!(
            "left running; remove it with `docker compose -p {} down --volumes`",
            opts.project
        ),
        (None, Policy::Stop) => "containers stopped; the next run starts them again".into(),
        (None, Policy::Down) => "containers and networks removed; volumes kept".into(),
        (None, Policy::Purge) => {
            "containers, networks, volumes and the project's images removed".into()
        }
    };
    if failure.is_none() && !killed.is_empty() {
        // Their PID 1 would not have acted on the signal: the grace would
        // have been spent waiting for nothing.
        note.push_str(&format!(
            "; killed at once (PID 1 ignores its stop signal): {}",
            killed.join(", ")
        ));
    }
    if failure.is_none() && !stopped.stop_s.is_empty() {
        note.push_str(&format!("; stopped in: {}", slowest_first(&stopped.stop_s)));
    }
    let status = if failure.is_some() {
        Status::Failed
    } else {
        Status::Ok
    };
    phases.record(
        Phase::Teardown,
        status,
        start.elapsed().as_secs_f64(),
        format!("{policy}: {note}"),
    );
    phases.report.teardown = Some(TeardownDone {
        policy,
        stop_s: stopped.stop_s,
        leftovers,
        note,
    });
    failure
}

/// Applies `policy` and checks that the engine holds what it promises; a
/// second pass mends what a racing interrupted `up` left. What was stopped,
/// what the engine holds after, and what went wrong, if anything.
pub(crate) fn apply_policy(
    project: &Project,
    policy: Policy,
    grace: Duration,
    logs: Option<&camino::Utf8Path>,
) -> (compose::Stopped, Option<compose::Leftovers>, Option<String>) {
    let mut result = project.teardown(policy, grace, logs);
    // `keep` promises everything stays: nothing to check, and no listing to
    // wait for after the tests.
    let mut leftovers = (policy != Policy::Keep)
        .then(|| project.leftovers().ok())
        .flatten();
    if result.is_ok()
        && let Some(left) = &leftovers
        && left.broken_promise(policy).is_some()
    {
        let logs = result.as_ref().map(|s| s.logs.clone()).unwrap_or_default();
        result = project
            .teardown(policy, grace, None)
            .map(|s| compose::Stopped { logs, ..s });
        leftovers = project.leftovers().ok();
    }
    let failure = match (
        &result,
        leftovers.as_ref().and_then(|l| l.broken_promise(policy)),
    ) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(_), broken) => broken,
    };
    (result.unwrap_or_default(), leftovers, failure)
}

/// `db 1.2 s, api 0.1 s`: who cost what, the slowest first.
pub(crate) fn slowest_first(seconds: &std::collections::BTreeMap<String, f64>) -> String {
    let mut by_time: Vec<(&String, &f64)> = seconds.iter().collect();
    by_time.sort_by(|a, b| b.1.total_cmp(a.1));
    by_time
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// How to reach a stack kept after a failure, and how to remove it.
fn keep_hint(opts: &Options, project: &Project) -> String {
    let mut addresses = Vec::new();
    let host = project.spec.publish_host();
    for (name, s) in &project.stack.services {
        for p in &s.ports {
            if let Some(published) = &p.published {
                addresses.push(format!("{name} at {host}:{published}"));
            }
        }
    }
    let p = &opts.project;
    format!(
        "kept for debugging: {}; logs: `docker compose -p {p} logs`; remove: `docker compose -p {p} down --volumes --remove-orphans`",
        if addresses.is_empty() {
            "no published ports".into()
        } else {
            addresses.join(", ")
        }
    )
}
