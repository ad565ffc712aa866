//! nextest's JUnit report read back: the counts, the failed tests, each
//! test with its start and duration, a filterset of the failures, and the
//! shards' reports merged into one.

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};
use crate::run::Counts;

/// Counts the test cases of a nextest JUnit report, read with nextest's own
/// JUnit crate: each case is run; a failure or an error failed it; skipped
/// ones are counted apart. A truncated or malformed report is an error.
pub(crate) fn read_junit(path: &Utf8Path) -> Result<Counts> {
    let report = load_junit(path)?;
    let mut counts = Counts::default();
    for case in report.test_suites.iter().flat_map(|s| &s.test_cases) {
        counts.run += 1;
        match case.status {
            quick_junit::TestCaseStatus::Success { .. } => counts.passed += 1,
            quick_junit::TestCaseStatus::NonSuccess { .. } => counts.failed += 1,
            quick_junit::TestCaseStatus::Skipped { .. } => counts.skipped += 1,
        }
    }
    Ok(counts)
}

/// A JUnit report, read with nextest's own JUnit crate.
fn load_junit(path: &Utf8Path) -> Result<quick_junit::Report> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })?;
    quick_junit::Report::deserialize_from_str(&text).map_err(|e| Error::Junit {
        path: path.to_string(),
        detail: e.to_string(),
    })
}

/// A failed test, from the JUnit report: for CI annotations and summaries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `binary name` as nextest names it (`shop-e2e::shop items_are_listed`).
    pub name: String,
    /// The failure's message, else the first line of its output.
    pub message: String,
}

/// The failed tests of a nextest JUnit report.
pub fn failures(path: &Utf8Path) -> Result<Vec<Failure>> {
    let report = load_junit(path)?;
    let mut out = Vec::new();
    for (_, case) in failed_cases(&report) {
        let quick_junit::TestCaseStatus::NonSuccess {
            message,
            description,
            ..
        } = &case.status
        else {
            continue;
        };
        let message = message
            .as_ref()
            .map(|m| m.to_string())
            .filter(|m| !m.is_empty())
            .or_else(|| {
                description.as_ref().and_then(|d| {
                    d.to_string()
                        .lines()
                        .find(|l| !l.trim().is_empty())
                        .map(str::to_owned)
                })
            })
            .unwrap_or_else(|| "failed".to_owned());
        let class = case
            .classname
            .as_ref()
            .map_or_else(String::new, |c| c.to_string());
        out.push(Failure {
            name: format!("{class} {}", case.name.as_str()).trim().to_owned(),
            message,
        });
    }
    Ok(out)
}

/// One test of a JUnit report and when it ran.
#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    /// `binary test_name`.
    pub name: String,
    /// When it started (seconds since the epoch), when the report says.
    pub start: Option<f64>,
    pub seconds: f64,
    pub passed: bool,
}

/// Every test of a nextest JUnit report, with its start and duration.
pub fn cases(path: &Utf8Path) -> Result<Vec<Case>> {
    let report = load_junit(path)?;
    Ok(report
        .test_suites
        .iter()
        .flat_map(|suite| {
            suite.test_cases.iter().map(move |case| {
                let class = case
                    .classname
                    .as_ref()
                    .map_or_else(|| suite.name.to_string(), |c| c.to_string());
                Case {
                    name: format!("{class} {}", case.name.as_str()),
                    start: case.timestamp.map(|t| t.timestamp_millis() as f64 / 1000.0),
                    seconds: case.time.map_or(0.0, |d| d.as_secs_f64()),
                    passed: matches!(case.status, quick_junit::TestCaseStatus::Success { .. }),
                }
            })
        })
        .collect())
}

/// A filterset that selects exactly the tests a JUnit report says failed
/// (each by its binary and its full name), `None` when none failed: a
/// watch cycle's `--only-failed`.
pub fn failed_filterset(path: &Utf8Path) -> Result<Option<String>> {
    let report = load_junit(path)?;
    // A matcher's text ends at an unescaped `)` or `,`.
    let escape = |s: &str| {
        s.chars().fold(String::new(), |mut out, c| {
            if matches!(c, '\\' | ')' | ',') {
                out.push('\\');
            }
            out.push(c);
            out
        })
    };
    let failed: Vec<String> = failed_cases(&report)
        .map(|(suite, case)| {
            let binary = case
                .classname
                .as_ref()
                .map_or_else(|| suite.name.to_string(), |c| c.to_string());
            format!(
                "(binary_id(={}) & test(={}))",
                escape(&binary),
                escape(case.name.as_str())
            )
        })
        .collect();
    Ok((!failed.is_empty()).then(|| failed.join(" | ")))
}

/// The report's failed cases (a failure or an error), each with its suite.
fn failed_cases(
    report: &quick_junit::Report,
) -> impl Iterator<Item = (&quick_junit::TestSuite, &quick_junit::TestCase)> {
    report
        .test_suites
        .iter()
        .flat_map(|suite| suite.test_cases.iter().map(move |case| (suite, case)))
        .filter(|(_, case)| matches!(case.status, quick_junit::TestCaseStatus::NonSuccess { .. }))
}

/// Writes one JUnit report holding every test suite of `inputs` (the shards
/// of one suite), as nextest would have written a single run's.
pub fn merge_junit(inputs: &[Utf8PathBuf], out: &Utf8Path) -> Result<Counts> {
    let mut merged = quick_junit::Report::new("nextest-run");
    for path in inputs {
        merged.add_test_suites(load_junit(path)?.test_suites);
    }
    let text = merged.to_string().map_err(|e| Error::Junit {
        path: out.to_string(),
        detail: e.to_string(),
    })?;
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_string(),
            source,
        })?;
    }
    std::fs::write(out, text).map_err(|source| Error::Io {
        path: out.to_string(),
        source,
    })?;
    read_junit(out)
}
