//! Filtersets checked before anything starts: with nextest's own parser
//! (nextest-filtering, pinned to the installed cargo-nextest's version) against
//! the workspace's package graph, so `package(nope)` fails in a second instead
//! of after the stack has been built and started.

use std::collections::HashSet;

use camino::Utf8Path;
use guppy::graph::PackageGraph;
use nextest_filtering::{Filterset, FiltersetKind, KnownGroups, ParseContext};

use crate::error::{Error, Result};

/// The cargo-nextest release whose filterset parser this crate embeds.
pub const PARSER_FROM_NEXTEST: &str = "0.9.143";
/// The nextest-filtering version pinned in Cargo.toml.
pub const PARSER_VERSION: &str = "0.22.0";

/// The workspace as nextest sees it: its package graph and test groups.
#[derive(Debug)]
pub struct Workspace {
    graph: PackageGraph,
    groups: HashSet<String>,
    /// The `cargo metadata` output it was built from (nextest can be handed
    /// it instead of running cargo again: [`crate::Reuse`]).
    metadata: String,
}

impl Workspace {
    /// Builds the graph from `cargo metadata --format-version 1` output and
    /// reads the custom test groups of `.config/nextest.toml` (for `group()`).
    pub fn new(metadata_json: &str, nextest_toml: Option<&str>) -> Result<Workspace> {
        let graph =
            PackageGraph::from_json(metadata_json).map_err(|e| Error::Metadata(e.to_string()))?;
        let groups = match nextest_toml {
            Some(text) => test_groups(text)?,
            None => HashSet::new(),
        };
        Ok(Workspace {
            graph,
            groups,
            metadata: metadata_json.to_owned(),
        })
    }

    /// The `cargo metadata` JSON the graph was built from.
    pub fn metadata_json(&self) -> &str {
        &self.metadata
    }

    /// Runs `cargo metadata` in `root` and reads `root/.config/nextest.toml`.
    pub fn load(root: &Utf8Path) -> Result<Workspace> {
        let cmd = process::Cmd::cargo(["metadata", "--format-version", "1"]);
        let json = cmd
            .output(root)
            .map_err(|e| Error::Metadata(e.to_string()))?;
        let config = root.join(".config/nextest.toml");
        let toml = match std::fs::read_to_string(&config) {
            Ok(t) => Some(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(Error::Io {
                    path: config.to_string(),
                    source,
                });
            }
        };
        Workspace::new(&String::from_utf8_lossy(&json), toml.as_deref())
    }

    /// Every name must be a member of the workspace: `-p` of anything else
    /// fails nextest after the stack was built and started.
    pub fn check_packages(&self, packages: &[String]) -> Result<()> {
        let members: Vec<&str> = self.graph.workspace().iter().map(|p| p.name()).collect();
        check_members(&members, packages)
    }

    /// Parses and compiles `expr` as `cargo nextest run -E` would: unknown
    /// packages, bad regexes and unknown groups are errors, rendered as nextest
    /// renders them. `what` names where the expression came from.
    pub fn check(&self, expr: &str, what: &str) -> Result<()> {
        let cx = ParseContext::new(&self.graph);
        let groups = KnownGroups::Known {
            custom_groups: self.groups.clone(),
        };
        match Filterset::parse(expr.to_owned(), &cx, FiltersetKind::Test, &groups) {
            Ok(_) => Ok(()),
            Err(errors) => {
                let mut rendered = String::new();
                let handler = miette::GraphicalReportHandler::new_themed(
                    miette::GraphicalTheme::unicode_nocolor(),
                );
                for e in errors.errors {
                    let report = miette::Report::new(e).with_source_code(expr.to_owned());
                    // Rendering into a String cannot fail.
                    let _ = handler.render_report(&mut rendered, report.as_ref());
                }
                Err(Error::Filterset {
                    what: what.to_owned(),
                    expr: expr.to_owned(),
                    rendered,
                })
            }
        }
    }
}

/// The names under `[test-groups]` in a nextest config.
fn test_groups(text: &str) -> Result<HashSet<String>> {
    #[derive(serde::Deserialize)]
    struct Config {
        #[serde(default, rename = "test-groups")]
        test_groups: toml::Table,
    }
    let config: Config = toml::from_str(text).map_err(|e| Error::NextestConfig(e.to_string()))?;
    Ok(config.test_groups.keys().cloned().collect())
}

