//! The one way the workspace starts a process: arguments stay arguments, the
//! working directory is explicit, and failures carry the whole command line.

use camino::Utf8Path;

use crate::error::{Error, Result};

/// A command to run, kept as data so it can be shown, logged and tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cmd {
    pub program: String,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    pub env_remove: Vec<String>,
}

/// What `cargo run` sets for the program it runs (here: the xtask). A nested
/// cargo that inherits them hands them to build scripts, and a build script
/// that tracks one (ring tracks `CARGO_MANIFEST_DIR`) is rebuilt every time the
/// xtask and the nested cargo take turns. So nested cargo calls drop them.
pub const CARGO_RUN_VARS: &[&str] = &[
    "CARGO_MANIFEST_DIR",
    "CARGO_MANIFEST_PATH",
    "CARGO_PKG_NAME",
    "CARGO_PKG_VERSION",
    "CARGO_PKG_VERSION_MAJOR",
    "CARGO_PKG_VERSION_MINOR",
    "CARGO_PKG_VERSION_PATCH",
    "CARGO_PKG_VERSION_PRE",
    "CARGO_PKG_AUTHORS",
    "CARGO_PKG_DESCRIPTION",
    "CARGO_PKG_HOMEPAGE",
    "CARGO_PKG_REPOSITORY",
    "CARGO_PKG_LICENSE",
    "CARGO_PKG_LICENSE_FILE",
    "CARGO_PKG_RUST_VERSION",
    "CARGO_PKG_README",
    "CARGO_CRATE_NAME",
    "CARGO_BIN_NAME",
    "CARGO_PRIMARY_PACKAGE",
];

/// A child started by [`Cmd::spawn_detached`].
#[derive(Debug)]
pub struct Detached {
    pub pid: u32,
    stdin: Option<std::io::PipeWriter>,
    handle: duct::Handle,
}

