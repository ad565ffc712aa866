//! Progress of the e2e phases on stderr: on a terminal a spinner per phase,
//! a bar per build beside it, and the services' log lines above them,
//! coloured; on a pipe (CI logs) plain timestamped lines, and whenever a
//! phase has said nothing for a few seconds, where its work has got to (or
//! that it still runs). Under GitHub Actions the services' lines go
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

/// On a pipe, the longest a phase goes without a line.
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
    /// Each work source's latest line, and whether it is news since said.
    works: BTreeMap<String, (String, bool)>,
}

impl Progress {
    pub fn new(ci: Option<CiHost>) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let beat = Arc::new(Mutex::new(Beat {
            phase: None,
            last_line: Instant::now(),
            works: BTreeMap::new(),
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
            beat,
            stopped: None,
            colours: BTreeMap::new(),
        }
    }

    /// A line for the CI runner, which reads its commands on stdout.
    fn command(&mut self, line: &str) {
        self.resume_commands();
        stdout_line(&pipeline::secrets::redact(line));
    }

    /// Ignores write errors: a closed stderr (`| head`) must not panic the run
    /// on its way to teardown.
    fn line(&self, text: &str) {
        let text = pipeline::secrets::redact(text);
        let text = text.as_str();
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
            b.works.clear();
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
                // A count gets a bar; a build's steps, their line alone.
                let template = match work.done {
                    Some(_) => "  {prefix:<16} [{bar:24}] {pos}/{len} {wide_msg}",
                    None => "  {prefix:<16} {wide_msg}",
                };
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(template)
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
        // On a pipe the heartbeat says it, when the phase has been quiet.
        let _ = phase;
        if let Ok(mut b) = self.beat.lock() {
            b.works.insert(work.what.clone(), (work.line.clone(), true));
        }
    }

    fn service_log(&mut self, service: &str, line: &str) {
        if self.ci == Some(CiHost::GitHub) {
            // On stdout, where the runner reads commands, after one that
            // stops them: a container's `::error::` stays text.
            if self.stopped.is_none() {
                // Unguessable, as GitHub asks: std's hasher keys are random
                // per process (seeded by the OS).
                use std::hash::BuildHasher as _;
                let random = std::hash::RandomState::new().hash_one(std::time::Instant::now());
                let token = format!("e2e-{random:016x}");
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

/// On a pipe: whenever the running phase has said nothing for [`QUIET`],
/// where each of its works has got to since last said, else that it still
/// runs. Ends with its [`Progress`].
fn heartbeat(beat: std::sync::Weak<Mutex<Beat>>) {
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(Duration::from_millis(500));
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
            let mut err = std::io::stderr().lock();
            let mut said = false;
            for (what, (line, news)) in b.works.iter_mut().filter(|(_, (_, news))| *news) {
                *news = false;
                said = true;
                let _ = writeln!(err, "[{}] {:<10} {what}: {line}", clock(), phase.name());
            }
            if !said {
                let _ = writeln!(
                    err,
                    "[{}] {:<10} still running ({:.0} s)",
                    clock(),
                    phase.name(),
                    since.elapsed().as_secs_f64()
                );
            }
        }
    });
}

/// UTC wall-clock time, `HH:MM:SS`.
fn clock() -> String {
    let secs = pipeline::e2e::unix_time() % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}
