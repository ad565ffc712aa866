//! The ordered pattern list and the two ways the engine evaluates it.
//!
//! `decide` is BuildKit's walker (`MatchesUsingParentResults`): each folder
//! hands its per-pattern results to its children. `decide_stateless` is
//! `MatchesOrParentMatches`, which the engine uses to open single files. The
//! two disagree on some inputs (shared/dockerignore.md, section E), and the
//! walker is what decides what a build sends.

use crate::ignorefile::IgnoreLine;
use crate::pattern::{Pattern, PatternError};

/// The patterns of one ignore file, in order, with the line each came from.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    lines: Vec<usize>,
    exclusions: bool,
}

/// The outcome for one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub excluded: bool,
    /// Index of the last pattern that matched, which is the one that decided.
    pub by: Option<usize>,
}

/// Per-pattern results of a folder, handed to its children.
pub type ParentInfo = Vec<bool>;

/// A pattern that the engine refuses, with its line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadPattern {
    pub line: usize,
    pub pattern: String,
    pub error: PatternError,
}

impl Matcher {
    /// Compiles the reader's lines; the first unusable pattern is an error.
    pub fn new(lines: &[IgnoreLine]) -> Result<Matcher, BadPattern> {
        let mut m = Matcher::default();
        for l in lines {
            let bad = |error| BadPattern {
                line: l.line,
                pattern: l.pattern.clone(),
                error,
            };
            if let Some(p) = Pattern::new(&l.pattern).map_err(bad)? {
                m.exclusions |= p.exclusion;
                m.patterns.push(p);
                m.lines.push(l.line);
            }
        }
        Ok(m)
    }

