//! The services' log lines while the stack starts: each container the wait
//! lists is followed on its own (`docker logs --follow --since`, from the
//! start of `up`), its lines read on a thread and handed to the wait at each
//! poll, each service's within a rate. (One `compose logs --follow` for the
//! project missed containers started in its first second on Engine 20.10,
//! and exits at once in a project that has none yet.)

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::{Instant, SystemTime};

use process::{Group, Stream};

use crate::project::{Container, Project};

/// Lines a service may show at once, then per second after.
const BURST: f64 = 20.0;
const PER_SECOND: f64 = 10.0;

/// One line a container printed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    pub service: String,
    pub at: Option<SystemTime>,
    pub text: String,
}

/// The containers' log lines as they come.
pub(super) struct Follower {
    /// `docker logs --since`: seconds since the epoch with their nanoseconds.
    since: String,
    /// The containers followed (by ID); each ends with its container, or
    /// when dropped.
    followed: BTreeMap<String, Group>,
    tx: Sender<Line>,
    lines: Receiver<Line>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Follower")
    }
}

impl Follower {
    /// A follower of the lines printed from `since` on.
    pub(super) fn new(since: SystemTime) -> Follower {
        let since = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
            .unwrap_or_default();
        let (tx, lines) = channel();
        Follower {
            since,
            followed: BTreeMap::new(),
            tx,
            lines,
        }
    }

    /// Follows each of `containers` not followed yet (a new one `up` made,
    /// or one it started again); one that cannot be followed is left out.
    pub(super) fn follow(&mut self, project: &Project, containers: &[Container]) {
        for c in containers {
            if self.followed.contains_key(&c.id) || c.state == "created" {
                continue;
            }
            let cmd = crate::docker([
                "logs",
                "--follow",
                "--timestamps",
                "--since",
                &self.since,
                &c.id,
            ]);
            let (tx, service) = (self.tx.clone(), c.service.clone());
            // The container's stdout and stderr, as the two streams of `docker logs`.
            if let Ok(group) =
                cmd.start_group_streaming(&project.spec.dir, false, Stream::Both, move |l| {
                    let _ = tx.send(parse(&service, l));
                })
            {
                self.followed.insert(c.id.clone(), group);
            }
        }
    }

    /// The lines that came since the last call.
    pub(super) fn take(&self) -> Vec<Line> {
        self.lines.try_iter().collect()
    }
}

/// `2026-12-07T17:30:06.168632653Z the line`, as `docker logs --timestamps`
/// writes it.
fn parse(service: &str, line: &str) -> Line {
    let (at, text) = match line.split_once(' ') {
        Some((stamp, text)) => {
            match time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
            {
                Ok(t) => (Some(SystemTime::from(t)), text),
                Err(_) => (None, line),
            }
        }
        None => (None, line),
    };
    Line {
        service: service.to_owned(),
        at,
        text: text.to_owned(),
    }
}

/// Each service's share of the screen: a burst, then a steady rate; what
/// goes over is counted, to be said when it next shows a line.
#[derive(Debug, Default)]
pub(super) struct Rate {
    buckets: BTreeMap<String, (f64, Instant, usize)>,
}

impl Rate {
    /// Whether a line of `service` shows now; `Some(n)`: show, saying first
    /// that `n` lines were held back since its last one.
    pub(super) fn admit(&mut self, service: &str, now: Instant) -> Option<usize> {
        let (tokens, last, held) = self
            .buckets
            .entry(service.to_owned())
            .or_insert((BURST, now, 0));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * PER_SECOND).min(BURST);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Some(std::mem::take(held))
        } else {
            *held += 1;
            None
        }
    }

    /// Lines held back and not yet said, by service (said at the end).
    pub(super) fn held(&mut self) -> Vec<(String, usize)> {
        self.buckets
            .iter_mut()
            .filter(|(_, (_, _, held))| *held > 0)
            .map(|(s, (_, _, held))| (s.clone(), std::mem::take(held)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_reads_as_its_time_and_text() {
        let line = parse("db", "2026-12-07T17:30:06.5Z ready | to accept");
        assert_eq!(
            (line.service.as_str(), line.text.as_str()),
            ("db", "ready | to accept")
        );
        assert_eq!(parse("db", "no stamp").text, "no stamp");
        let at = line
            .at
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(at.as_millis(), 1_796_664_606_500);
    }

    #[test]
    fn a_chatty_service_is_held_to_its_rate_and_told_how_many_waited() {
        let mut rate = Rate::default();
        let t0 = Instant::now();
        let shown = (0..30).filter(|_| rate.admit("db", t0).is_some()).count();
        assert_eq!(shown, BURST as usize);
        // Another service has its own share.
        assert_eq!(rate.admit("api", t0), Some(0));
        // A second later, ten more fit; the first says what was held back.
        let t1 = t0 + std::time::Duration::from_secs(1);
        assert_eq!(rate.admit("db", t1), Some(10));
        let more = (0..10).filter(|_| rate.admit("db", t1).is_some()).count();
        assert_eq!(more, 9);
        assert_eq!(rate.held(), [("db".to_owned(), 1)]);
    }
}
