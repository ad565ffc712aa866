//! `cargo xtask e2e`, phase by phase: preflight, clean, certs, build, up, test,
//! teardown. Teardown runs whatever happened before it: an error, a panic or an
//! interruption (the first Ctrl-C stops the running child and lands here).

use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use build_context::clean;
use camino::Utf8PathBuf;
use compose::{Container, Engine, Policy, Project, UpOptions};
use process::Cmd;

use crate::Config;
pub use crate::config::unix_time;
use crate::report::{
    CertsDone, Cleaned, ContextSize, Phase, PhaseReport, RunReport, Status, TeardownDone, Verdict,
};
use crate::workspace::Workspace;

/// Everything a run needs, decided by the caller.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: Config,
    /// The user's workspace: cargo runs in its root and builds in its target folder.
    pub workspace: Workspace,
    pub project: String,
    pub teardown: Policy,
    pub keep_on_failure: bool,
    pub no_clean: bool,
    pub no_build: bool,
    /// Publish every port on a host port the engine picks (`compose.ephemeral_ports`).
    pub ephemeral_ports: bool,
    /// Under CI: fixed host ports get a warning (runs cannot share an engine).
    pub ci: bool,
    /// `-E` from the command line; when empty, the config's `tests.filterset`.
    pub filtersets: Vec<String>,
    /// Passed through to nextest after `--`.
    pub nextest_args: Vec<String>,
    /// This run's folder: build log, failure bundle.
    pub run_dir: Utf8PathBuf,
}

/// Hears about phases as they run; the CLI draws spinners or prints lines.
pub trait Progress {
    fn start(&mut self, phase: Phase);
    /// A line worth showing while a phase runs (who is still awaited).
    fn note(&mut self, phase: Phase, line: &str);
    fn end(&mut self, report: &PhaseReport);
}

/// Why a phase failed; each kind becomes one verdict.
#[derive(Debug)]
enum Failure {
    BadInput(String),
    Stack(String),
    Tests(String),
    /// A build context over `context.budget`.
    Limit(String),
}

/// A phase's value and the note shown for it.
type PhaseResult<T> = Result<(T, String), Failure>;

fn stack(e: impl std::fmt::Display) -> Failure {
    Failure::Stack(e.to_string())
}

/// Runs the pipeline. Never panics out and never skips teardown once the
/// stack may exist.
pub fn run(opts: &Options, progress: &mut dyn Progress) -> RunReport {
    let started = Instant::now();
    let mut report = RunReport::new(&opts.project, opts.run_dir.clone());
    let mut phases = Phases {
        progress,
        report: &mut report,
    };
    // Preflight: nothing exists yet, so a failure here has nothing to tear down.
    let project = match phases.run(Phase::Preflight, |_| preflight(opts)) {
        Ok(p) => p,
        Err(verdict) => {
            report.verdict = verdict;
            report.seconds = started.elapsed().as_secs_f64();
            return report;
        }
    };
    let body = std::panic::catch_unwind(AssertUnwindSafe(|| body(opts, &project, &mut phases)));
    let verdict = match body {
        Ok(Ok(())) => Verdict::Passed,
        Ok(Err(v)) => v,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()));
            Verdict::StackFailed(format!("panic: {}", what.unwrap_or_default()))
        }
    };
    let verdict = if process::interrupt::is_requested() {
        Verdict::Interrupted
    } else {
        verdict
    };
    let teardown_failure = teardown(opts, &project, &verdict, &mut phases);
    report.verdict = match (verdict, teardown_failure) {
        // A teardown that failed after a passing run fails the run.
        (Verdict::Passed, Some(e)) => Verdict::StackFailed(format!("teardown: {e}")),
        (v, _) => v,
    };
    report.seconds = started.elapsed().as_secs_f64();
    report
}

struct Phases<'a> {
    progress: &'a mut dyn Progress,
    report: &'a mut RunReport,
}

