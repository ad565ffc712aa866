//! One `cargo nextest run`: the command as a value, run in its own process
//! group with its output on our terminal, and its results read back from the
//! JUnit report nextest writes.

use camino::{Utf8Path, Utf8PathBuf};
use nextest_metadata::NextestExitCode;
use process::{Cmd, GroupOptions};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::junit::read_junit;

/// What to run.
#[derive(Debug, Clone, Default)]
pub struct Invocation {
    /// The nextest profile (its `default-filter` selects the E2E tests).
    pub profile: String,
    /// The packages to build and list; empty means `--workspace`. nextest
    /// builds every test binary of its scope before filtering, so naming the
    /// E2E package spares building (and relinking) everything else.
    pub packages: Vec<String>,
    /// `-E` expressions (nextest ORs several).
    pub filtersets: Vec<String>,
    /// Passed through after ours (e.g. `--partition count:1/2`, `--no-capture`).
    pub args: Vec<String>,
    /// The environment the tests see (addresses, CA path).
    pub env: Vec<(String, String)>,
    /// nextest's `--tool-config-file`: the profile the tool supplies, below
    /// the workspace's own config (see [`write_tool_config`]).
    pub tool_config: Option<Utf8PathBuf>,
    /// Test binaries built earlier: nextest runs them without asking cargo
    /// to build again (its reuse-build options).
    pub reuse: Option<Reuse>,
    /// Test binaries from a nextest archive (another machine's build).
    pub archive: Option<Archive>,
}

/// A nextest archive (`cargo nextest archive`) and the checkout its
/// workspace paths map to here (`--workspace-remap`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub file: Utf8PathBuf,
    pub remap: Utf8PathBuf,
}

/// Options of `cargo nextest run` that only shape the run (which tests, how
/// they report): with these, binaries built earlier can still be reused.
/// Any other option may be one of cargo's own (`--features`, `--release`),
/// which nextest refuses beside reused binaries.
const RUN_OPTIONS_WITH_VALUE: &[&str] = &[
    "--partition",
    "--retries",
    "--test-threads",
    "-j",
    "--run-ignored",
    "--max-fail",
    "--status-level",
    "--final-status-level",
    "--failure-output",
    "--success-output",
    "--color",
    "--no-tests",
];
const RUN_FLAGS: &[&str] = &[
    "--no-capture",
    "--nocapture",
    "--no-fail-fast",
    "--fail-fast",
    "--hide-progress-bar",
];

/// Whether a run with these pass-through arguments can reuse prebuilt test
/// binaries: only run options and test-name filters (and anything after a
/// second `--`, which goes to the test binaries).
pub fn reusable_with(args: &[String]) -> bool {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            return true;
        }
        if !a.starts_with('-') {
            continue;
        }
        let name = a.split_once('=').map_or(a.as_str(), |(n, _)| n);
        if RUN_FLAGS.contains(&name) {
            continue;
        }
        if RUN_OPTIONS_WITH_VALUE.contains(&name) {
            if !a.contains('=') {
                it.next();
            }
            continue;
        }
        return false;
    }
    true
}

/// What nextest needs to run binaries built earlier: the list
/// [`Invocation::list_command`] printed and the workspace's `cargo metadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reuse {
    pub binaries_metadata: Utf8PathBuf,
    pub cargo_metadata: Utf8PathBuf,
}

/// The tool name under which the profile is handed to nextest.
pub const TOOL: &str = "cargo-e2e";

/// Writes the nextest config the tool supplies: `profile` with a
/// default-filter selecting `packages` (every test when none) and a JUnit
/// report to count from, and the store in `store_parent/nextest` (one per run,
/// so concurrent runs do not delete each other's report; nextest puts it
/// under the workspace root's `target/` otherwise, even when cargo builds
/// elsewhere). nextest ranks it below
/// the workspace's `.config/nextest.toml`, so a profile the workspace defines
/// keeps its own settings; one it lacks still exists. Written only when it changed.
pub fn write_tool_config(
    path: &Utf8Path,
    store_parent: &Utf8Path,
    profile: &str,
    packages: &[String],
) -> Result<()> {
    let filter = if packages.is_empty() {
        "all()".to_owned()
    } else {
        packages
            .iter()
            .map(|p| format!("package(={p})"))
            .collect::<Vec<_>>()
            .join(" | ")
    };
    let store = store_parent.join("nextest").to_string();
    let text = format!(
        "# Written by cargo-e2e: the `{profile}` profile for a workspace whose\n\
         # .config/nextest.toml does not define it; the workspace's own keys win.\n\
         [store]\n\
         dir = {store:?}\n\n\
         [profile.{profile}]\n\
         default-filter = {filter:?}\n\
         fail-fast = false\n\n\
         [profile.{profile}.junit]\n\
         path = \"junit.xml\"\n"
    );
    let io = |source| Error::Io {
        path: path.to_string(),
        source,
    };
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(path, text).map_err(io)
}

