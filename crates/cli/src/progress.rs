//! Progress of the e2e phases: a spinner per phase on a terminal, plain
//! timestamped lines otherwise (CI logs), both on stderr.

use std::io::{IsTerminal, Write as _};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::ci_log::CiHost;
use pipeline::Phase;
use pipeline::report::{PhaseReport, Status};

#[derive(Debug)]
pub struct Progress {
    spinner: Option<ProgressBar>,
    terminal: bool,
    /// GitHub Actions or GitLab CI: folds per phase, annotations.
    ci: Option<CiHost>,
    /// The phase whose fold is open (a skipped phase never opens one).
    open: Option<Phase>,
}

impl Progress {
    pub fn new(ci: Option<CiHost>) -> Progress {
        Progress {
            spinner: None,
            terminal: std::io::stderr().is_terminal(),
            ci,
            open: None,
        }
    }

    /// A line for the CI runner, which reads its commands on stdout.
    fn command(&self, line: &str) {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}").and_then(|()| out.flush());
    }

    /// Ignores write errors: a closed stderr (`| head`) must not panic the run
    /// on its way to teardown.
    fn line(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        let _ = if self.terminal {
            writeln!(err, "{text}")
        } else {
            writeln!(err, "[{}] {text}", clock())
        };
    }
}

impl pipeline::e2e::Progress for Progress {
    fn start(&mut self, phase: Phase) {
        if let Some(ci) = self.ci {
            self.command(&ci.fold_start(phase, pipeline::e2e::unix_time()));
            self.open = Some(phase);
        }
        // nextest draws its own progress on the terminal: no spinner over it.
        if self.terminal && phase != Phase::Test {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {prefix:<10} {elapsed:>4} {wide_msg}")
                    .expect("static template"),
            );
            bar.set_prefix(phase.name());
            bar.enable_steady_tick(Duration::from_millis(120));
            self.spinner = Some(bar);
        } else {
            self.line(&format!("{:<10} started", phase.name()));
        }
    }

    fn note(&mut self, phase: Phase, line: &str) {
        match &self.spinner {
            Some(bar) => bar.set_message(line.to_owned()),
            None => self.line(&format!("{:<10} {line}", phase.name())),
        }
    }

    fn end(&mut self, r: &PhaseReport) {
        if let Some(bar) = self.spinner.take() {
            bar.finish_and_clear();
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

/// UTC wall-clock time, `HH:MM:SS`.
fn clock() -> String {
    let secs = pipeline::e2e::unix_time() % 86_400;
    format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60)
}
