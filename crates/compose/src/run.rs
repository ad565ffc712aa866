//! The one way this crate starts a process: arguments stay arguments, the
//! working directory is explicit, and failures carry the whole command line.

use camino::Utf8Path;

use crate::error::{Error, Result};

/// A command to run, kept as data so it can be shown, logged and tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Cmd {
    pub fn docker<I, S>(args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            program: "docker".into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    fn expression(&self, dir: &Utf8Path) -> duct::Expression {
        let mut e = duct::cmd(&self.program, &self.args).dir(dir).stdin_null();
        for (k, v) in &self.env {
            e = e.env(k, v);
        }
        e
    }

    /// Runs to completion and returns stdout; a non-zero exit is an error with stderr.
    pub fn output(&self, dir: &Utf8Path) -> Result<Vec<u8>> {
        let out = self
            .expression(dir)
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|source| Error::Spawn {
                command: self.to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(Error::Failed {
                command: self.to_string(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
            });
        }
        Ok(out.stdout)
    }

    /// Like `output`, as trimmed text.
    pub fn text(&self, dir: &Utf8Path) -> Result<String> {
        Ok(String::from_utf8_lossy(&self.output(dir)?)
            .trim()
            .to_owned())
    }
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.program)?;
        for a in &self.args {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"') {
                write!(f, " '{}'", a.replace('\'', r"'\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}
