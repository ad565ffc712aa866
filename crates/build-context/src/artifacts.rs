//! What counts as an artifact, in one table: the ignore line the report
//! suggests for it, and whether `clean` deletes it by default. Only outputs
//! that a test run writes again are deleted by default (coverage `.out`,
//! `.test` binaries, result folders); caches and `.git` are only suggested.

/// One kind of artifact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Artifact {
    pub shape: Shape,
    /// Deleted by `clean` unless the config names other patterns.
    pub cleaned: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// A file ending: `out` is `*.out`.
    Ending(&'static str),
    /// A folder name, wherever it is.
    Folder(&'static str),
}

const fn ending(e: &'static str, cleaned: bool) -> Artifact {
    Artifact {
        shape: Shape::Ending(e),
        cleaned,
    }
}

const fn folder(f: &'static str, cleaned: bool) -> Artifact {
    Artifact {
        shape: Shape::Folder(f),
        cleaned,
    }
}

/// Every artifact the tool knows, in the order the default patterns list them.
pub const ARTIFACTS: &[Artifact] = &[
    ending("out", true),
    ending("test", true),
    folder("test-results", true),
    folder("audit-results", true),
    ending("prof", false),
    ending("pprof", false),
    ending("cov", false),
    ending("coverprofile", false),
    ending("profraw", false),
    ending("profdata", false),
    ending("log", false),
    ending("tmp", false),
    ending("o", false),
    ending("pyc", false),
    folder(".git", false),
    folder("target", false),
    folder("node_modules", false),
    folder("coverage", false),
    folder("__pycache__", false),
    folder(".pytest_cache", false),
    folder(".cache", false),
    folder(".e2e", false),
    folder("results", false),
];

impl Artifact {
    /// Its line in `.dockerignore` syntax.
    pub fn pattern(&self) -> String {
        match self.shape {
            Shape::Ending(e) => format!("**/*.{e}"),
            // `.git` lives at the root of a context, never deeper.
            Shape::Folder(".git") => ".git".to_owned(),
            Shape::Folder(f) => format!("**/{f}"),
        }
    }
}

/// The patterns `clean` deletes when the config names none.
pub fn default_patterns() -> Vec<String> {
    ARTIFACTS
        .iter()
        .filter(|a| a.cleaned)
        .map(Artifact::pattern)
        .collect()
}

/// Whether a file ending marks an artifact.
pub fn is_artifact_ending(ext: &str) -> bool {
    ARTIFACTS
        .iter()
        .any(|a| matches!(a.shape, Shape::Ending(e) if e == ext))
}

/// Whether a folder name marks an artifact folder (`*-results` too).
pub fn is_artifact_folder(name: &str) -> bool {
    name.ends_with("-results")
        || ARTIFACTS
            .iter()
            .any(|a| matches!(a.shape, Shape::Folder(f) if f == name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaning_by_default_is_the_outputs_a_test_run_rewrites() {
        assert_eq!(
            default_patterns(),
            [
                "**/*.out",
                "**/*.test",
                "**/test-results",
                "**/audit-results"
            ]
        );
        assert!(is_artifact_ending("profraw") && !is_artifact_ending("rs"));
        assert!(is_artifact_folder("node_modules") && is_artifact_folder("e2e-results"));
        assert!(!is_artifact_folder("src"));
        assert_eq!(folder(".git", false).pattern(), ".git");
    }
}