/// Whether the installed cargo-nextest is the one whose parser we embed: the
/// note to print when not, or `None` when they match.
pub fn version_note(nextest_version_output: &str) -> Option<String> {
    let installed = nextest_version_output.split_whitespace().nth(1)?;
    (installed != PARSER_FROM_NEXTEST).then(|| {
        format!(
            "filtersets were checked with nextest-filtering {PARSER_VERSION} (from cargo-nextest {PARSER_FROM_NEXTEST}), \
             but cargo-nextest {installed} runs the tests; if they disagree, nextest's own error is the final word"
        )
    })
}

/// Every name in `packages` must be one of `members` (the workspace's
/// packages): `-p` of anything else fails nextest after the stack started.
pub fn check_members(members: &[&str], packages: &[String]) -> Result<()> {
    let unknown: Vec<&str> = packages
        .iter()
        .map(String::as_str)
        .filter(|p| !members.contains(p))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let mut members = members.to_vec();
    members.sort_unstable();
    Err(Error::NotMembers {
        unknown: unknown.join(", "),
        members: members.join(", "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace() -> Workspace {
        let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        Workspace::load(&root).expect("this workspace's metadata")
    }

    #[test]
    fn filtersets_are_checked_against_the_package_graph_and_groups() {
        let ws = workspace();
        // (expression, None when valid, else a piece of the rendered error)
        let table: &[(&str, Option<&str>)] = &[
            ("package(e2e-tests)", None),
            ("package(e2e-tests) and test(/^tls_/)", None),
            ("all() - binary(docker_model)", None),
            (
                "binary(docker_nothing)",
                Some("didn't match any binary names"),
            ),
            ("group(docker)", None),
            // Parses as syntax; only compiling against the graph finds it.
            ("package(e2e-testz)", Some("didn't match any packages")),
            ("group(dokker)", Some("didn't match any test groups")),
            ("test(/[unclosed/)", Some("invalid regex")),
            ("test(a) and", Some("expected expression")),
            ("tset(a)", Some("expected expression")),
        ];
        let err = ws
            .check_packages(&["e2e-tests".into(), "shop-e2e".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`shop-e2e` is not a member of the workspace (members:"),
            "{err}"
        );
        assert!(err.contains("e2e-tests"), "{err}");
        ws.check_packages(&["e2e-tests".into(), "cargo-e2e".into()])
            .unwrap();
        for &(expr, want) in table {
            let got = ws.check(expr, "-E");
            match (want, got) {
                (None, Ok(())) => {}
                (Some(piece), Err(e)) => {
                    let text = e.to_string();
                    assert!(text.contains(piece), "{expr}: {text}");
                    assert!(
                        text.starts_with(&format!("-E: invalid filterset `{expr}`")),
                        "{text}"
                    );
                }
                (want, got) => panic!("{expr}: wanted {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn the_failed_tests_of_a_report_become_a_filterset_nextest_parses() {
        let tmp = tempfile::tempdir().unwrap();
        let path = Utf8Path::from_path(tmp.path()).unwrap().join("junit.xml");
        // A name with the characters that end a matcher's text.
        let xml = r#"<testsuites name="nextest-run" tests="3" failures="2" errors="0">
  <testsuite name="e2e-tests::gateway" tests="3" errors="0" failures="2">
    <testcase name="ok" classname="e2e-tests::gateway" time="0.01"/>
    <testcase name="tls::refused" classname="e2e-tests::gateway" time="0.02"><failure>no</failure></testcase>
    <testcase name="case(a,b)\x" classname="e2e-tests::gateway" time="0.02"><failure>no</failure></testcase>
  </testsuite>
</testsuites>"#;
        std::fs::write(&path, xml).unwrap();
        let f = crate::junit::failed_filterset(&path).unwrap().unwrap();
        assert_eq!(
            f,
            r"(binary_id(=e2e-tests::gateway) & test(=tls::refused)) | (binary_id(=e2e-tests::gateway) & test(=case(a\,b\)\\x))"
        );
        workspace().check(&f, "-E").unwrap();
        std::fs::write(&path, xml.replace("<failure>no</failure>", "")).unwrap();
        assert_eq!(crate::junit::failed_filterset(&path).unwrap(), None);
    }

    #[test]
    fn a_different_nextest_gets_a_note() {
        assert_eq!(
            version_note("cargo-nextest 0.9.143 (60fa45f63 2026-08-04)"),
            None
        );
        let note = version_note("cargo-nextest 0.9.150 (abc 2026-12-01)").unwrap();
        assert!(
            note.contains("cargo-nextest 0.9.150 runs the tests"),
            "{note}"
        );
    }
}
