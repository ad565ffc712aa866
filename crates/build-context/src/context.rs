//! A build context: its folder, its Dockerfile, and the ignore file that applies.

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};
use crate::matcher::{BadPattern, Decision, Matcher};
use crate::walk::{self, EntryKind, Walk, WalkOptions};

/// The ignore file BuildKit uses for a context, already compiled.
#[derive(Debug, Clone, Default)]
pub struct IgnoreFile {
    /// `None` when the context has no ignore file.
    pub path: Option<Utf8PathBuf>,
    pub matcher: Matcher,
}

impl IgnoreFile {
    /// `<Dockerfile>.dockerignore` beside the Dockerfile wins, alone; otherwise
    /// the context's `.dockerignore`; otherwise nothing is excluded.
    pub fn for_context(root: &Utf8Path, dockerfile: Option<&Utf8Path>) -> Result<IgnoreFile> {
        let mut candidates = Vec::new();
        if let Some(df) = dockerfile
            && let Some(name) = df.file_name()
        {
            candidates.push(df.with_file_name(format!("{name}.dockerignore")));
        }
        candidates.push(root.join(".dockerignore"));
        for path in candidates {
            match std::fs::read(&path) {
                Ok(bytes) => return IgnoreFile::parse(path, &bytes),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::Io { path, source: e }),
            }
        }
        Ok(IgnoreFile::default())
    }

    /// Compiles ignore-file bytes; errors name `path` and the line.
    pub fn parse(path: Utf8PathBuf, bytes: &[u8]) -> Result<IgnoreFile> {
        let lines = crate::ignorefile::read(bytes).map_err(|line| Error::LineTooLong {
            path: path.clone(),
            line,
        })?;
        let matcher = Matcher::new(&lines).map_err(|b| bad_pattern(&path, b))?;
        Ok(IgnoreFile {
            path: Some(path),
            matcher,
        })
    }

    /// `file:line` and the pattern that decided, for messages.
    pub fn describe(&self, by: usize) -> String {
        let p = &self.matcher.patterns()[by];
        let bang = if p.exclusion { "!" } else { "" };
        let file = self
            .path
            .as_ref()
            .and_then(|p| p.file_name())
            .unwrap_or("(patterns)");
        format!("{file}:{} `{bang}{}`", self.matcher.line_of(by), p.text)
    }
}

pub(crate) fn bad_pattern(path: &Utf8Path, b: BadPattern) -> Error {
    Error::BadPattern {
        path: path.to_owned(),
        line: b.line,
        pattern: b.pattern,
        message: b.error.to_string(),
    }
}

/// A context folder with its Dockerfile and ignore file.
#[derive(Debug, Clone)]
pub struct Context {
    pub root: Utf8PathBuf,
    pub dockerfile: Option<Utf8PathBuf>,
    pub ignore: IgnoreFile,
}

/// Whether one path is sent, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    pub path: String,
    pub sent: bool,
    pub exists: bool,
    /// `file:line `pattern`` of the deciding line, if any line decided.
    pub decided_by: Option<String>,
    /// The excluded folder above `path` that the engine never looks into.
    pub pruned_at: Option<String>,
}

/// A Dockerfile's file name for messages (`Dockerfile` when there is none).
pub(crate) fn dockerfile_name(dockerfile: Option<&Utf8Path>) -> &str {
    dockerfile
        .and_then(|d| d.file_name())
        .unwrap_or("Dockerfile")
}

impl Context {
    /// Opens a context; the root is resolved so symlinks above it do not matter.
    pub fn open(root: &Utf8Path, dockerfile: Option<&Utf8Path>) -> Result<Context> {
        let resolved = root.canonicalize_utf8().map_err(Error::io(root))?;
        if !resolved.is_dir() {
            return Err(Error::NotADir {
                path: root.to_owned(),
            });
        }
        let dockerfile = match dockerfile {
            Some(df) if df.is_relative() && !df.exists() => Some(resolved.join(df)),
            Some(df) => Some(df.to_owned()),
            None => None,
        };
        let ignore = IgnoreFile::for_context(&resolved, dockerfile.as_deref())?;
        Ok(Context {
            root: resolved,
            dockerfile,
            ignore,
        })
    }