impl Phases<'_> {
    /// Runs one phase, timing and recording it; an interruption before it
    /// starts skips it.
    fn run<T>(
        &mut self,
        phase: Phase,
        f: impl FnOnce(&mut dyn Progress) -> PhaseResult<T>,
    ) -> Result<T, Verdict> {
        if process::interrupt::is_requested() {
            self.record(
                phase,
                Status::Interrupted,
                0.0,
                "not started: interrupted".into(),
            );
            return Err(Verdict::Interrupted);
        }
        self.progress.start(phase);
        let start = Instant::now();
        let result = f(self.progress);
        let seconds = start.elapsed().as_secs_f64();
        let (status, note, out) = match result {
            Ok((value, note)) => (Status::Ok, note, Ok(value)),
            Err(_) if process::interrupt::is_requested() => (
                Status::Interrupted,
                "interrupted".into(),
                Err(Verdict::Interrupted),
            ),
            Err(Failure::BadInput(e)) => {
                (Status::Failed, first_line(&e), Err(Verdict::BadInput(e)))
            }
            Err(Failure::Limit(e)) => (Status::Failed, first_line(&e), Err(Verdict::OverBudget(e))),
            Err(Failure::Tests(e)) => (Status::Failed, e.clone(), Err(Verdict::TestsFailed(e))),
            Err(Failure::Stack(e)) => (
                Status::Failed,
                first_line(&e),
                Err(Verdict::StackFailed(format!("{}: {e}", phase.name()))),
            ),
        };
        self.record(phase, status, seconds, note);
        out
    }

    fn skip(&mut self, phase: Phase, why: &str) {
        self.record(phase, Status::Skipped, 0.0, why.into());
    }

    fn record(&mut self, phase: Phase, status: Status, seconds: f64, note: String) {
        let r = PhaseReport {
            phase,
            status,
            seconds,
            note,
        };
        self.progress.end(&r);
        self.report.phases.push(r);
    }
}

fn body(opts: &Options, project: &Project, phases: &mut Phases) -> Result<(), Verdict> {
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
    if opts.no_build {
        phases.skip(Phase::Build, "--no-build");
    } else {
        (phases.report.contexts, phases.report.images) =
            phases.run(Phase::Build, |_| build_phase(opts, project))?;
    }
    let up = phases.run(Phase::Up, |progress| up_phase(opts, project, progress))?;
    phases.report.containers = Some(up);
    // A failing phase hands back only its verdict: the counts travel aside.
    let mut counted = None;
    let outcome = phases.run(Phase::Test, |_| test_phase(opts, project, &mut counted));
    if let Some(o) = counted {
        (phases.report.tests, phases.report.junit) = (o.counts, o.junit);
    }
    outcome
}

/// Checks filtersets (cargo metadata) and the engine and stack (docker) at
/// once: two independent chains of process starts. A filterset error wins,
/// being the user's typo rather than the machine's state.
fn preflight(opts: &Options) -> PhaseResult<Project> {
    let (filters, docker) = std::thread::scope(|s| {
        let filters = s.spawn(|| check_filtersets(opts));
        let docker = s.spawn(|| engine_and_stack(opts));
        (
            filters.join().expect("filterset check does not panic"),
            docker.join().expect("stack check does not panic"),
        )
    });
    let version_note = filters?;
    let (engine, project, warnings) = docker?;
    let mut note = format!(
        "engine {}, {} services",
        engine.server_version.as_deref().unwrap_or("?"),
        project.stack.services.len()
    );
    if opts.ephemeral_ports {
        note.push_str(", ports picked by the engine");
    }
    for w in version_note.into_iter().chain(warnings) {
        note.push_str(&format!("; {w}"));
    }
    Ok((project, note))
}

