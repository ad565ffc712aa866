//! CI conventions, for GitHub Actions and GitLab CI (found by their own
//! variables): a fold per phase in the job log, an error annotation per
//! failed phase and per failed test (GitHub; capped), and the run's table
//! on the job's summary page (GitHub's `$GITHUB_STEP_SUMMARY`).

use pipeline::report::{PhaseReport, Status};
use pipeline::{Phase, RunReport};

/// At most this many failed tests get an annotation each; the rest are counted.
pub const MAX_TEST_ANNOTATIONS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CiHost {
    GitHub,
    GitLab,
}

impl CiHost {
    /// From `GITHUB_ACTIONS` / `GITLAB_CI`, as the runners set them.
    pub fn detect(var: impl Fn(&str) -> Option<String>) -> Option<CiHost> {
        let set = |name: &str| var(name).is_some_and(|v| v == "true");
        if set("GITHUB_ACTIONS") {
            Some(CiHost::GitHub)
        } else if set("GITLAB_CI") {
            Some(CiHost::GitLab)
        } else {
            None
        }
    }

    /// The line that opens a phase's fold.
    pub fn fold_start(self, phase: Phase, unix: u64) -> String {
        match self {
            CiHost::GitHub => format!("::group::e2e {}", phase.name()),
            CiHost::GitLab => format!(
                "\x1b[0Ksection_start:{unix}:e2e_{}[collapsed=true]\r\x1b[0Ke2e {}",
                phase.name(),
                phase.name()
            ),
        }
    }

    /// The line that closes it.
    pub fn fold_end(self, phase: Phase, unix: u64) -> String {
        match self {
            CiHost::GitHub => "::endgroup::".to_owned(),
            CiHost::GitLab => format!("\x1b[0Ksection_end:{unix}:e2e_{}\r\x1b[0K", phase.name()),
        }
    }

    /// An error annotation (GitHub only: GitLab has none for logs).
    pub fn error(self, title: &str, message: &str) -> Option<String> {
        match self {
            CiHost::GitHub => Some(format!(
                "::error title={}::{}",
                escape_property(title),
                escape_data(message)
            )),
            CiHost::GitLab => None,
        }
    }

    /// The annotation for a phase that failed.
    pub fn phase_error(self, r: &PhaseReport) -> Option<String> {
        (r.status == Status::Failed)
            .then(|| self.error(&format!("e2e {} failed", r.phase.name()), &r.note))
            .flatten()
    }
}

/// GitHub's escaping of a command's message.
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// GitHub's escaping of a command's property value.
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// The run's table as markdown, for a CI summary page.
pub fn summary_markdown(report: &RunReport, failed_tests: &[test_runner::Failure]) -> String {
    let mut md = format!(
        "### e2e run of project `{}`: {}\n\n| phase | status | time | note |\n|---|---|---:|---|\n",
        report.project,
        if report.verdict == pipeline::Verdict::Passed {
            "passed"
        } else {
            "FAILED"
        }
    );
    for p in &report.phases {
        md.push_str(&format!(
            "| {} | {} | {:.1} s | {} |\n",
            p.phase.name(),
            format!("{:?}", p.status).to_lowercase(),
            p.seconds,
            p.note.replace('|', "\\|")
        ));
    }
    md.push_str(&format!("| total | | {:.1} s | |\n", report.seconds));
    if !failed_tests.is_empty() {
        md.push_str("\nFailed tests:\n\n");
        for f in failed_tests {
            md.push_str(&format!(
                "- `{}`: {}\n",
                f.name,
                f.message.replace('\n', " ")
            ));
        }
    }
    if let Some(b) = &report.bundle {
        md.push_str(&format!("\nFailure bundle: `{b}`\n"));
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_ci_is_found_by_its_own_variable() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert_eq!(
            CiHost::detect(env(&[("GITHUB_ACTIONS", "true")])),
            Some(CiHost::GitHub)
        );
        assert_eq!(
            CiHost::detect(env(&[("GITLAB_CI", "true"), ("CI", "true")])),
            Some(CiHost::GitLab)
        );
        assert_eq!(CiHost::detect(env(&[("CI", "true")])), None);
    }

    #[test]
    fn folds_and_annotations_are_in_each_ci_s_own_syntax() {
        let gh = CiHost::GitHub;
        assert_eq!(gh.fold_start(Phase::Up, 0), "::group::e2e up");
        assert_eq!(gh.fold_end(Phase::Up, 0), "::endgroup::");
        assert_eq!(
            gh.error("e2e up failed: a, b", "service db failed\n50% done")
                .unwrap(),
            "::error title=e2e up failed%3A a%2C b::service db failed%0A50%25 done"
        );
        let gl = CiHost::GitLab;
        assert_eq!(
            gl.fold_start(Phase::Test, 1700000000),
            "\x1b[0Ksection_start:1700000000:e2e_test[collapsed=true]\r\x1b[0Ke2e test"
        );
        assert_eq!(
            gl.fold_end(Phase::Test, 1700000001),
            "\x1b[0Ksection_end:1700000001:e2e_test\r\x1b[0K"
        );
        assert_eq!(gl.error("t", "m"), None);
    }
}