impl Detached {
    /// Writes one line to its stdin.
    pub fn send(&mut self, line: &str) -> std::io::Result<()> {
        use std::io::Write as _;
        match &mut self.stdin {
            Some(w) => writeln!(w, "{line}"),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// A second write end of its stdin (close-on-exec, as the first): the
    /// child sees end-of-file only once both are closed.
    pub fn stdin_clone(&self) -> std::io::Result<std::io::PipeWriter> {
        match &self.stdin {
            Some(w) => w.try_clone(),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        }
    }

    /// Sends `line`, closes its stdin and waits for it to exit.
    pub fn finish(mut self, line: &str) -> std::io::Result<()> {
        let sent = self.send(line);
        self.stdin = None;
        self.handle.wait()?;
        sent
    }
}

impl Cmd {
    pub fn new<I, S>(program: &str, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            env_remove: Vec::new(),
        }
    }

    /// `cargo ARGS`, without the variables `cargo run` gave us (see [`CARGO_RUN_VARS`]).
    pub fn cargo<I, S>(args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut cmd = Cmd::new("cargo", args);
        cmd.env_remove = CARGO_RUN_VARS.iter().map(|v| v.to_string()).collect();
        cmd
    }

    pub fn env(mut self, key: &str, value: &str) -> Cmd {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn envs(mut self, vars: &[(String, String)]) -> Cmd {
        self.env.extend_from_slice(vars);
        self
    }

    /// Every child gets its own process group, short-lived ones too: a
    /// terminal's Ctrl-C then reaches only us, and we decide (a `ps` inside
    /// teardown killed by the user's first Ctrl-C would fail the teardown).
    pub(crate) fn expression(&self, dir: &Utf8Path) -> duct::Expression {
        self.expression_with_stdin(dir).stdin_null()
    }

    /// [`Cmd::expression`] without a stdin redirection (in duct, as in a
    /// shell, the innermost redirection wins: the caller adds its own).
    fn expression_with_stdin(&self, dir: &Utf8Path) -> duct::Expression {
        use std::os::unix::process::CommandExt;
        let mut e = duct::cmd(&self.program, &self.args)
            .dir(dir)
            .before_spawn(|c| {
                c.process_group(0);
                Ok(())
            });
        for k in &self.env_remove {
            e = e.env_remove(k);
        }
        for (k, v) in &self.env {
            e = e.env(k, v);
        }
        e
    }

    /// Runs to completion and returns stdout; a non-zero exit is an error with stderr.
    pub fn output(&self, dir: &Utf8Path) -> Result<Vec<u8>> {
        self.captured(self.expression(dir))
    }

    /// Like `output`, with `input` as its stdin (a tar stream for `docker cp -`).
    pub fn output_with_input(&self, dir: &Utf8Path, input: Vec<u8>) -> Result<Vec<u8>> {
        self.captured(self.expression_with_stdin(dir).stdin_bytes(input))
    }

    /// Like `text`, stdout and stderr together (`docker logs` prints a
    /// container's two streams on ours).
    pub fn text_both(&self, dir: &Utf8Path) -> Result<String> {
        let out = self.captured(self.expression(dir).stderr_to_stdout())?;
        Ok(String::from_utf8_lossy(&out).trim().to_owned())
    }

    fn captured(&self, e: duct::Expression) -> Result<Vec<u8>> {
        let out = e
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|source| self.spawn_error(source))?;
        if !out.status.success() {
            return Err(Error::Failed {
                command: self.to_string(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).trim_end().to_owned(),
            });
        }
        Ok(out.stdout)
    }

    /// Starts a child meant to outlive us if we die: its own process group
    /// (a terminal's Ctrl-C and a CI runner's kill of our group miss it),
    /// stdin a pipe only we write to, so it reads end-of-file the moment we
    /// are gone however we went; stdout and stderr where the caller says.
    /// Never registered for interruption.
    pub fn spawn_detached(
        &self,
        dir: &Utf8Path,
        stdout: std::fs::File,
        stderr: std::fs::File,
    ) -> Result<Detached> {
        let (reader, writer) = std::io::pipe().map_err(|source| self.spawn_error(source))?;
        let handle = self
            .expression_with_stdin(dir)
            .stdin_file(reader)
            .stdout_file(stdout)
            .stderr_file(stderr)
            .unchecked()
            .start()
            .map_err(|source| self.spawn_error(source))?;
        Ok(Detached {
            pid: handle.pids().first().copied().unwrap_or_default(),
            stdin: Some(writer),
            handle,
        })
    }

    pub(crate) fn spawn_error(&self, source: std::io::Error) -> Error {
        Error::Spawn {
            program: self.program.clone(),
            command: self.to_string(),
            source,
        }
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
            // Quoted unless plainly safe, so a shown command can be pasted into a shell.
            let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=,@%+".contains(c);
            if a.is_empty() || !a.chars().all(safe) {
                write!(f, " '{}'", a.replace('\'', r"'\''"))?;
            } else {
                write!(f, " {a}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The child reads its own process group from /proc/self/stat (field 5).
    fn child_pgrp(run: impl Fn(&Cmd) -> String) -> i32 {
        let stat = run(&Cmd::new("cat", ["/proc/self/stat"]));
        let after_comm = &stat[stat.rfind(')').expect("stat has (comm)") + 2..];
        after_comm
            .split(' ')
            .nth(2)
            .expect("pgrp field")
            .parse()
            .expect("a number")
    }

    #[test]
    fn every_child_runs_in_its_own_process_group() {
        use crate::GroupOptions;
        let ours = nix::unistd::getpgrp().as_raw();
        let here = Utf8Path::new(".");
        let short = child_pgrp(|c| c.text(here).unwrap());
        let long = child_pgrp(|c| {
            c.run_group(
                here,
                GroupOptions {
                    capture: true,
                    interruptible: false,
                },
            )
            .unwrap()
            .stdout
        });
        assert_ne!(short, ours, "a short-lived child must not share our group");
        assert_ne!(long, ours);
    }

    #[test]
    fn shown_commands_paste_into_a_shell() {
        let cmd = Cmd::new("cargo", ["nextest", "run", "-E", "test(/a b/)", "it's", ""]);
        assert_eq!(
            cmd.to_string(),
            r"cargo nextest run -E 'test(/a b/)' 'it'\''s' ''"
        );
    }
}
