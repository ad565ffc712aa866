//! `cargo e2e`, the runner: preflight, clean, certs, build, up, test (each
//! in `phases/`), then teardown, which runs whatever happened before it: an
//! error, a panic or an interruption (the first Ctrl-C stops the running
//! child and lands here).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use compose::{Policy, Project};

pub use crate::config::unix_time;
use crate::fingerprint::Store;
use crate::lock::ProjectLock;
pub(crate) use crate::phases::Phases;
pub(crate) use crate::phases::apply_policy;
pub use crate::phases::{Options, Progress, Work};
use crate::phases::{
    Prebuild, Staging, UpRequest, build_phase, certs_phase, clean_phase, preflight, teardown,
    up_phase,
};
use crate::report::{Failure, Phase, RunReport, Verdict};
use crate::shard::Shard;
use crate::sources::Snapshot;

/// Runs the pipeline. Never panics out and never skips teardown once the
/// stack may exist.
pub fn run(opts: &Options, progress: &mut dyn Progress) -> RunReport {
    let started = Instant::now();
    let mut report = RunReport::new(&opts.project, opts.run_dir.clone());
    let mut phases = Phases {
        progress,
        report: &mut report,
        lock: None,
    };
    // Preflight: nothing exists yet, so a failure here has nothing to tear
    // down. It first takes the project's lock, held until the run ends.
    let preflight = phases.run(Phase::Preflight, |progress| {
        let lock = ProjectLock::acquire(
            &opts.project,
            opts.workspace.root.as_str(),
            !opts.no_wait,
            |waiting| progress.note(Phase::Preflight, waiting),
        )?;
        // Neither needs what preflight checks: they start beside it, and a
        // failed preflight stops them (their drop).
        let background = Background::start(opts);
        let (project, note) = preflight(opts)?;
        Ok(((project, lock, background), note))
    });
    let (project, reaper, background) = match preflight {
        Ok((p, lock, background)) => {
            let reaper = arm_reaper(opts, &p, &lock);
            phases.lock = Some(lock);
            (p, reaper, background)
        }
        Err(verdict) => {
            report.verdict = verdict;
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };
    let body = std::panic::catch_unwind(AssertUnwindSafe(|| {
        body(opts, &project, &mut phases, background)
    }));
    let verdict = verdict_of(body);
    let teardown_failure = teardown(opts, &project, &verdict, &mut phases);
    report.verdict = match (verdict, teardown_failure) {
        // A teardown that failed after a passing run fails the run.
        (Verdict::Passed, Some(e)) => Verdict::Failed(Failure::Stack(format!("teardown: {e}"))),
        (v, _) => v,
    };
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(r) = reaper {
        r.disarm();
    }
    report.disk = crate::disk::keep_budgets(&opts.config.disk, || workspace_projects(opts));
    if let Some(runs) = opts.run_dir.parent() {
        let r = &opts.config.runs;
        let max_age = Duration::from_secs(r.max_age_days * 24 * 3600);
        report.pruned_runs = prune_runs(runs, &opts.run_dir, r.keep, max_age);
    }
    write_trace(&mut report);
    report
}

/// The run's trace beside its other files (a picture of it; one that cannot
/// be written costs only the picture).
pub(crate) fn write_trace(report: &mut RunReport) {
    let path = report.run_dir.join("trace.json");
    if crate::trace::Trace::of_run(report).write(&path).is_ok() {
        report.trace = Some(path);
    }
}

/// How the phases ended, whatever they returned or however they panicked;
/// an interruption wins, whatever it made them return.
pub(crate) fn verdict_of(body: std::thread::Result<Result<(), Verdict>>) -> Verdict {
    if process::interrupt::is_requested() {
        return Verdict::Interrupted;
    }
    match body {
        Ok(Ok(())) => Verdict::Passed,
        Ok(Err(v)) => v,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            Verdict::Failed(Failure::Stack(format!(
                "panic: {}",
                what.unwrap_or_default()
            )))
        }
    }
}

