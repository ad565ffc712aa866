//! `cargo e2e`: the whole pipeline on the configured stack, with
//! guaranteed teardown and one exit code per kind of outcome.

use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use pipeline::e2e::Options;

use crate::ci_log::CiHost;
use crate::flags::E2e;

pub fn run(flags: &E2e) -> anyhow::Result<()> {
    run_as(flags, None)
}

/// A run, or one role of a sharded CI (`shard build`, `shard run K/N`).
pub fn run_as(flags: &E2e, shard: Option<pipeline::shard::Shard>) -> anyhow::Result<()> {
    if flags.watch && shard.is_some() {
        return Err(
            crate::exit::Exit::usage("--watch is for a developer's loop, not a CI shard").into(),
        );
    }
    let (workspace, mut config) = crate::load_config(flags.config.config.as_deref())?;
    config.readiness.logs &= !flags.no_logs;
    let ci = crate::in_ci();
    let project = config.project_name(flags.project.as_deref(), ci);
    let teardown = flags.teardown.unwrap_or_else(|| config.default_policy(ci));
    let target_dir = workspace.target_dir.clone();
    // The pid keeps two runs started in the same second apart.
    let run_dir = target_dir.join("e2e/runs").join(format!(
        "{}-{}-{project}",
        pipeline::e2e::unix_time(),
        std::process::id()
    ));
    let opts = Options {
        ephemeral_ports: flags.ephemeral_ports || config.compose.ephemeral_ports,
        config,
        workspace,
        project: project.clone(),
        teardown,
        keep_on_failure: flags.keep_on_failure,
        no_clean: flags.no_clean,
        no_build: flags.no_build,
        rebuild: flags.rebuild,
        no_wait: flags.no_wait,
        reaper: std::env::current_exe()
            .ok()
            .and_then(|p| camino::Utf8PathBuf::from_path_buf(p).ok()),
        ci,
        filtersets: flags.filtersets.clone(),
        nextest_args: flags.nextest_args.clone(),
        run_dir,
        tool: crate::tool(),
        shard,
    };
    // Nothing is written through a symlink swapped in for a folder of ours.
    pipeline::guard::run_paths(&target_dir, &opts.run_dir)
        .map_err(|e| crate::exit::Exit::usage(e.to_string()))?;
    on_signals(project, teardown)?;
    // The runner masks each secret in the job's log from the moment it
    // reads this (before any line could show one).
    if CiHost::detect(|k| std::env::var(k).ok()) == Some(CiHost::GitHub) {
        pipeline::secrets::on_new_value(|value| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "::add-mask::{value}").and_then(|()| out.flush());
        });
    }
    if flags.watch {
        return crate::watch::run(&opts, flags.only_failed, flags.no_logs);
    }
    let ci_host = CiHost::detect(|k| std::env::var(k).ok());
    let report = pipeline::e2e::run(&opts, &mut crate::progress::Progress::new(ci_host));

    let json = flags
        .report_json
        .clone()
        .unwrap_or_else(|| target_dir.join("e2e/report.json"));
    if let Some(dir) = json.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    }
    let text = pipeline::secrets::redact(&serde_json::to_string_pretty(&report)?);
    std::fs::write(&json, text).with_context(|| format!("writing {json}"))?;
    // A shard's report travels to the merge job as a CI artifact: its JUnit
    // file goes beside it (where `report merge` and GitLab's `reports:
    // junit:` look), not only in the run folder this machine keeps.
    if matches!(opts.shard, Some(pipeline::shard::Shard::Run { .. }))
        && let (Some(junit), Some(dir)) = (&report.junit, json.parent())
    {
        std::fs::copy(junit, dir.join("junit.xml"))
            .with_context(|| format!("copying {junit} beside {json}"))?;
    }
    // A run that stopped in preflight has nothing to tabulate: the error says it all.
    if report.phases.len() > 1 {
        // A closed stdout must not turn a finished run into a panic.
        let table = pipeline::secrets::redact(&report.to_string());
        let _ = writeln!(std::io::stdout().lock(), "{table}\n  report     {json}");
    }
    if let Some(ci) = ci_host {
        ci_report(ci, &report);
    }
    Ok(crate::exit::of_verdict(report.verdict)?)
}

/// What a CI host shows beside the log: an annotation per failed test
/// (capped) and, on GitHub, the run's table on the job's summary page.
fn ci_report(ci: CiHost, report: &pipeline::RunReport) {
    let failed = report
        .junit
        .as_deref()
        .and_then(|j| test_runner::failures(j).ok())
        .unwrap_or_default();
    let mut out = std::io::stdout().lock();
    for f in failed.iter().take(crate::ci_log::MAX_TEST_ANNOTATIONS) {
        if let Some(line) = ci.error(&format!("e2e test failed: {}", f.name), &f.message) {
            let _ = writeln!(out, "{}", pipeline::secrets::redact(&line));
        }
    }
    if failed.len() > crate::ci_log::MAX_TEST_ANNOTATIONS {
        let more = failed.len() - crate::ci_log::MAX_TEST_ANNOTATIONS;
        if let Some(line) = ci.error(
            "e2e: more failed tests",
            &format!(
                "{more} more failed tests: see the JUnit report {}",
                report.junit.as_ref().map(|j| j.as_str()).unwrap_or("")
            ),
        ) {
            let _ = writeln!(out, "{line}");
        }
    }
    if ci == CiHost::GitHub
        && let Ok(summary) = std::env::var("GITHUB_STEP_SUMMARY")
        && !summary.is_empty()
    {
        let md = pipeline::secrets::redact(&crate::ci_log::summary_markdown(report, &failed));
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&summary)
            .and_then(|mut f| f.write_all(md.as_bytes()));
        if let Err(e) = appended {
            let _ = writeln!(
                std::io::stderr(),
                "warning: cannot append to GITHUB_STEP_SUMMARY ({summary}): {e}"
            );
        }
    }
}

/// The first Ctrl-C (or SIGTERM) stops what runs and goes on to teardown; a
/// second skips teardown, says what is left, and exits 130.
fn on_signals(project: String, policy: compose::Policy) -> anyhow::Result<()> {
    static SIGNALS: AtomicUsize = AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        // Act first, then say so: a closed stderr must not stop the teardown.
        let mut err = std::io::stderr();
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 {
            process::interrupt::request();
            let _ = writeln!(
                err,
                "\ninterrupted: stopping, then teardown ({policy}); press Ctrl-C again to skip teardown"
            );
            return;
        }
        process::interrupt::abandon();
        if let Some(pid) = pipeline::reaper::armed_pid() {
            // Exiting closes the reaper's pipe: it takes the teardown over.
            let _ = writeln!(
                err,
                "\nteardown left to the reaper (pid {pid}), which applies {policy} to project {project} \
                 in the background; its log is reaper.log in the run's folder"
            );
            std::process::exit(130);
        }
        let left = match compose::leftovers(&project) {
            Ok(l) => l.to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        let _ = writeln!(
            err,
            "\nteardown skipped; the engine holds for project {project}: {left}\n\
             remove it with: docker compose -p {project} down --volumes --remove-orphans"
        );
        std::process::exit(130);
    })
    .context("installing the Ctrl-C handler")
}