    /// Walks the context and decides every entry.
    pub fn walk(&self, options: WalkOptions) -> Result<Walk> {
        walk::walk(&self.root, &self.ignore.matcher, options).map_err(|b| self.bad(b))
    }

    /// The files and symlinks `COPY . /dst` places in an image, sorted bytewise.
    pub fn list(&self) -> Result<Vec<Box<[u8]>>> {
        let walk = self.walk(WalkOptions::default())?;
        Ok(walk
            .entries
            .into_iter()
            .filter(|e| !e.excluded && e.kind != EntryKind::Dir)
            .map(|e| e.path)
            .collect())
    }

    /// The files and symlinks the build really transfers: what its
    /// Dockerfile names, after the ignore file; sorted bytewise. Without a
    /// Dockerfile, or one that cannot be settled, that is [`Context::list`].
    pub fn list_sent(&self, inputs: &crate::dockerfile::BuildInputs) -> Result<Vec<Box<[u8]>>> {
        let usage = self.usage(inputs)?;
        let walk = self.walk(WalkOptions::default())?;
        let include = crate::sent::include_patterns(&self.root, &usage);
        let (order, _) = crate::sent::sent_entries(&walk, include.as_deref()).map_err(|b| {
            // Name the instruction that wrote the path the engine cannot match.
            let line = match &usage {
                crate::dockerfile::ContextUse::Paths { paths } => paths
                    .iter()
                    .find(|p| p.path == b.pattern)
                    .map_or(0, |p| p.line),
                _ => 0,
            };
            Error::BadPattern {
                path: self.dockerfile.clone().unwrap_or_default(),
                line,
                pattern: b.pattern,
                message: b.error.to_string(),
            }
        })?;
        let mut keep = vec![false; walk.entries.len()];
        order.into_iter().for_each(|i| keep[i] = true);
        Ok(walk
            .entries
            .into_iter()
            .zip(keep)
            .filter(|(e, k)| *k && e.kind != EntryKind::Dir)
            .map(|(e, _)| e.path)
            .collect())
    }

    /// Which paths the Dockerfile's build asks for.
    pub fn usage(
        &self,
        inputs: &crate::dockerfile::BuildInputs,
    ) -> Result<crate::dockerfile::ContextUse> {
        let Some(df) = &self.dockerfile else {
            return Ok(crate::dockerfile::ContextUse::Unsure {
                why: "no Dockerfile to read".into(),
            });
        };
        let text = std::fs::read_to_string(df).map_err(Error::io(df))?;
        Ok(crate::dockerfile::context_use(&text, inputs))
    }

    /// Explains the verdict on `path`, given relative to the context root.
    pub fn explain(&self, path: &str) -> Result<Explanation> {
        let clean = crate::goclean::clean(path.trim_start_matches("./"));
        let (decision, pruned_at) = self
            .ignore
            .matcher
            .decide_walked(&clean)
            .map_err(|b| self.bad(b))?;
        let Decision { excluded, by } = decision;
        Ok(Explanation {
            exists: self.root.join(&clean).symlink_metadata().is_ok(),
            path: clean,
            sent: !excluded,
            decided_by: by.map(|i| self.ignore.describe(i)),
            pruned_at,
        })
    }

    fn bad(&self, b: BadPattern) -> Error {
        let path = self
            .ignore
            .path
            .clone()
            .unwrap_or_else(|| self.root.join(".dockerignore"));
        bad_pattern(&path, b)
    }
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verdict = if self.sent { "sent" } else { "excluded" };
        write!(f, "{}: {verdict}", self.path)?;
        match (&self.decided_by, &self.pruned_at) {
            (Some(line), Some(dir)) => {
                write!(f, " (folder {dir}/ excluded by {line}; never looked into)")?
            }
            (Some(line), None) if self.sent => write!(f, " (re-included by {line})")?,
            (Some(line), None) => write!(f, " (by {line})")?,
            (None, _) => write!(f, " (no pattern matches)")?,
        }
        if !self.exists {
            write!(f, " [no such file in the context]")?;
        }
        Ok(())
    }
}