/// `-E` and the config's filterset, against the package graph; the note to
/// show when the installed nextest is not the one whose parser we embed.
fn check_filtersets(opts: &Options) -> Result<Option<String>, Failure> {
    let workspace = test_runner::Workspace::load(&opts.workspace.root).map_err(stack)?;
    // A package that is not a member would make nextest fail after the whole
    // stack was built and started; say so now, with the members to choose from.
    workspace
        .check_packages(&opts.config.tests.packages)
        .map_err(|e| Failure::BadInput(format!("{}: tests.packages: {e}", opts.config.path)))?;
    for f in &opts.filtersets {
        workspace
            .check(f, "-E")
            .map_err(|e| Failure::BadInput(e.to_string()))?;
    }
    if let Some(f) = &opts.config.tests.filterset {
        let what = format!("{}: tests.filterset", opts.config.path);
        workspace
            .check(f, &what)
            .map_err(|e| Failure::BadInput(e.to_string()))?;
    }
    let version = Cmd::cargo(["nextest", "--version"])
        .text(&opts.workspace.root)
        .ok();
    Ok(version.and_then(|v| test_runner::filterset::version_note(&v)))
}

fn engine_and_stack(opts: &Options) -> Result<(Engine, Project, Vec<String>), Failure> {
    let engine = Engine::require().map_err(stack)?;
    let mut project = Project::load(opts.config.project_spec(Some(opts.project.clone())))
        .map_err(|e| Failure::BadInput(format!("the compose stack ({}): {e}", opts.config.path)))?;
    // A `{service:port}` that names nothing is a config error: found now, not after `up`.
    let model_ports = |service: &str, port: u16| {
        let s = project.stack.services.get(service)?;
        s.ports
            .iter()
            .find(|p| p.target == port && p.published.is_some())
            .map(|_| format!("{service}:{port}"))
    };
    for value in opts.config.tests.env.values() {
        expand(value, model_ports)
            .map_err(|e| Failure::BadInput(format!("{}: {e}", opts.config.path)))?;
    }
    let config = &opts.config;
    for (service, probe) in &config.readiness.services {
        let Some(s) = project.stack.services.get(service) else {
            return Err(Failure::BadInput(format!(
                "{}: readiness.services.{service}: the stack has no such service (it has {})",
                config.path,
                project
                    .stack
                    .services
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let port = match probe {
            compose::Probe::Tcp(p) => Some(*p),
            compose::Probe::Http(h) => Some(h.port),
            _ => None,
        };
        if let Some(port) = port
            && !s.published_tcp().contains(&port)
        {
            return Err(Failure::BadInput(format!(
                "{}: readiness.services.{service}: the probe asks port {port}, which {service} does not publish; \
                 publish it, or judge it by its log (`log: REGEX`) or a healthcheck",
                config.path
            )));
        }
    }
    let mut warnings = Vec::new();
    if opts.ephemeral_ports {
        let file = opts.run_dir.join("ephemeral-ports.yaml");
        write_ephemeral_override(&project, &file).map_err(Failure::Stack)?;
        project.spec.files.push(file);
    } else {
        project.check_ports().map_err(stack)?;
        let fixed: Vec<String> = project
            .stack
            .services
            .iter()
            .flat_map(|(name, s)| {
                s.ports
                    .iter()
                    .filter_map(move |p| Some(format!("{} ({name})", p.published.as_ref()?)))
            })
            .collect();
        if opts.ci && !fixed.is_empty() {
            warnings.push(format!(
                "warning: fixed host ports {} cannot run in parallel on one engine; pass --ephemeral-ports",
                fixed.join(", ")
            ));
        }
    }
    Ok((engine, project, warnings))
}

/// An override file that publishes every published port again on a host
/// port the engine picks, keeping its host address and protocol; the user's
/// compose file stays as it is. `!override` replaces the list (Compose 2.24.4+).
fn write_ephemeral_override(project: &Project, file: &camino::Utf8Path) -> Result<(), String> {
    let mut text =
        String::from("# Written by cargo e2e --ephemeral-ports for this run.\nservices:\n");
    for (name, s) in &project.stack.services {
        if s.ports.iter().all(|p| p.published.is_none()) {
            continue;
        }
        text.push_str(&format!("  {name}:\n    ports: !override\n"));
        for p in &s.ports {
            text.push_str(&format!("      - target: {}\n", p.target));
            if let Some(ip) = p.host_ip.as_deref().filter(|i| !i.is_empty()) {
                text.push_str(&format!("        host_ip: \"{ip}\"\n"));
            }
            if let Some(proto) = &p.protocol {
                text.push_str(&format!("        protocol: {proto}\n"));
            }
        }
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
    }
    std::fs::write(file, text).map_err(|e| format!("cannot write {file}: {e}"))
}

/// What the tests see: the project, the CA (with certificates), and
/// `tests.env` with each `{service:port}` made the address where the engine
/// publishes it, as the engine reports it (ports it picked included).
fn test_env(opts: &Options, containers: &[Container]) -> Result<Vec<(String, String)>, String> {
    let c = &opts.config;
    let mut env = vec![("E2E_PROJECT".to_owned(), opts.project.clone())];
    if let Some(dir) = c.certs_dir() {
        env.push(("E2E_CA_CERT".to_owned(), dir.join("ca.crt").to_string()));
    }
    let published = |service: &str, port: u16| {
        containers
            .iter()
            .filter(|k| k.service == service)
            .find_map(|k| k.published(port))
    };
    for (key, value) in &c.tests.env {
        env.push((key.clone(), expand(value, published)?));
    }
    Ok(env)
}

fn clean_phase(opts: &Options, project: &Project) -> PhaseResult<Option<Cleaned>> {
    let roots: Vec<Utf8PathBuf> = project
        .stack
        .build_contexts()
        .into_iter()
        .map(|(_, c, _)| c.to_owned())
        .collect();
    let Some(first) = roots.first() else {
        return Ok((None, "no build contexts".into()));
    };
    match crate::git::tracked(first).map_err(stack)? {
        Some((repo, tracked)) => {
            let plan = clean::plan(&repo, &roots, &opts.config.context.artifacts, &tracked)
                .map_err(|e| {
                    Failure::BadInput(format!("{}: context.artifacts: {e}", opts.config.path))
                })?;
            let outcome = clean::execute(&plan, false);
            let note = format!(
                "removed {} artifacts ({})",
                outcome.removed_files,
                build_context::human(outcome.bytes_freed)
            );
            Ok((
                Some(Cleaned {
                    files: outcome.removed_files,
                    bytes: outcome.bytes_freed,
                }),
                note,
            ))
        }
        None => Ok((None, "not a git work tree: nothing deleted".into())),
    }
}

/// What each context sends now (after staging: exactly what the build will
/// get), checked against `context.budget` before the build starts.
fn measure_contexts(opts: &Options, project: &Project) -> Result<Vec<ContextSize>, Failure> {
    let budget = opts.config.budget();
    let mut sizes = Vec::new();
    for (service, root, dockerfile) in project.stack.build_contexts() {
        let ctx = build_context::Context::open(root, Some(&dockerfile))
            .map_err(|e| Failure::BadInput(e.to_string()))?;
        let walk = ctx
            .walk(build_context::WalkOptions {
                sizes: true,
                into_pruned: false,
            })
            .map_err(|e| Failure::BadInput(e.to_string()))?;
        let r = build_context::analyze(&ctx, &walk, budget);
        if let Some(over) = r.over_budget_message() {
            return Err(Failure::Limit(format!(
                "the context of {service} {over} (`cargo xtask clean-context` suggests ignore lines)"
            )));
        }
        sizes.push(ContextSize {
            service: service.to_owned(),
            context: root.to_owned(),
            sent_files: r.sent.files,
            sent_bytes: r.sent.bytes,
        });
    }
    Ok(sizes)
}

fn certs_phase(opts: &Options, project: &Project) -> PhaseResult<CertsDone> {
    let Some(spec) = opts
        .config
        .certs_spec(project.stack.services.keys().cloned())
    else {
        return Err(Failure::BadInput("no certs section".into()));
    };
    let r = certs::ensure(&spec, certs::Mode::Ensure).map_err(stack)?;
    let note = r.reason.replace('\n', "; ");
    Ok((
        CertsDone {
            action: r.action,
            reason: r.reason,
        },
        note,
    ))
}

fn build_phase(
    opts: &Options,
    project: &Project,
) -> PhaseResult<(Vec<ContextSize>, Vec<compose::ImageBuild>)> {
    let stages: Vec<_> = opts
        .config
        .stage
        .iter()
        .map(|s| (s.clone(), opts.config.resolve(&s.to)))
        .collect();
    let staged = crate::stage::stage(&opts.workspace.root, &opts.workspace.target_dir, &stages)
        .map_err(Failure::Stack)?;
    let contexts = measure_contexts(opts, project)?;
    let images = project
        .build(&opts.run_dir.join("build.log"))
        .map_err(stack)?;
    let shown: Vec<String> = images
        .iter()
        .map(|i| format!("{} {}", i.service, if i.built { "built" } else { "cached" }))
        .collect();
    let sizes: Vec<String> = contexts
        .iter()
        .map(|c| format!("{} {}", c.service, build_context::human(c.sent_bytes)))
        .collect();
    let note = format!(
        "images: {}; contexts sent: {}; staged binaries: {staged} of {} changed",
        shown.join(", "),
        sizes.join(", "),
        stages.len()
    );
    Ok(((contexts, images), note))
}

/// When the certificate folder's files last changed (by the certs phase, or
/// by `cargo xtask certs` between runs).
fn newest_certificate(opts: &Options) -> Option<std::time::SystemTime> {
    let dir = opts.config.certs_dir()?;
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
        .max()
}

fn up_phase(
    opts: &Options,
    project: &Project,
    progress: &mut dyn Progress,
) -> PhaseResult<compose::UpSummary> {
    // A running container holds the certificates it read at start: new ones
    // need new containers, which Compose would not make for unchanged config.
    let up_opts = UpOptions {
        timeout: Duration::from_secs(opts.config.readiness.timeout_s),
        mounted_files_changed: newest_certificate(opts),
        probes: opts.config.readiness.services.clone(),
    };
    let up = project
        .up_and_wait(up_opts, |pending| {
            let list: Vec<String> = pending.iter().map(|(s, w)| format!("{s} ({w})")).collect();
            progress.note(Phase::Up, &format!("waiting for {}", list.join(", ")));
        })
        .map_err(stack)?;
    let note = format!(
        "containers: {} created, {} started, {} reused",
        up.created, up.started, up.reused
    );
    Ok((up, note))
}

/// Runs nextest; `counted` receives its outcome (counts, JUnit path) whether
/// the tests passed or not.
fn test_phase(
    opts: &Options,
    project: &Project,
    counted: &mut Option<test_runner::Outcome>,
) -> PhaseResult<()> {
    let c = &opts.config;
    let containers = project.ps().map_err(stack)?;
    let env = test_env(opts, &containers).map_err(Failure::BadInput)?;
    let filtersets = if opts.filtersets.is_empty() {
        c.tests.filterset.iter().cloned().collect()
    } else {
        opts.filtersets.clone()
    };
    // The profile, for a workspace whose nextest config lacks it: its own
    // config still wins wherever it says something.
    // Its store (the JUnit report) in this run's folder: runs of several
    // projects at once each count their own report.
    let tool_config = opts.run_dir.join("nextest-tool.toml");
    test_runner::write_tool_config(
        &tool_config,
        &opts.run_dir,
        &c.tests.profile,
        &c.tests.packages,
    )
    .map_err(stack)?;
    let invocation = test_runner::Invocation {
        profile: c.tests.profile.clone(),
        packages: c.tests.packages.clone(),
        filtersets,
        args: opts.nextest_args.clone(),
        env,
        tool_config: Some(tool_config),
    };
    let outcome = invocation
        .run(&opts.workspace.root, &opts.run_dir)
        .map_err(stack)?;
    let counts = outcome
        .counts
        .map_or_else(|| "no JUnit report to count from".into(), |c| c.to_string());
    let verdict = outcome.verdict.clone();
    *counted = Some(outcome);
    match verdict {
        test_runner::Verdict::Passed => Ok(((), counts)),
        test_runner::Verdict::Failed => Err(Failure::Tests(counts)),
        test_runner::Verdict::NoTests => Err(Failure::Tests(format!(
            "no tests ran: the filterset and the `{}` profile's default-filter selected none in {}",
            c.tests.profile,
            if c.tests.packages.is_empty() {
                "the workspace".to_owned()
            } else {
                format!("tests.packages ({})", c.tests.packages.join(", "))
            }
        ))),
        test_runner::Verdict::NextestError(code) => Err(Failure::Stack(format!(
            "`{}` failed with exit code {}",
            invocation.command(),
            code.map_or("none (a signal)".into(), |c| c.to_string())
        ))),
    }
}

/// The bundle (on failure), the policy, and a check that the engine holds what
/// the policy promises; a second pass mends what a racing interrupted `up` left.
/// Returns what went wrong, if anything.
fn teardown(
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
    let start = Instant::now();
    let mut result = project.teardown(policy, grace);
    let mut leftovers = project.leftovers().ok();
    if result.is_ok()
        && let Some(left) = &leftovers
        && left.broken_promise(policy).is_some()
    {
        result = project.teardown(policy, grace);
        leftovers = project.leftovers().ok();
    }
    let failure = match (
        &result,
        leftovers.as_ref().and_then(|l| l.broken_promise(policy)),
    ) {
        (Err(e), _) => Some(e.to_string()),
        (Ok(()), broken) => broken,
    };
    let note = match (&failure, policy) {
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
        leftovers,
        note,
    });
    failure
}

/// How to reach a stack kept after a failure, and how to remove it.
fn keep_hint(opts: &Options, project: &Project) -> String {
    let mut addresses = Vec::new();
    for (name, s) in &project.stack.services {
        for p in &s.ports {
            if let Some(published) = &p.published {
                addresses.push(format!("{name} at 127.0.0.1:{published}"));
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

/// Each `{service:port}` in `value` becomes what `published` says (the
/// `HOST:PORT` where the engine publishes it).
pub fn expand(
    value: &str,
    published: impl Fn(&str, u16) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or(format!("tests.env: unclosed `{{` in `{value}`"))?
            + open;
        let (service, port) = rest[open + 1..close]
            .split_once(':')
            .ok_or(format!("tests.env: `{value}`: write {{service:port}}"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("tests.env: `{value}`: `{port}` is not a port number"))?;
        let address = published(service, port).ok_or(format!(
            "tests.env `{value}`: service {service} publishes no port {port}"
        ))?;
        out.push_str(&rest[..open]);
        out.push_str(&address);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ports_become_the_published_addresses() {
        let published = |service: &str, port: u16| match (service, port) {
            ("proxy", 80) => Some("127.0.0.1:49153".to_owned()),
            _ => None,
        };
        let table = [
            (
                "http://{proxy:80}/items",
                Ok("http://127.0.0.1:49153/items"),
            ),
            (
                "{proxy:80},{proxy:80}",
                Ok("127.0.0.1:49153,127.0.0.1:49153"),
            ),
            ("plain", Ok("plain")),
            (
                "{proxy:81}",
                Err("tests.env `{proxy:81}`: service proxy publishes no port 81"),
            ),
            (
                "{proxy:http}",
                Err("tests.env: `{proxy:http}`: `http` is not a port number"),
            ),
            ("{proxy}", Err("tests.env: `{proxy}`: write {service:port}")),
            ("{proxy:80", Err("tests.env: unclosed `{` in `{proxy:80`")),
        ];
        for (value, want) in table {
            let got = expand(value, published);
            assert_eq!(
                got.as_deref(),
                want.map_err(str::to_owned).as_deref(),
                "{value}"
            );
        }
    }
}
