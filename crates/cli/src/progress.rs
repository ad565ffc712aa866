//! Progress of the e2e phases on stderr: on a terminal a spinner per phase,
//! a bar per build beside it, and the services' log lines above them,
//! coloured; on a pipe (CI logs) plain timestamped lines, work throttled to
//! one line per source every few seconds, and a line whenever a phase has
//! said nothing for that long. Under GitHub Actions the services' lines go
//! to stdout between `::stop-commands::` and its token, so nothing a
//! container prints is read as a workflow command.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write as _};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::ci_log::CiHost;
use pipeline::Phase;
use pipeline::e2e::Work;
use pipeline::report::{PhaseReport, Status};

/// On a pipe, the longest a phase goes without a line, and the least time
/// between two lines of one work source.
pub const QUIET: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Progress {
    /// On a terminal: the phase's spinner and the work bars live here.
    multi: Option<MultiProgress>,
    spinner: Option<ProgressBar>,
    bars: BTreeMap<String, ProgressBar>,
    /// GitHub Actions or GitLab CI: folds per phase, annotations.
    ci: Option<CiHost>,
    /// The phase whose fold is open (a skipped phase never opens one).
    open: Option<Phase>,
    /// On a pipe: when each work source was last printed.
    printed: BTreeMap<String, Instant>,
    /// What the heartbeat (on a pipe) knows.
    beat: Arc<Mutex<Beat>>,
    /// GitHub: workflow commands are stopped with this token while services' lines print.
    stopped: Option<String>,
    colours: BTreeMap<String, usize>,
}

#[derive(Debug)]
struct Beat {
    /// The phase running and since when.
    phase: Option<(Phase, Instant)>,
    last_line: Instant,
    last_work: Option<String>,
}

impl Progress {
    pub fn new(ci: Option<CiHost>) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let beat = Arc::new(Mutex::new(Beat {
            phase: None,
            last_line: Instant::now(),
            last_work: None,
        }));
        if !terminal {
            heartbeat(Arc::downgrade(&beat));
        }
        Progress {
            multi: terminal.then(MultiProgress::new),
            spinner: None,
            bars: BTreeMap::new(),
            ci,
            open: None,
            printed: BTreeMap::new(),
            beat,
            stopped: None,
            colours: BTreeMap::new(),
        }
    }

    /// A line for the CI runner, which reads its commands on stdout.
    fn command(&mut self, line: &str) {
        self.resume_commands();
        stdout_line(line);
    }

    /// Ignores write errors: a closed stderr (`| head`) must not panic the run
    /// on its way to teardown.
    fn line(&self, text: &str) {
        if let Ok(mut b) = self.beat.lock() {
            b.last_line = Instant::now();
        }
        match &self.multi {
            Some(m) => {
                let _ = m.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "[{}] {text}", clock());
            }
        }
    }

    fn resume_commands(&mut self) {
        if let Some(token) = self.stopped.take() {
            stdout_line(&format!("::{token}::"));
        }
    }

    /// `service` as the terminal shows it: in a colour of its own.
    fn label(&mut self, service: &str) -> String {
        const PALETTE: [u8; 6] = [6, 5, 3, 2, 4, 1];
        let next = self.colours.len();
        let i = *self.colours.entry(service.to_owned()).or_insert(next);
        console::style(service)
            .color256(PALETTE[i % PALETTE.len()])
            .to_string()
    }

    fn finish_bars(&mut self) {
        for (_, bar) in std::mem::take(&mut self.bars) {
            bar.finish_and_clear();
        }
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
        }
    }
}

impl pipeline::e2e::Progress for Progress {
    fn start(&mut self, phase: Phase) {
        if let Some(ci) = self.ci {
            self.command(&ci.fold_start(phase, pipeline::e2e::unix_time()));
            self.open = Some(phase);
        }
        if let Ok(mut b) = self.beat.lock() {
            b.phase = Some((phase, Instant::now()));
            b.last_work = None;
        }
        match &self.multi {
            // nextest draws its own progress on the terminal: no spinner over it.
            Some(multi) if phase != Phase::Test => {
                let bar = multi.add(ProgressBar::new_spinner());
                bar.set_style(
                    ProgressStyle::with_template("{spinner} {prefix:<10} {elapsed:>4} {wide_msg}")
                        .expect("static template"),
                );
                bar.set_prefix(phase.name());
                bar.enable_steady_tick(Duration::from_millis(120));
                self.spinner = Some(bar);
            }
            _ => self.line(&format!("{:<10} started", phase.name())),
        }
    }

