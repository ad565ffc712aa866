//! What a run did, phase by phase: the table printed at the end and the JSON
//! written to `target/e2e/`.

use camino::Utf8PathBuf;
use compose::{ImageBuild, Leftovers, Policy, UpSummary};
use serde::Serialize;

/// The phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Preflight,
    Clean,
    Certs,
    Build,
    Up,
    Test,
    Teardown,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Preflight => "preflight",
            Phase::Clean => "clean",
            Phase::Certs => "certs",
            Phase::Build => "build",
            Phase::Up => "up",
            Phase::Test => "test",
            Phase::Teardown => "teardown",
        }
    }
}

/// How the run ended; each maps to one exit code in the xtask.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
pub enum Verdict {
    Passed,
    TestsFailed(String),
    /// A build context sends more than `context.budget`.
    OverBudget(String),
    /// Bad config, flag or filterset, found before anything ran.
    BadInput(String),
    /// No engine, a failed build, a service that never got ready.
    StackFailed(String),
    Interrupted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
    Interrupted,
}

#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    pub phase: Phase,
    pub status: Status,
    pub seconds: f64,
    pub note: String,
}

/// One build context as the build phase measured it, after staging.
#[derive(Debug, Clone, Serialize)]
pub struct ContextSize {
    pub service: String,
    pub context: Utf8PathBuf,
    pub sent_files: u64,
    pub sent_bytes: u64,
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct Cleaned {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CertsDone {
    pub action: certs::Action,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeardownDone {
    pub policy: Policy,
    /// What the engine still holds for the project afterwards.
    pub leftovers: Option<Leftovers>,
    pub note: String,
}

/// Everything a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub project: String,
    pub verdict: Verdict,
    pub phases: Vec<PhaseReport>,
    pub contexts: Vec<ContextSize>,
    /// What the clean phase deleted; `None` when it deleted nothing by rule
    /// (skipped, or not a git work tree).
    pub cleaned: Option<Cleaned>,
    pub certs: Option<CertsDone>,
    pub images: Vec<ImageBuild>,
    pub containers: Option<UpSummary>,
    pub tests: Option<test_runner::Counts>,
    pub junit: Option<Utf8PathBuf>,
    pub teardown: Option<TeardownDone>,
    /// The run's folder: build log, and the failure bundle when there is one.
    pub run_dir: Utf8PathBuf,
    pub bundle: Option<Utf8PathBuf>,
    pub seconds: f64,
}

impl RunReport {
    pub fn new(project: &str, run_dir: Utf8PathBuf) -> RunReport {
        RunReport {
            project: project.to_owned(),
            verdict: Verdict::Passed,
            phases: Vec::new(),
            contexts: Vec::new(),
            cleaned: None,
            certs: None,
            images: Vec::new(),
            containers: None,
            tests: None,
            junit: None,
            teardown: None,
            run_dir,
            bundle: None,
            seconds: 0.0,
        }
    }
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "e2e run of project {}", self.project)?;
        writeln!(f, "  {:<10} {:<11} {:>8}  note", "phase", "status", "time")?;
        for p in &self.phases {
            let status = format!("{:?}", p.status).to_lowercase();
            writeln!(
                f,
                "  {:<10} {:<11} {:>6.1} s  {}",
                p.phase.name(),
                status,
                p.seconds,
                p.note
            )?;
        }
        writeln!(f, "  {:<10} {:<11} {:>6.1} s", "total", "", self.seconds)?;
        if let Some(b) = &self.bundle {
            writeln!(f, "  bundle     {b}")?;
        }
        let verdict = match &self.verdict {
            Verdict::Passed => "passed".to_owned(),
            Verdict::TestsFailed(e) => format!("tests failed: {e}"),
            Verdict::OverBudget(e) => format!("over budget: {e}"),
            Verdict::BadInput(e) => format!("bad input: {e}"),
            Verdict::StackFailed(e) => format!("stack failed: {e}"),
            Verdict::Interrupted => "interrupted".to_owned(),
        };
        // The whole error is the caller's to print once; the table names it.
        write!(
            f,
            "  result     {}",
            verdict.lines().next().unwrap_or_default()
        )
    }
}