/// How the run went, by nextest's exit code and its JUnit report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    Passed,
    Failed,
    /// The filterset and profile selected nothing.
    NoTests,
    /// nextest itself failed (build error, bad arguments): its exit code.
    NextestError(Option<i32>),
}

/// Test counts from the JUnit report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    pub run: usize,
    pub passed: usize,
    pub failed: usize,
    /// Tests in the report that nextest marked skipped.
    pub skipped: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub verdict: Verdict,
    pub counts: Option<Counts>,
    pub junit: Option<Utf8PathBuf>,
}

impl Invocation {
    /// `cargo nextest run (--workspace | -p PKG... | --binaries-metadata B
    /// --cargo-metadata M) --profile P [-E F]... ARGS...`, with the environment.
    pub fn command(&self) -> Cmd {
        self.nextest("run", &[])
    }

    fn nextest(&self, verb: &str, extra: &[&str]) -> Cmd {
        let scope: Vec<String> = if let Some(a) = &self.archive {
            vec![
                "--archive-file".into(),
                a.file.to_string(),
                "--workspace-remap".into(),
                a.remap.to_string(),
            ]
        } else if let Some(r) = &self.reuse {
            vec![
                "--binaries-metadata".into(),
                r.binaries_metadata.to_string(),
                "--cargo-metadata".into(),
                r.cargo_metadata.to_string(),
            ]
        } else if self.packages.is_empty() {
            vec!["--workspace".into()]
        } else {
            self.packages
                .iter()
                .flat_map(|p| ["-p".to_owned(), p.clone()])
                .collect()
        };
        let filters = self
            .filtersets
            .iter()
            .flat_map(|f| ["-E".to_owned(), f.clone()]);
        let tool = self
            .tool_config
            .iter()
            .flat_map(|t| ["--tool-config-file".to_owned(), format!("{TOOL}:{t}")]);
        let args = ["nextest", verb]
            .map(str::to_owned)
            .into_iter()
            .chain(tool)
            .chain(scope)
            .chain(["--profile".to_owned(), self.profile.clone()])
            .chain(filters)
            .chain(self.args.iter().cloned())
            .chain(extra.iter().map(|a| (*a).to_owned()));
        Cmd::cargo(args).envs(&self.env)
    }

    /// `cargo nextest list --list-type binaries-only --message-format json`
    /// of the same scope, profile and tool config: it builds exactly the test
    /// binaries [`Invocation::run`] will run, so they can be built while the
    /// stack starts, and prints their list for [`Reuse`]. Pass-through
    /// arguments stay out (`list` refuses run options such as `--no-capture`).
    pub fn list_command(&self) -> Cmd {
        let mut cmd = Invocation {
            filtersets: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            reuse: None,
            ..self.clone()
        }
        .nextest(
            "list",
            &["--list-type", "binaries-only", "--message-format", "json"],
        );
        cmd.env.clear();
        cmd
    }

    /// `cargo nextest archive --archive-file FILE` of the same scope and
    /// profile: the test binaries built (or found built) and packed for
    /// other machines.
    pub fn archive_command(&self, file: &Utf8Path) -> Cmd {
        let mut cmd = Invocation {
            filtersets: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            reuse: None,
            archive: None,
            ..self.clone()
        }
        .nextest("archive", &["--archive-file", file.as_str()]);
        cmd.env.clear();
        cmd
    }

    /// Runs with output on our terminal; interruptible by the first Ctrl-C.
    /// `store_parent` is where nextest writes `nextest/<profile>/junit.xml`.
    pub fn run(&self, root: &Utf8Path, store_parent: &Utf8Path) -> Result<Outcome> {
        let junit = store_parent
            .join("nextest")
            .join(&self.profile)
            .join("junit.xml");
        // A report left by an earlier run must not be read as this run's.
        let _ = std::fs::remove_file(&junit);
        let out = self.command().run_group(
            root,
            GroupOptions {
                capture: false,
                interruptible: true,
            },
        )?;
        let verdict = match out.code {
            Some(NextestExitCode::OK) => Verdict::Passed,
            Some(NextestExitCode::TEST_RUN_FAILED) => Verdict::Failed,
            Some(NextestExitCode::NO_TESTS_RUN) => Verdict::NoTests,
            code => Verdict::NextestError(code),
        };
        let counts = junit.exists().then(|| read_junit(&junit)).transpose()?;
        Ok(Outcome {
            verdict,
            counts,
            junit: junit.exists().then_some(junit),
        })
    }
}