/// The projects this workspace ran (those with a record in
/// `<target>/e2e/state/`), this run's included.
fn workspace_projects(opts: &Options) -> Vec<String> {
    let state = opts.workspace.target_dir.join("e2e/state");
    projects_in(&state, &opts.project)
}

fn projects_in(dir: &camino::Utf8Path, current: &str) -> Vec<String> {
    let mut out = vec![current.to_owned()];
    if let Ok(entries) = dir.read_dir_utf8() {
        for e in entries.filter_map(Result::ok) {
            // A project name has no dot (Compose's rule): other files are
            // not records (caches an older version kept here).
            if let Some(p) = e.file_name().strip_suffix(".json")
                && !p.contains('.')
                && !out.iter().any(|o| o == p)
            {
                out.push(p.to_owned());
            }
        }
    }
    out
}

/// The reaper of this run, when there is a policy for it to apply: with
/// `keep`, or `--keep-on-failure` (a run that dies has failed), nothing goes.
pub(crate) fn arm_reaper(
    opts: &Options,
    project: &Project,
    lock: &ProjectLock,
) -> Option<crate::reaper::Reaper> {
    let exe = opts.reaper.as_ref()?;
    if opts.teardown == Policy::Keep || opts.keep_on_failure {
        return None;
    }
    let order = crate::reaper::Order {
        run_pid: std::process::id(),
        policy: opts.teardown,
        grace_s: opts.config.teardown.grace_s,
        spec: project.spec.clone(),
    };
    // Without a reaper the run is as safe as before: teardown still runs.
    crate::reaper::Reaper::arm(exe, lock, &order, &opts.run_dir.join("reaper.log")).ok()
}