    /// Patterns given inline, numbered from 1 (tests and configured artifact lists).
    pub fn from_patterns<S: AsRef<str>>(patterns: &[S]) -> Result<Matcher, BadPattern> {
        let lines: Vec<IgnoreLine> = patterns
            .iter()
            .enumerate()
            .map(|(i, p)| IgnoreLine {
                line: i + 1,
                pattern: p.as_ref().to_owned(),
            })
            .collect();
        Matcher::new(&lines)
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    pub fn has_exclusions(&self) -> bool {
        self.exclusions
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// Source line of pattern `index`.
    pub fn line_of(&self, index: usize) -> usize {
        self.lines[index]
    }

    fn bad(&self, index: usize, error: PatternError) -> BadPattern {
        BadPattern {
            line: self.lines[index],
            pattern: self.patterns[index].text.clone(),
            error,
        }
    }

    /// `MatchesUsingParentResults`: `parent` is `None` for entries at the top
    /// of the context (the walker has no folder info for them).
    pub fn decide(
        &self,
        path: &[u8],
        parent: Option<&[bool]>,
    ) -> Result<(Decision, ParentInfo), BadPattern> {
        let mut decision = Decision {
            excluded: false,
            by: None,
        };
        let mut info = vec![false; self.patterns.len()];
        for (i, pattern) in self.patterns.iter().enumerate() {
            let mut matched = parent.is_some_and(|p| p[i]);
            if !matched {
                if pattern.exclusion != decision.excluded {
                    continue;
                }
                matched = pattern.matches(path).map_err(|e| self.bad(i, e))?;
                if !matched && parent.is_none() {
                    matched = self.any_ancestor_matches(pattern, path);
                }
            }
            info[i] = matched;
            if matched {
                decision = Decision {
                    excluded: !pattern.exclusion,
                    by: Some(i),
                };
            }
        }
        Ok((decision, info))
    }

    /// `MatchesOrParentMatches`, the stateless evaluation.
    pub fn decide_stateless(&self, path: &[u8]) -> Result<Decision, BadPattern> {
        let mut decision = Decision {
            excluded: false,
            by: None,
        };
        for (i, pattern) in self.patterns.iter().enumerate() {
            if pattern.exclusion != decision.excluded {
                continue;
            }
            let matched = pattern.matches(path).map_err(|e| self.bad(i, e))?
                || self.any_ancestor_matches(pattern, path);
            if matched {
                decision = Decision {
                    excluded: !pattern.exclusion,
                    by: Some(i),
                };
            }
        }
        Ok(decision)
    }

    /// Go ignores errors on the ancestor checks, so this does too.
    fn any_ancestor_matches(&self, pattern: &Pattern, path: &[u8]) -> bool {
        path.iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .any(|(i, _)| pattern.matches(&path[..i]).unwrap_or(false))
    }

    /// Walks `path`'s ancestors as BuildKit's walker would and decides `path`.
    /// Returns the decision and, when an ancestor folder was excluded and
    /// pruned, that folder (nothing under it is looked at).
    pub fn decide_walked(&self, path: &str) -> Result<(Decision, Option<String>), BadPattern> {
        let mut parent: Option<ParentInfo> = None;
        let parts: Vec<&str> = path.split('/').collect();
        for depth in 0..parts.len() {
            let prefix = parts[..=depth].join("/");
            let (decision, info) = self.decide(prefix.as_bytes(), parent.as_deref())?;
            let is_last = depth + 1 == parts.len();
            if !is_last && decision.excluded && self.can_prune(&prefix) {
                return Ok((decision, Some(prefix)));
            }
            if is_last {
                return Ok((decision, None));
            }
            parent = Some(info);
        }
        unreachable!("a path has at least one component")
    }

    /// Whether BuildKit skips an excluded folder without looking inside.
    pub fn can_prune(&self, dir: &str) -> bool {
        if !self.exclusions {
            return true;
        }
        const SPECIAL: &[char] = &['*', '[', ']', '?', '^', '\\'];
        let only_prefix_exceptions = self
            .patterns
            .iter()
            .filter(|p| p.exclusion)
            .all(|p| !p.without_trailing_glob().contains(SPECIAL));
        if !only_prefix_exceptions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        !self
            .patterns
            .iter()
            .filter(|p| p.exclusion)
            .any(|p| format!("{}/", p.without_trailing_glob()).starts_with(&dir_slash))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walked(patterns: &[&str], path: &str) -> bool {
        let m = Matcher::from_patterns(patterns).unwrap();
        // Evaluate every ancestor with parent info, as the walker does, but
        // without pruning so the matcher itself is under test.
        let mut parent: Option<ParentInfo> = None;
        let parts: Vec<&str> = path.split('/').collect();
        let mut result = false;
        for depth in 0..parts.len() {
            let prefix = parts[..=depth].join("/");
            let (d, info) = m.decide(prefix.as_bytes(), parent.as_deref()).unwrap();
            result = d.excluded;
            parent = Some(info);
        }
        result
    }

    fn stateless(patterns: &[&str], path: &str) -> bool {
        Matcher::from_patterns(patterns)
            .unwrap()
            .decide_stateless(path.as_bytes())
            .unwrap()
            .excluded
    }

    /// patternmatcher's TestMatches table, single patterns, both evaluations.
    #[test]
    fn patternmatcher_single_table() {
        let table: &[(&str, &str, bool)] = &[
            ("**", "file", true),
            ("**", "file/", true),
            ("**/", "file", true),
            ("**/", "file/", true),
            ("**", "/", true),
            ("**/", "/", true),
            ("**", "dir/file", true),
            ("**/", "dir/file", true),
            ("**", "dir/file/", true),
            ("**/", "dir/file/", true),
            ("**/**", "dir/file", true),
            ("**/**", "dir/file/", true),
            ("dir/**", "dir/file", true),
            ("dir/**", "dir/file/", true),
            ("dir/**", "dir/dir2/file", true),
            ("dir/**", "dir/dir2/file/", true),
            ("**/dir", "dir", true),
            ("**/dir", "dir/file", true),
            ("**/dir2/*", "dir/dir2/file", true),
            ("**/dir2/*", "dir/dir2/file/", true),
            ("**/dir2/**", "dir/dir2/dir3/file", true),
            ("**/dir2/**", "dir/dir2/dir3/file/", true),
            ("**file", "file", true),
            ("**file", "dir/file", true),
            ("**/file", "dir/file", true),
            ("**file", "dir/dir/file", true),
            ("**/file", "dir/dir/file", true),
            ("**/file*", "dir/dir/file", true),
            ("**/file*", "dir/dir/file.txt", true),
            ("**/file*txt", "dir/dir/file.txt", true),
            ("**/file*.txt", "dir/dir/file.txt", true),
            ("**/file*.txt*", "dir/dir/file.txt", true),
            ("**/**/*.txt", "dir/dir/file.txt", true),
            ("**/**/*.txt2", "dir/dir/file.txt", false),
            ("**/*.txt", "file.txt", true),
            ("**/**/*.txt", "file.txt", true),
            ("a**/*.txt", "a/file.txt", true),
            ("a**/*.txt", "a/dir/file.txt", true),
            ("a**/*.txt", "a/dir/dir/file.txt", true),
            ("a/*.txt", "a/dir/file.txt", false),
            ("a/*.txt", "a/file.txt", true),
            ("a/*.txt**", "a/file.txt", true),
            ("a[b-d]e", "ae", false),
            ("a[b-d]e", "ace", true),
            ("a[b-d]e", "aae", false),
            ("a[^b-d]e", "aze", true),
            (".*", ".foo", true),
            (".*", "foo", false),
            ("abc.def", "abcdef", false),
            ("abc.def", "abc.def", true),
            ("abc.def", "abcZdef", false),
            ("abc?def", "abcZdef", true),
            ("abc?def", "abcdef", false),
            ("a\\\\", "a\\", true),
            ("**/foo/bar", "foo/bar", true),
            ("**/foo/bar", "dir/foo/bar", true),
            ("**/foo/bar", "dir/dir2/foo/bar", true),
            ("abc/**", "abc", false),
            ("abc/**", "abc/def", true),
            ("abc/**", "abc/def/ghi", true),
            ("**/.foo", ".foo", true),
            ("**/.foo", "bar.foo", false),
            ("a(b)c/def", "a(b)c/def", true),
            ("a(b)c/def", "a(b)c/xyz", false),
            ("a.|)$(}+{bc", "a.|)$(}+{bc", true),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            (
                "dist/*.whl",
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                true,
            ),
            ("a\\*b", "a*b", true),
            // Go's filepath.Match vectors, as patternmatcher's TestMatch runs them.
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", true),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("a[^a][^a][^a]b", "a☺b", false),
            ("[a-ζ]*", "α", true),
            ("*[a-ζ]", "A", false),
            ("a?b", "a/b", false),
            ("a*b", "a/b", false),
            ("[\\]a]", "]", true),
            ("[\\-]", "-", true),
            ("[x\\-]", "x", true),
            ("[x\\-]", "-", true),
            ("[x\\-]", "z", false),
            ("[\\-x]", "x", true),
            ("[\\-x]", "-", true),
            ("[\\-x]", "a", false),
            ("*x", "xxx", true),
        ];
        for &(pattern, path, want) in table {
            assert_eq!(
                stateless(&[pattern], path),
                want,
                "stateless {pattern:?} {path:?}"
            );
            assert_eq!(
                walked(&[pattern], path),
                want,
                "walked {pattern:?} {path:?}"
            );
        }
    }

    #[test]
    fn patternmatcher_multi_table() {
        let whl = "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl";
        let table: &[(&[&str], &str, bool)] = &[
            (&["**", "!util/docker/web"], "util/docker/web/foo", false),
            (
                &["**", "!util/docker/web", "util/docker/web/foo"],
                "util/docker/web/foo",
                true,
            ),
            (
                &[
                    "**",
                    "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                ],
                whl,
                false,
            ),
            (&["**", "!dist/*.whl"], whl, false),
            (&["docs", "!docs/README.md"], "docs/README.md", false),
            (&["docs/", "!docs/README.md"], "docs/README.md", false),
            (&["docs/*", "!docs/README.md"], "docs/README.md", false),
            (&["*.go", "!fileutils.go"], "fileutils.go", false),
            (&["!fileutils.go", "*.go"], "fileutils.go", true),
        ];
        for &(patterns, path, want) in table {
            assert_eq!(
                stateless(patterns, path),
                want,
                "stateless {patterns:?} {path:?}"
            );
            assert_eq!(walked(patterns, path), want, "walked {patterns:?} {path:?}");
        }
    }

    /// The two documented cases where the walker and the stateless check disagree.
    #[test]
    fn walker_diverges_from_stateless() {
        assert!(!stateless(&["**/*.txt", "!dir"], "dir/a.txt"));
        assert!(walked(&["**/*.txt", "!dir"], "dir/a.txt"));
        assert!(stateless(&["a", "!a/b", "a"], "a/b/c"));
        assert!(!walked(&["a", "!a/b", "a"], "a/b/c"));
    }

    #[test]
    fn decision_names_the_deciding_line() {
        let lines = crate::ignorefile::read(b"# artifacts\n*.out\n\n!keep.out\n").unwrap();
        let m = Matcher::new(&lines).unwrap();
        let (d, _) = m.decide(b"keep.out", None).unwrap();
        assert_eq!((d.excluded, d.by.map(|i| m.line_of(i))), (false, Some(4)));
        let (d, _) = m.decide(b"x.out", None).unwrap();
        assert_eq!((d.excluded, d.by.map(|i| m.line_of(i))), (true, Some(2)));
    }

    #[test]
    fn pruning_follows_fsutil() {
        let m = Matcher::from_patterns(&["target"]).unwrap();
        assert!(m.can_prune("target"));
        let m = Matcher::from_patterns(&["a", "!a/b/keep"]).unwrap();
        assert!(!m.can_prune("a"));
        assert!(m.can_prune("c"));
        let m = Matcher::from_patterns(&["a", "!a/b/**"]).unwrap();
        assert!(!m.can_prune("a/b"));
        let m = Matcher::from_patterns(&["*", "!**/keep.txt"]).unwrap();
        assert!(!m.can_prune("anything"));
    }
}
