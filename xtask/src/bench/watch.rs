//! `e2e --watch` on the demo stack, from a change to its result, against
//! what a developer runs without it, in four scenarios:
//! - a one-line change in the backend's source, against a whole kept run
//!   (`e2e --teardown keep`) after the same change: the backend's
//!   `develop.watch` rule syncs the staged binary in and restarts it;
//! - the same in the gateway's source, which has no rule: its image is
//!   built again and its container replaced;
//! - a change to a test file, against the bare `cargo nextest run` of the tests;
//! - a file nothing uses, against a whole kept run with nothing changed.
//!
//! Both sides run one after the other, never at once (a watch would see the
//! other side's edits), on the same project, the order alternating by round.
//! The edits are made to this checkout's files and undone when the bench
//! ends, whatever happens (the first content is kept in memory).

use std::io::BufRead as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use camino::{Utf8Path, Utf8PathBuf};
use xshell::cmd;

use super::{Comparison, Demo, run_step, time};

const PROJECT: &str = "bench-watch";

/// A file of this checkout, edited by the bench and put back on drop.
struct Edited {
    path: Utf8PathBuf,
    original: String,
}

impl Edited {
    fn new(path: Utf8PathBuf) -> anyhow::Result<Edited> {
        let original = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        Ok(Edited { path, original })
    }

    fn write(&self, text: &str) -> anyhow::Result<()> {
        std::fs::write(&self.path, text).with_context(|| format!("writing {}", self.path))
    }
}

impl Drop for Edited {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.original);
    }
}

/// A running `e2e --watch`, its output read line by line.
struct Watching {
    pid: u32,
    lines: mpsc::Receiver<String>,
    reading: std::thread::JoinHandle<()>,
    /// Where sessions' folders (`<time>-<pid>-<project>`) are, for the cycles' reports.
    runs: Utf8PathBuf,
}

impl Watching {
    fn start(xtask: &Utf8Path, port: &str) -> anyhow::Result<Watching> {
        let cmd = process::CARGO_RUN_VARS.iter().fold(
            duct::cmd(
                xtask.as_str(),
                ["e2e", "--watch", "--project", PROJECT, "--teardown", "keep"],
            )
            .dir(crate::project_root())
            .env("E2E_GATEWAY_PORT", port)
            .env_remove("CI"),
            |c, var| c.env_remove(var),
        );
        let reader = cmd
            .stderr_null()
            .unchecked()
            .reader()
            .with_context(|| format!("starting {xtask} e2e --watch"))?;
        let pid = reader.pids()[0];
        let (tx, lines) = mpsc::channel();
        let reading = std::thread::spawn(move || {
            for line in std::io::BufReader::new(&reader)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let w = Watching {
            runs: crate::target_dir().join("e2e/runs"),
            pid,
            lines,
            reading,
        };
        w.wait_for("the first run", |l| l.starts_with("watching "))?;
        Ok(w)
    }

    /// Waits for a line that `wanted` accepts and returns it.
    fn wait_for(&self, what: &str, wanted: impl Fn(&str) -> bool) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if wanted(&line) => return Ok(line),
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        let tail = seen[seen.len().saturating_sub(20)..].join("\n");
        anyhow::bail!("the watch did not show {what}; its last lines:\n{tail}")
    }

    /// Seconds from now (the edit) until the summary of the next cycle,
    /// which must say `expect`.
    fn cycle(
        &self,
        edit: impl FnOnce() -> anyhow::Result<()>,
        expect: &str,
    ) -> anyhow::Result<f64> {
        let start = Instant::now();
        edit()?;
        let line = self.wait_for("a cycle's summary", |l| {
            l.starts_with("cycle ") && l.contains(" done in ")
        })?;
        let seconds = start.elapsed().as_secs_f64();
        anyhow::ensure!(
            line.contains(expect) && line.contains(" 0 failed"),
            "the cycle did not do what this scenario is about (wanted `{expect}` and no failure): {line}"
        );
        Ok(seconds)
    }

    /// The phases of the last cycle's report.
    fn last_phases(&self) -> Vec<(String, f64)> {
        let pid = self.pid;
        let session = self.runs.read_dir_utf8().ok().and_then(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.into_path())
                .find(|p| {
                    p.file_name()
                        .is_some_and(|n| n.contains(&format!("-{pid}-")))
                })
        });
        let last = session.and_then(|s| pipeline::session::cycle_dirs(&s).into_iter().next());
        last.and_then(|dir| pipeline::RunReport::read(&dir.join("report.json")).ok())
            .map(|r| r.phase_seconds())
            .unwrap_or_default()
    }

    /// Ctrl-C, and the wait for the loop to end (the stack is kept): its
    /// output ends when it does.
    fn stop(self) -> anyhow::Result<()> {
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT)?;
        drop(self.lines);
        let _ = self.reading.join();
        Ok(())
    }
}

/// The files the scenarios change, each edit new (its bytes never built).
struct Edits {
    backend: Edited,
    gateway: Edited,
    tests: Edited,
    made: usize,
}

impl Edits {
    const BACKEND: &str = "backend listening on {addr}";
    const GATEWAY: &str = "gateway listening on {addr}";