    fn note(&mut self, phase: Phase, line: &str) {
        match &self.spinner {
            Some(bar) => bar.set_message(line.to_owned()),
            None => self.line(&format!("{:<10} {line}", phase.name())),
        }
    }

    fn work(&mut self, phase: Phase, work: &Work) {
        if let Some(multi) = &self.multi {
            let bar = self.bars.entry(work.what.clone()).or_insert_with(|| {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "  {prefix:<16} [{bar:24}] {pos}/{len} {wide_msg}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(work.what.clone());
                bar
            });
            if let Some((done, total)) = work.done {
                bar.set_length(total);
                bar.set_position(done);
            }
            bar.set_message(work.line.clone());
            return;
        }
        if let Ok(mut b) = self.beat.lock() {
            b.last_work = Some(format!("{}: {}", work.what, work.line));
        }
        let due = self
            .printed
            .get(&work.what)
            .is_none_or(|t| t.elapsed() >= QUIET);
        if due {
            self.printed.insert(work.what.clone(), Instant::now());
            self.line(&format!(
                "{:<10} {}: {}",
                phase.name(),
                work.what,
                work.line
            ));
        }
    }

    fn service_log(&mut self, service: &str, line: &str) {
        if self.ci == Some(CiHost::GitHub) {
            // On stdout, where the runner reads commands, after one that
            // stops them: a container's `::error::` stays text.
            if self.stopped.is_none() {
                let token = format!(
                    "e2e-{:x}{:x}",
                    std::process::id(),
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_nanos())
                );
                stdout_line(&format!("::stop-commands::{token}"));
                self.stopped = Some(token);
            }
            stdout_line(&format!("{service} | {line}"));
            if let Ok(mut b) = self.beat.lock() {
                b.last_line = Instant::now();
            }
            return;
        }
        let label = match self.multi {
            Some(_) => self.label(service),
            None => service.to_owned(),
        };
        self.line(&format!("{label} | {line}"));
    }

    fn service_held(&mut self, service: &str, count: usize) {
        self.service_log(
            service,
            &format!(
                "({count} more lines not shown here; all are in the run's logs/{service}.log)"
            ),
        );
    }

    fn end(&mut self, r: &PhaseReport) {
        self.resume_commands();
        self.finish_bars();
        self.printed.clear();
        if let Ok(mut b) = self.beat.lock() {
            b.phase = None;
        }
        let mark = match r.status {
            Status::Ok => "ok",
            Status::Failed => "FAILED",
            Status::Skipped => "skipped",
            Status::Interrupted => "interrupted",
        };
        self.line(&format!(
            "{:<10} {mark} in {:.1} s: {}",
            r.phase.name(),
            r.seconds,
            r.note
        ));
        if let Some(ci) = self.ci {
            if self.open.take() == Some(r.phase) {
                self.command(&ci.fold_end(r.phase, pipeline::e2e::unix_time()));
            }
            if let Some(error) = ci.phase_error(r) {
                self.command(&error);
            }
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.resume_commands();
        self.finish_bars();
    }
}

fn stdout_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}

/// On a pipe: a line whenever the running phase has said nothing for
/// [`QUIET`], with the last work it heard of. Ends with its [`Progress`].
fn heartbeat(beat: std::sync::Weak<Mutex<Beat>>) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_secs(1));
            let Some(beat) = beat.upgrade() else {
                return;
            };
            let Ok(mut b) = beat.lock() else {
                return;
            };
            let Some((phase, since)) = b.phase else {
                continue;
            };
            if b.last_line.elapsed() < QUIET {
                continue;
            }
            b.last_line = Instant::now();
            let work = b
                .last_work
                .as_deref()
                .map(|w| format!(": {w}"))
                .unwrap_or_default();
            let _ = writeln!(
                std::io::stderr().lock(),
                "[{}] {:<10} still running ({:.0} s){work}",
                clock(),
                phase.name(),
                since.elapsed().as_secs_f64()
            );
        }
    });
}

/// UTC wall-clock time, `HH:MM:SS`.
fn clock() -> String {
    let secs = pipeline::e2e::unix_time() % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}
