//! Shared by the Docker-backed CLI tests: a run watched line by line, in its
//! own process group as a terminal runs a job, so a test can send the
//! signals a terminal's Ctrl-C or a CI runner's cancel would; and copies
//! of the fixture workspaces.

// Each test binary uses a part of this module.
#![allow(dead_code)]

pub mod engine;

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Runs `expr` (which must merge stderr into stdout), hands each output line
/// to `on_line`, and sends the whole process group the signal it returns.
/// Returns the exit code and the whole output.
pub fn watch(
    expr: duct::Expression,
    on_line: impl FnMut(&str) -> Option<Signal>,
) -> (Option<i32>, String) {
    watch_until(expr, std::time::Duration::from_secs(600), on_line)
}

/// [`watch`], and a SIGINT to the group once `deadline` has passed, so a
/// run that waits for what never comes (a watch loop) still ends.
pub fn watch_until(
    expr: duct::Expression,
    deadline: std::time::Duration,
    mut on_line: impl FnMut(&str) -> Option<Signal>,
) -> (Option<i32>, String) {
    let reader = expr
        .before_spawn(|c| {
            c.process_group(0);
            Ok(())
        })
        .reader()
        .unwrap();
    let group = Pid::from_raw(reader.pids()[0] as i32);
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        // Only a deadline that passed; a finished run drops the sender.
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = finished.recv_timeout(deadline) {
            let _ = killpg(group, Signal::SIGINT);
        }
    });
    let _done = done;
    let mut output = String::new();
    let mut lines = BufReader::new(&reader);
    let mut line = String::new();
    while lines.read_line(&mut line).unwrap() > 0 {
        output.push_str(&line);
        if let Some(signal) = on_line(&line) {
            killpg(group, signal).unwrap();
        }
        line.clear();
    }
    let status = reader
        .try_wait()
        .unwrap()
        .expect("output ended, so the child has exited");
    (status.status.code(), output)
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A copy of `tests/fixtures/NAME` in a temporary folder under /tmp, with
/// `cargo-e2e` (`bin`) on PATH, as a workspace that is not this one.
pub struct Fixture {
    pub tmp: tempfile::TempDir,
    pub root: camino::Utf8PathBuf,
}

impl Fixture {
    pub fn new(name: &str, bin: &str) -> Fixture {
        let tmp = tempfile::Builder::new()
            .prefix("e2e-fixture-")
            .tempdir_in("/tmp")
            .unwrap();
        let base = camino::Utf8PathBuf::from_path_buf(tmp.path().canonicalize().unwrap()).unwrap();
        let root = base.join(name);
        let fixture = camino::Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name);
        copy_dir(&fixture, &root);
        std::fs::create_dir_all(base.join("bin")).unwrap();
        std::os::unix::fs::symlink(bin, base.join("bin/cargo-e2e")).unwrap();
        Fixture { tmp, root }
    }

    /// `cargo ARGS` in the fixture's root, as a CI job runs it (`CI` set).
    pub fn cargo_ci(&self, args: &[&str]) -> duct::Expression {
        cargo_in(&self.root, &self.path(), true, args)
    }

    /// `cargo ARGS` in the fixture's root, as its developers type it.
    pub fn cargo(&self, args: &[&str]) -> duct::Expression {
        cargo_in(&self.root, &self.path(), false, args)
    }

    /// PATH with the fixture's `cargo-e2e` first.
    pub fn path(&self) -> String {
        let bin = camino::Utf8Path::from_path(self.tmp.path())
            .unwrap()
            .join("bin");
        format!("{bin}:{}", std::env::var("PATH").unwrap_or_default())
    }
}

/// `cargo ARGS` in another workspace's `root` with `path` as PATH: no
/// variable of this repository's run leaks in (nextest gives a test the ones
/// `cargo run` gives a binary; ring's build script reads `CARGO_PKG_NAME`,
/// so a cargo that inherits them rebuilds ring in a shared target folder);
/// `ci` sets `CI` as a CI job does (in duct the innermost environment change
/// wins, so it is set here).
pub fn cargo_in(root: &camino::Utf8Path, path: &str, ci: bool, args: &[&str]) -> duct::Expression {
    let mut e = duct::cmd("cargo", args)
        .dir(root)
        .env("PATH", path)
        .env_remove("CARGO_TARGET_DIR");
    for var in process::CARGO_RUN_VARS {
        e = e.env_remove(var);
    }
    let e = if ci {
        e.env("CI", "true")
    } else {
        e.env_remove("CI")
    };
    e.stdin_null().stderr_to_stdout().unchecked()
}

/// Runs `expr` to its end: its exit code and its output (stderr merged).
pub fn outcome(expr: duct::Expression) -> (Option<i32>, String) {
    let out = expr
        .stderr_to_stdout()
        .stdout_capture()
        .unchecked()
        .run()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Copies a fixture, without a `target` folder.
pub fn copy_dir(from: &camino::Utf8Path, to: &camino::Utf8Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in from.read_dir_utf8().unwrap() {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_name() == "target" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            copy_dir(entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}