impl std::fmt::Display for Counts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::junit::{Failure, failures};

    #[test]
    fn junit_reports_are_counted() {
        let tmp = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(tmp.path()).unwrap().join("junit.xml");
        // The shape nextest writes: a passing, a failing, a skipped case.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="3" failures="1" errors="0">
  <testsuite name="shop-e2e::shop" tests="3" disabled="0" errors="0" failures="1">
    <testcase name="a" classname="shop-e2e::shop" timestamp="2026-11-23T17:00:00Z" time="0.01"/>
    <testcase name="b" classname="shop-e2e::shop" time="0.02">
      <failure type="test failure">assertion failed</failure>
      <system-out>out</system-out>
    </testcase>
    <testcase name="c" classname="shop-e2e::shop" time="0"><skipped/></testcase>
  </testsuite>
</testsuites>"#;
        std::fs::write(&path, xml).unwrap();
        assert_eq!(
            read_junit(&path).unwrap(),
            Counts {
                run: 3,
                passed: 1,
                failed: 1,
                skipped: 1
            }
        );
        let failed = failures(&path).unwrap();
        assert_eq!(
            failed,
            [Failure {
                name: "shop-e2e::shop b".into(),
                message: "assertion failed".into()
            }]
        );
        std::fs::write(&path, "<testsuites><testcase>").unwrap();
        assert!(read_junit(&path).is_err(), "a truncated report is an error");
        write_tool_config(
            &path,
            Utf8Path::new("/t"),
            "e2e",
            &["shop-e2e".into(), "more".into()],
        )
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("dir = \"/t/nextest\""), "{text}");
        assert!(
            text.contains("default-filter = \"package(=shop-e2e) | package(=more)\""),
            "{text}"
        );
    }

    #[test]
    fn only_run_options_keep_the_prebuilt_binaries() {
        let args = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(reusable_with(&[]));
        assert!(reusable_with(&args(&["--partition", "slice:1/3"])));
        assert!(reusable_with(&args(&[
            "--partition=slice:2/3",
            "--no-capture",
            "tls"
        ])));
        assert!(reusable_with(&args(&["-j", "4", "--retries", "2"])));
        assert!(
            reusable_with(&args(&["--", "--features", "x"])),
            "after --: the test binaries'"
        );
        assert!(!reusable_with(&args(&["--features", "x"])));
        assert!(!reusable_with(&args(&["--release"])));
        assert!(!reusable_with(&args(&[
            "--partition",
            "slice:1/2",
            "--target",
            "x"
        ])));
    }

    #[test]
    fn the_command_line_is_exact() {
        let inv = Invocation {
            profile: "e2e".into(),
            packages: vec!["e2e-tests".into()],
            filtersets: vec!["test(/tls/)".into()],
            args: vec!["--partition".into(), "count:1/2".into()],
            env: vec![("E2E_CA_CERT".into(), "/c/ca.crt".into())],
            tool_config: Some("/t/tool.toml".into()),
            reuse: None,
            archive: None,
        };
        let cmd = inv.command();
        assert_eq!(
            cmd.to_string(),
            "cargo nextest run --tool-config-file cargo-e2e:/t/tool.toml -p e2e-tests --profile e2e -E 'test(/tls/)' --partition count:1/2"
        );
        assert_eq!(
            cmd.env,
            [("E2E_CA_CERT".to_owned(), "/c/ca.crt".to_owned())]
        );
        assert!(
            cmd.env_remove.iter().any(|v| v == "CARGO_MANIFEST_DIR"),
            "nested cargo drops cargo run's variables"
        );
        assert_eq!(
            inv.list_command().to_string(),
            "cargo nextest list --tool-config-file cargo-e2e:/t/tool.toml -p e2e-tests --profile e2e --list-type binaries-only --message-format json"
        );
        assert!(inv.list_command().env.is_empty());
        let archived = Invocation {
            archive: Some(Archive {
                file: "/a/tests.tar.zst".into(),
                remap: "/w".into(),
            }),
            ..inv.clone()
        };
        assert_eq!(
            archived.command().to_string(),
            "cargo nextest run --tool-config-file cargo-e2e:/t/tool.toml --archive-file /a/tests.tar.zst --workspace-remap /w --profile e2e -E 'test(/tls/)' --partition count:1/2"
        );
        assert_eq!(
            inv.archive_command(Utf8Path::new("/a/t.tar.zst"))
                .to_string(),
            "cargo nextest archive --tool-config-file cargo-e2e:/t/tool.toml -p e2e-tests --profile e2e --archive-file /a/t.tar.zst"
        );
        let reused = Invocation {
            args: Vec::new(),
            reuse: Some(Reuse {
                binaries_metadata: "/r/binaries.json".into(),
                cargo_metadata: "/r/cargo-metadata.json".into(),
            }),
            ..inv.clone()
        };
        assert_eq!(
            reused.command().to_string(),
            "cargo nextest run --tool-config-file cargo-e2e:/t/tool.toml --binaries-metadata /r/binaries.json --cargo-metadata /r/cargo-metadata.json --profile e2e -E 'test(/tls/)'"
        );
        let workspace = Invocation {
            profile: "e2e".into(),
            ..Invocation::default()
        };
        assert_eq!(
            workspace.command().to_string(),
            "cargo nextest run --workspace --profile e2e"
        );
    }
}