    fn new(root: &Utf8Path) -> anyhow::Result<Edits> {
        let source = |path: &str, marker: &str| -> anyhow::Result<Edited> {
            let e = Edited::new(root.join(path))?;
            anyhow::ensure!(
                e.original.contains(marker),
                "{}: no `{marker}` to change",
                e.path
            );
            Ok(e)
        };
        Ok(Edits {
            backend: source("crates/demo-backend/src/main.rs", Self::BACKEND)?,
            gateway: source("crates/demo-gateway/src/main.rs", Self::GATEWAY)?,
            tests: Edited::new(root.join("crates/e2e-tests/tests/gateway.rs"))?,
            made: 0,
        })
    }

    /// A one-line change of a service's source.
    fn line(&mut self, gateway: bool) -> anyhow::Result<()> {
        self.made += 1;
        let (file, marker) = match gateway {
            false => (&self.backend, Self::BACKEND),
            true => (&self.gateway, Self::GATEWAY),
        };
        let line = format!("{marker} (bench edit {} {})", self.made, std::process::id());
        file.write(&file.original.replacen(marker, &line, 1))
    }

    fn backend(&mut self) -> anyhow::Result<()> {
        self.line(false)
    }

    fn gateway(&mut self) -> anyhow::Result<()> {
        self.line(true)
    }

    /// A change of a test file.
    fn tests(&mut self) -> anyhow::Result<()> {
        self.made += 1;
        self.tests.write(&format!(
            "{}\n// bench edit {}\n",
            self.tests.original, self.made
        ))
    }
}

/// Four comparisons: backend change (synced), gateway change (rebuilt),
/// test change, unused file.
pub fn run(runs: usize, xtask: &Utf8Path) -> anyhow::Result<Vec<Comparison>> {
    let sh = crate::shell()?;
    let demo = Demo::new()?;
    let root = crate::project_root();
    let mut edits = Edits::new(&root)?;
    let unused = root.join("docs/.bench-watch-notes.md");
    let Demo { port, ca, url, .. } = &demo;
    let whole = || {
        time(|| {
            run_step(
                cmd!(sh, "{xtask} e2e --project {PROJECT} --teardown keep")
                    .env("E2E_GATEWAY_PORT", port),
            )
        })
    };
    let bare = || {
        time(|| {
            run_step(
                cmd!(sh, "cargo nextest run -p e2e-tests --profile e2e")
                    .env("E2E_GATEWAY_URL", url)
                    .env("E2E_CA_CERT", ca),
            )
        })
    };
    let mut rows = [
        Comparison::new("watch-backend", "whole kept run"),
        Comparison::new("watch-gateway", "whole kept run"),
        Comparison::new("watch-test", "bare cargo nextest run"),
        Comparison::new("watch-unused", "whole kept run, no change"),
    ];
    // Without the watch: the same changes, then what one would run.
    let theirs = |[b, g, t, u]: &mut [Comparison; 4], edits: &mut Edits| -> anyhow::Result<()> {
        edits.backend()?;
        b.theirs.push(whole()?);
        edits.gateway()?;
        g.theirs.push(whole()?);
        edits.tests()?;
        t.theirs.push(bare()?);
        u.theirs.push(whole()?);
        Ok(())
    };
    // With it: from each change to the line that reports its result.
    let ours = |[b, g, t, u]: &mut [Comparison; 4],
                edits: &mut Edits,
                round: usize|
     -> anyhow::Result<()> {
        let w = Watching::start(xtask, port)?;
        let measured = (|| -> anyhow::Result<()> {
            b.ours.push(w.cycle(
                    || edits.backend(),
                    "built: nothing; containers recreated or started: 0; synced 1 file into backend; restarted backend",
                )?);
            b.phases.push(w.last_phases());
            g.ours.push(w.cycle(|| edits.gateway(), "built: gateway")?);
            g.phases.push(w.last_phases());
            t.ours.push(w.cycle(
                || edits.tests(),
                "built: nothing; containers recreated or started: 0",
            )?);
            let start = Instant::now();
            std::fs::write(&unused, format!("round {round}\n"))?;
            let line = w.wait_for("the no-cycle line", |l| l.starts_with("no cycle"))?;
            u.ours.push(start.elapsed().as_secs_f64());
            anyhow::ensure!(line.contains(".bench-watch-notes.md"), "{line}");
            let _ = std::fs::remove_file(&unused);
            w.wait_for("the no-cycle line", |l| l.starts_with("no cycle"))?;
            Ok(())
        })();
        w.stop()?;
        measured
    };
    let result = (|| -> anyhow::Result<()> {
        // Warm: the stack up and kept, every binary built.
        whole()?;
        bare()?;
        for round in 0..runs {
            // Alternating which goes first: drift hits both alike.
            for watch in [round % 2 == 1, round % 2 == 0] {
                if watch {
                    ours(&mut rows, &mut edits, round)?;
                } else {
                    theirs(&mut rows, &mut edits)?;
                }
            }
            let [b, g, t, u] = &rows;
            eprintln!(
                "watch: round {}/{runs}: backend change (synced) {:.1} s vs {:.1} s, gateway change (rebuilt) {:.1} s vs {:.1} s, test change {:.1} s vs {:.1} s, unused file {:.2} s vs {:.1} s",
                round + 1,
                b.ours[round],
                b.theirs[round],
                g.ours[round],
                g.theirs[round],
                t.ours[round],
                t.theirs[round],
                u.ours[round],
                u.theirs[round],
            );
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&unused);
    demo.remove(PROJECT);
    result?;
    Ok(rows.into())
}