/// Removes run folders beyond the `keep` newest and those older than
/// `max_age`, never `current`; returns how many went. Folders are named
/// `<unix time>-<pid>-<project>`: anything else there is left alone.
pub fn prune_runs(
    runs: &camino::Utf8Path,
    current: &camino::Utf8Path,
    keep: usize,
    max_age: Duration,
) -> usize {
    let Ok(entries) = runs.read_dir_utf8() else {
        return 0;
    };
    let now = unix_time();
    let mut dirs: Vec<(u64, Utf8PathBuf)> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let started: u64 = e.file_name().split('-').next()?.parse().ok()?;
            Some((started, e.into_path()))
        })
        .filter(|(_, p)| p != current)
        .collect();
    // Newest first; the current run counts as one of the kept.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.0));
    let mut removed = 0;
    for (i, (started, dir)) in dirs.iter().enumerate() {
        let too_many = i + 1 >= keep;
        let too_old = now.saturating_sub(*started) > max_age.as_secs();
        if (too_many || too_old) && std::fs::remove_dir_all(dir).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// What runs beside the phases from preflight on.
#[derive(Debug)]
pub(crate) struct Background {
    pub staging: Option<Staging>,
    pub prebuild: Prebuild,
    /// What the last run built and started, read once for the whole run.
    pub store: Store,
}

impl Background {
    /// Starts the builds whose sources changed since they last passed
    /// (the staged binaries' outside the walk: they are the stack's).
    pub fn start(opts: &Options) -> Background {
        let store = Store::open(&opts.workspace.target_dir, &opts.project);
        // A shard compiles nothing: the build job's binaries come with it.
        if let Some(Shard::Run { from, .. }) = &opts.shard {
            return Background {
                staging: (!opts.no_build).then(|| Staging::restored(opts, from)),
                prebuild: Prebuild::none(opts),
                store,
            };
        }
        let staged = crate::phases::stage_outputs(opts);
        let now = Snapshot::take(&opts.workspace, &staged, &store.state.outside);
        Background {
            staging: (!opts.no_build).then(|| Staging::for_run(opts, &store, now.as_ref())),
            prebuild: Prebuild::for_run(opts, &store, now.as_ref()),
            store,
        }
    }
}

pub(crate) fn body(
    opts: &Options,
    project: &Project,
    phases: &mut Phases,
    background: Background,
) -> Result<(), Verdict> {
    // The test binaries build while everything else runs: they do not depend
    // on the stack, and staging builds in a target folder of its own, so the
    // two cargo builds do not wait for each other's lock.
    let Background {
        staging,
        prebuild,
        mut store,
    } = background;
    if opts.no_clean {
        phases.skip(Phase::Clean, "--no-clean");
    } else {
        phases.report.cleaned = phases.run(Phase::Clean, |_| clean_phase(opts, project))?;
    }
    if opts.config.certs.is_none() {
        phases.skip(
            Phase::Certs,
            &format!("no certs section in {}", opts.config.path),
        );
    } else {
        phases.report.certs = Some(phases.run(Phase::Certs, |_| certs_phase(opts, project))?);
    }
    let image_ids = if opts.no_build {
        phases.skip(Phase::Build, "--no-build");
        None
    } else {
        let staging = staging.expect("staging starts unless --no-build");
        let built = phases.run(Phase::Build, |progress| {
            let (built, note) = build_phase(opts, project, &mut store, staging, None, progress)?;
            match &opts.shard {
                // The build job: what every shard needs, written out.
                Some(Shard::Build { out }) => {
                    let exported = crate::shard::export(opts, project, &store, out, progress)?;
                    Ok((built, format!("{note}; {exported}")))
                }
                _ => Ok((built, note)),
            }
        })?;
        (phases.report.contexts, phases.report.images) = (built.contexts, built.images);
        Some(built.image_ids)
    };
    // The build job starts nothing: its test binaries go into an archive.
    if let Some(Shard::Build { out }) = &opts.shard {
        return phases.run(Phase::Test, |progress| {
            crate::shard::archive_tests(opts, prebuild, &out.join(crate::shard::TESTS), progress)
        });
    }
    let up = phases.run(Phase::Up, |progress| {
        let request = UpRequest {
            image_ids,
            only: None,
            known: None,
            beside: &|| prebuild.news(),
        };
        up_phase(opts, project, &mut store, request, progress)
    })?;
    // The tests are told the containers as the wait last saw them.
    let containers = up.containers.clone();
    phases.report.containers = Some(up);
    phases.test(opts, project, prebuild, Some(containers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_s_projects_are_its_records_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = camino::Utf8Path::from_path(tmp.path()).unwrap();
        for f in ["shop.json", "ci-1.json", "shop.probed.json", "notes.txt"] {
            std::fs::write(dir.join(f), "{}").unwrap();
        }
        let mut found = projects_in(dir, "shop");
        found.sort();
        assert_eq!(found, ["ci-1", "shop"]);
    }

    #[test]
    fn run_folders_beyond_the_count_or_the_age_go_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let runs = camino::Utf8Path::from_path(tmp.path()).unwrap();
        let now = unix_time();
        let name = |ago: u64, pid: u32| runs.join(format!("{}-{pid}-e2e-p", now - ago));
        for (ago, pid) in [(10, 1), (20, 2), (30, 3), (40, 4), (90 * 24 * 3600, 5)] {
            std::fs::create_dir_all(name(ago, pid)).unwrap();
        }
        std::fs::create_dir_all(runs.join("not-a-run")).unwrap();
        std::fs::write(runs.join("12-a-file"), "").unwrap();
        let current = name(0, 9);
        std::fs::create_dir_all(&current).unwrap();
        let week = Duration::from_secs(7 * 24 * 3600);
        // Keep 3: the current run and the two newest; the rest go.
        assert_eq!(prune_runs(runs, &current, 3, week), 3);
        let mut left: Vec<String> = runs
            .read_dir_utf8()
            .unwrap()
            .map(|e| e.unwrap().file_name().to_owned())
            .collect();
        left.sort();
        let mut want = vec![
            current.file_name().unwrap().to_owned(),
            name(10, 1).file_name().unwrap().to_owned(),
            name(20, 2).file_name().unwrap().to_owned(),
            "12-a-file".to_owned(),
            "not-a-run".to_owned(),
        ];
        want.sort();
        assert_eq!(left, want);
        // By age alone: a large count keeps all but the old one.
        std::fs::create_dir_all(name(90 * 24 * 3600, 5)).unwrap();
        assert_eq!(prune_runs(runs, &current, 100, week), 1);
    }
}
