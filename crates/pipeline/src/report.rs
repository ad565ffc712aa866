//! What a run did, phase by phase: the table printed at the end and the JSON
//! written to `target/e2e/`. The JSON is a contract (the bench, tests and CI
//! steps read it back through these types): its `schema_version` changes when
//! a field changes meaning or goes away.

use camino::Utf8PathBuf;
use compose::{ImageBuild, Leftovers, Policy, UpSummary};
use serde::{Deserialize, Serialize};

/// The phases, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Preflight,
    Clean,
    Certs,
    Build,
    Up,
    /// A watch cycle's changes applied to running containers (`develop.watch`,
    /// bind mounts), and those services judged ready again.
    Sync,
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
            Phase::Sync => "sync",
            Phase::Test => "test",
            Phase::Teardown => "teardown",
        }
    }
}

/// How the run ended; each way maps to one exit code (`cli/src/exit.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "VerdictJson", from = "VerdictJson")]
pub enum Verdict {
    Passed,
    Failed(Failure),
    Interrupted,
}

/// Why a run failed: the one list of failure kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Tests failed, or none ran.
    Tests(String),
    /// A build context sends more than `context.budget`.
    OverBudget(String),
    /// Bad config, flag or filterset, found before anything ran.
    BadInput(String),
    /// No engine, a failed build, a service that never got ready.
    Stack(String),
}

impl Failure {
    /// What went wrong, in full.
    pub fn detail(&self) -> &str {
        match self {
            Failure::Tests(d)
            | Failure::OverBudget(d)
            | Failure::BadInput(d)
            | Failure::Stack(d) => d,
        }
    }

    /// The kind, in words: `tests failed`, `over budget`, `bad input`, `stack failed`.
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Tests(_) => "tests failed",
            Failure::OverBudget(_) => "over budget",
            Failure::BadInput(_) => "bad input",
            Failure::Stack(_) => "stack failed",
        }
    }

    /// The same kind with its detail rewritten.
    pub fn map(self, f: impl FnOnce(String) -> String) -> Failure {
        match self {
            Failure::Tests(d) => Failure::Tests(f(d)),
            Failure::OverBudget(d) => Failure::OverBudget(f(d)),
            Failure::BadInput(d) => Failure::BadInput(f(d)),
            Failure::Stack(d) => Failure::Stack(f(d)),
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Verdict::Passed => f.write_str("passed"),
            Verdict::Failed(failure) => write!(f, "{}: {}", failure.kind(), failure.detail()),
            Verdict::Interrupted => f.write_str("interrupted"),
        }
    }
}

/// The verdict as schema 1 writes it: `{"kind": "tests-failed", "detail": ...}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "kebab-case")]
enum VerdictJson {
    Passed,
    TestsFailed(String),
    OverBudget(String),
    BadInput(String),
    StackFailed(String),
    Interrupted,
}

impl From<Verdict> for VerdictJson {
    fn from(v: Verdict) -> VerdictJson {
        match v {
            Verdict::Passed => VerdictJson::Passed,
            Verdict::Failed(Failure::Tests(d)) => VerdictJson::TestsFailed(d),
            Verdict::Failed(Failure::OverBudget(d)) => VerdictJson::OverBudget(d),
            Verdict::Failed(Failure::BadInput(d)) => VerdictJson::BadInput(d),
            Verdict::Failed(Failure::Stack(d)) => VerdictJson::StackFailed(d),
            Verdict::Interrupted => VerdictJson::Interrupted,
        }
    }
}

