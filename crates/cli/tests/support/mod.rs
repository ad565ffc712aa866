//! Shared by the Docker-backed CLI tests: a run watched line by line, in its
//! own process group as a terminal runs a job, so a test can send the
//! signals a terminal's Ctrl-C or a CI runner's cancel would.

use std::io::{BufRead as _, BufReader};
use std::os::unix::process::CommandExt as _;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Runs `expr` (which must merge stderr into stdout), hands each output line
/// to `on_line`, and sends the whole process group the signal it returns.
/// Returns the exit code and the whole output.
pub fn watch(
    expr: duct::Expression,
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
