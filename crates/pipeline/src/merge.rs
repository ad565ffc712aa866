//! `report merge`: N shards' reports (one run each, `-- --partition slice:K/N`
//! on N machines) read as one: the worst verdict, the test counts added up,
//! the slowest phases, and every failure, with the shard it came from.

use camino::{Utf8Path, Utf8PathBuf};

use crate::report::{Failure, RunReport, Verdict};

/// One shard, as its report says.
#[derive(Debug, Clone)]
pub struct Shard {
    pub report_path: Utf8PathBuf,
    pub report: RunReport,
    /// Its JUnit report, when one was found.
    pub junit: Option<Utf8PathBuf>,
}

impl Shard {
    /// Reads a shard's report. Its JUnit report is the one the report names
    /// when that file exists (same machine), else a `junit.xml` beside the
    /// report (artifacts gathered from CI machines).
    pub fn read(path: &Utf8Path) -> crate::Result<Shard> {
        let report = RunReport::read(path)?;
        let beside = path
            .parent()
            .map(|d| d.join("junit.xml"))
            .filter(|j| j.exists());
        let junit = report.junit.clone().filter(|j| j.exists()).or(beside);
        Ok(Shard {
            report_path: path.to_owned(),
            report,
            junit,
        })
    }
}

/// How bad a verdict is, for the merged one: the worst shard's.
fn severity(v: &Verdict) -> u8 {
    match v {
        Verdict::Passed => 0,
        Verdict::Failed(Failure::Tests(_) | Failure::OverBudget(_)) => 1,
        Verdict::Failed(Failure::BadInput(_)) => 2,
        Verdict::Failed(Failure::Stack(_)) => 3,
        Verdict::Interrupted => 4,
    }
}

/// The shards read as one.
#[derive(Debug, Clone)]
pub struct Merged {
    pub shards: Vec<Shard>,
    pub verdict: Verdict,
    pub tests: test_runner::Counts,
    /// `(phase, shard index, seconds)`, the slowest first (the slowest
    /// shard's time per phase).
    pub slowest: Vec<(String, usize, f64)>,
    /// `(shard index, failed test)`.
    pub failures: Vec<(usize, test_runner::Failure)>,
}

pub fn merge(shards: Vec<Shard>) -> Merged {
    let mut tests = test_runner::Counts::default();
    let mut verdict = Verdict::Passed;
    let mut slowest: Vec<(String, usize, f64)> = Vec::new();
    let mut failures = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        let r = &s.report;
        if let Some(c) = r.tests {
            tests.run += c.run;
            tests.passed += c.passed;
            tests.failed += c.failed;
            tests.skipped += c.skipped;
        }
        if severity(&r.verdict) > severity(&verdict) {
            verdict = match &r.verdict {
                Verdict::Failed(f) => {
                    Verdict::Failed(f.clone().map(|e| format!("{}: {e}", r.project)))
                }
                v => v.clone(),
            };
        }
        for p in &r.phases {
            let name = p.phase.name().to_owned();
            match slowest.iter_mut().find(|(n, _, _)| *n == name) {
                Some(slot) if slot.2 >= p.seconds => {}
                Some(slot) => *slot = (name, i, p.seconds),
                None => slowest.push((name, i, p.seconds)),
            }
        }
        if let Some(j) = &s.junit {
            for f in test_runner::failures(j).unwrap_or_default() {
                failures.push((i, f));
            }
        }
    }
    slowest.sort_by(|a, b| b.2.total_cmp(&a.2));
    Merged {
        shards,
        verdict,
        tests,
        slowest,
        failures,
    }
}

impl std::fmt::Display for Merged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "e2e shards merged: {} reports", self.shards.len())?;
        writeln!(
            f,
            "  {:<5} {:<28} {:<14} {:<34} {:>8}",
            "shard", "project", "result", "tests", "time"
        )?;
        for (i, s) in self.shards.iter().enumerate() {
            let r = &s.report;
            writeln!(
                f,
                "  {:<5} {:<28} {:<14} {:<34} {:>6.1} s",
                i + 1,
                r.project,
                verdict_word(&r.verdict),
                r.tests
                    .map_or_else(|| "none ran".to_owned(), |c| c.to_string()),
                r.seconds
            )?;
        }
        writeln!(
            f,
            "  {:<5} {:<28} {:<14} {}",
            "all",
            "",
            verdict_word(&self.verdict),
            self.tests
        )?;
        let slow: Vec<String> = self
            .slowest
            .iter()
            .take(4)
            .map(|(p, i, s)| format!("{p} {s:.1} s (shard {})", i + 1))
            .collect();
        writeln!(f, "  slowest phases: {}", slow.join(", "))?;
        for (i, fail) in &self.failures {
            writeln!(
                f,
                "  FAILED (shard {}): {}: {}",
                i + 1,
                fail.name,
                fail.message
            )?;
        }
        for (i, s) in self.shards.iter().enumerate() {
            if s.junit.is_none() && s.report.tests.is_some() {
                writeln!(
                    f,
                    "  note: shard {} ({}): no JUnit report found (neither {} nor junit.xml beside it)",
                    i + 1,
                    s.report_path,
                    s.report.junit.as_ref().map_or("-", |j| j.as_str())
                )?;
            }
        }
        Ok(())
    }
}

fn verdict_word(v: &Verdict) -> &'static str {
    match v {
        Verdict::Passed => "passed",
        Verdict::Failed(f) => f.kind(),
        Verdict::Interrupted => "interrupted",
    }
}