impl From<VerdictJson> for Verdict {
    fn from(v: VerdictJson) -> Verdict {
        match v {
            VerdictJson::Passed => Verdict::Passed,
            VerdictJson::TestsFailed(d) => Verdict::Failed(Failure::Tests(d)),
            VerdictJson::OverBudget(d) => Verdict::Failed(Failure::OverBudget(d)),
            VerdictJson::BadInput(d) => Verdict::Failed(Failure::BadInput(d)),
            VerdictJson::StackFailed(d) => Verdict::Failed(Failure::Stack(d)),
            VerdictJson::Interrupted => Verdict::Interrupted,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Failed,
    Skipped,
    Interrupted,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PhaseReport {
    pub phase: Phase,
    pub status: Status,
    pub seconds: f64,
    pub note: String,
    /// When it started (seconds since the epoch).
    #[serde(default)]
    pub started_at: f64,
}

/// One build context as the build phase measured it, after staging.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContextSize {
    pub service: String,
    pub context: Utf8PathBuf,
    /// What the build transfers: only what its Dockerfile names, after the ignore file.
    pub sent_files: u64,
    pub sent_bytes: u64,
    /// The engine's own count of a first transfer of it.
    #[serde(default)]
    pub wire_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Cleaned {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CertsDone {
    pub action: certs::Action,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeardownDone {
    pub policy: Policy,
    /// Seconds each service took to stop (the running ones; `keep`: none).
    #[serde(default)]
    pub stop_s: std::collections::BTreeMap<String, f64>,
    /// What the engine still holds for the project afterwards.
    pub leftovers: Option<Leftovers>,
    pub note: String,
}

/// The report format: bumped when a field changes meaning or goes away
/// (new fields keep it).
pub const SCHEMA_VERSION: u32 = 1;

/// Everything a run did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    pub schema_version: u32,
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
    /// Earlier run folders removed by the retention (`runs.keep`, `runs.max_age_days`).
    #[serde(default)]
    pub pruned_runs: usize,
    /// What keeping the disk budgets did after the run (`disk.build_cache`, `disk.images`).
    #[serde(default)]
    pub disk: Vec<String>,
    /// Each service's whole log, saved before teardown removed anything
    /// (`<run folder>/logs/<service>.log`).
    #[serde(default)]
    pub logs: Vec<Utf8PathBuf>,
    /// The run as a trace (`trace.json`: Perfetto, `chrome://tracing`, or
    /// `cargo e2e report trace` for an SVG).
    #[serde(default)]
    pub trace: Option<Utf8PathBuf>,
}

impl RunReport {
    /// Reads a report written by [`Serialize`], refusing another schema.
    pub fn read(path: &camino::Utf8Path) -> crate::Result<RunReport> {
        let text = std::fs::read_to_string(path).map_err(crate::Error::io(path))?;
        let report: RunReport = serde_json::from_str(&text)
            .map_err(|e| crate::Error::BadInput(format!("{path}: not a run report: {e}")))?;
        if report.schema_version != SCHEMA_VERSION {
            return Err(crate::Error::BadInput(format!(
                "{path}: report schema {} (this tool reads {SCHEMA_VERSION})",
                report.schema_version
            )));
        }
        Ok(report)
    }

    /// Seconds per phase, in the order they ran.
    pub fn phase_seconds(&self) -> Vec<(String, f64)> {
        self.phases
            .iter()
            .map(|p| (p.phase.name().to_owned(), p.seconds))
            .collect()
    }

    pub fn new(project: &str, run_dir: Utf8PathBuf) -> RunReport {
        RunReport {
            schema_version: SCHEMA_VERSION,
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
            pruned_runs: 0,
            disk: Vec::new(),
            logs: Vec::new(),
            trace: None,
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
        if let Some(dir) = self.logs.first().and_then(|l| l.parent()) {
            let names: Vec<&str> = self.logs.iter().filter_map(|l| l.file_name()).collect();
            writeln!(f, "  logs       {dir}/ ({})", names.join(", "))?;
        }
        if let Some(b) = &self.bundle {
            writeln!(f, "  bundle     {b}")?;
        }
        if let Some(t) = &self.trace {
            writeln!(f, "  trace      {t}")?;
        }
        let verdict = self.verdict.to_string();
        // The whole error is the caller's to print once; the table names it.
        write!(
            f,
            "  result     {}",
            verdict.lines().next().unwrap_or_default()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_back_through_its_type() {
        let mut r = RunReport::new("p", "/t/e2e/runs/1".into());
        r.phases.push(PhaseReport {
            phase: Phase::Up,
            status: Status::Ok,
            seconds: 1.5,
            started_at: 0.0,
            note: "containers: 1 created".into(),
        });
        r.verdict = Verdict::Failed(Failure::Tests("1 failed".into()));
        let tmp = tempfile::tempdir().unwrap();
        let path = camino::Utf8Path::from_path(tmp.path())
            .unwrap()
            .join("report.json");
        std::fs::write(&path, serde_json::to_string(&r).unwrap()).unwrap();
        let back = RunReport::read(&path).unwrap();
        assert_eq!(back.verdict, r.verdict);
        assert_eq!(back.phase_seconds(), [("up".to_owned(), 1.5)]);
        let newer = serde_json::to_string(&RunReport {
            schema_version: SCHEMA_VERSION + 1,
            ..r
        })
        .unwrap();
        std::fs::write(&path, newer).unwrap();
        let err = RunReport::read(&path).unwrap_err().to_string();
        assert!(err.contains("report schema 2 (this tool reads 1)"), "{err}");
        // Schema 1's verdict, as earlier versions wrote it.
        let json = serde_json::to_value(&back.verdict).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "tests-failed", "detail": "1 failed"})
        );
    }
}
