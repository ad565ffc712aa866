//! The services' log lines while the stack starts: one `compose logs
//! --follow` for the project (it takes up containers created after it
//! started, as a level-by-level `up` makes them, but exits at once when the
//! project has none yet: it starts once `up` made one, and again, from the
//! last line it gave, if it ended), its lines read on a thread and handed to
//! the wait at each poll, each service's within a rate.

use std::collections::BTreeMap;
use std::sync::mpsc::{Receiver, channel};
use std::time::{Instant, SystemTime};

use process::{Group, Stream};

use crate::error::Result;
use crate::project::Project;

/// Lines a service may show at once, then per second after.
const BURST: f64 = 20.0;
const PER_SECOND: f64 = 10.0;

/// One line a container printed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    /// The container as Compose prefixes its lines (`db-1`).
    pub container: String,
    pub at: Option<SystemTime>,
    pub text: String,
}

/// The project's log lines as they come.
pub(super) struct Follower {
    group: Group,
    lines: Receiver<Line>,
    /// The newest line seen: where a follower started again picks up.
    newest: Option<SystemTime>,
    /// When each container's newest line was printed (no line twice).
    seen: BTreeMap<String, SystemTime>,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Follower")
    }
}

impl Follower {
    /// Follows every container of the project from `since` on; stopped
    /// when dropped.
    pub(super) fn start(project: &Project, since: SystemTime) -> Result<Follower> {
        let (group, lines) = Follower::spawn(project, since)?;
        Ok(Follower {
            group,
            lines,
            newest: None,
            seen: BTreeMap::new(),
        })
    }

    fn spawn(project: &Project, since: SystemTime) -> Result<(Group, Receiver<Line>)> {
        // Seconds since the epoch with their nanoseconds, as Docker reads them.
        let since = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| format!("{}.{:09}", d.as_secs(), d.subsec_nanos()))
            .unwrap_or_default();
        let cmd = project.compose([
            "logs".to_owned(),
            "--follow".into(),
            "--no-color".into(),
            "--timestamps".into(),
            "--since".into(),
            since,
        ]);
        let (tx, rx) = channel();
        let group =
            cmd.start_group_streaming(&project.spec.dir, false, Stream::Stdout, move |l| {
                if let Some(line) = parse(l) {
                    let _ = tx.send(line);
                }
            })?;
        Ok((group, rx))
    }

    /// The lines that came since the last call, each once; a follower that
    /// ended is started again from the newest line.
    pub(super) fn take(&mut self, project: &Project) -> Vec<Line> {
        let mut lines: Vec<Line> = self.lines.try_iter().collect();
        if self.group.try_wait().ok().flatten().is_some() {
            lines.extend(self.lines.try_iter());
            let from = self.newest.unwrap_or_else(SystemTime::now);
            if let Ok((group, rx)) = Follower::spawn(project, from) {
                (self.group, self.lines) = (group, rx);
            }
        }
        lines.retain(|l| {
            let Some(at) = l.at else { return true };
            self.newest = Some(self.newest.map_or(at, |n| n.max(at)));
            let seen = self
                .seen
                .entry(l.container.clone())
                .or_insert(SystemTime::UNIX_EPOCH);
            let new = at > *seen;
            *seen = (*seen).max(at);
            new
        });
        lines
    }
}

/// `db-1  | 2026-12-07T17:30:06.168632653Z the line`, as `compose logs
/// --timestamps` writes it.
fn parse(line: &str) -> Option<Line> {
    let (container, rest) = split_prefix(line)?;
    let (at, text) = match rest.split_once(' ') {
        Some((stamp, text)) => {
            match time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339)
            {
                Ok(t) => (Some(SystemTime::from(t)), text),
                Err(_) => (None, rest),
            }
        }
        None => (None, rest),
    };
    Some(Line {
        container: container.to_owned(),
        at,
        text: text.to_owned(),
    })
}

/// `db-1  | the line` as Compose prefixes a line with its container.
pub(crate) fn split_prefix(line: &str) -> Option<(&str, &str)> {
    let (name, rest) = line.split_once(" | ")?;
    let rest = rest.strip_prefix(' ').unwrap_or(rest);
    Some((name.trim(), rest))
}

/// The service a `compose logs` prefix names: `<service>-<n>`, else a
/// container of that name (`container_name:`), else the prefix itself.
pub(crate) fn service_of<'a>(
    prefix: &'a str,
    services: &'a [String],
    named: &'a BTreeMap<String, String>,
) -> &'a str {
    if let Some(service) = named.get(prefix) {
        return service;
    }
    match prefix.rsplit_once('-') {
        Some((service, n))
            if n.bytes().all(|b| b.is_ascii_digit()) && services.iter().any(|s| s == service) =>
        {
            service
        }
        _ => prefix,
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
    fn a_prefix_names_its_service() {
        let services = ["db".to_owned(), "api-v2".to_owned()];
        let named = BTreeMap::from([("custom".to_owned(), "db".to_owned())]);
        assert_eq!(
            split_prefix("db-1  | ready to accept"),
            Some(("db-1", "ready to accept"))
        );
        assert_eq!(split_prefix("no prefix here"), None);
        let line = parse("db-1  | 2026-12-07T17:30:06.5Z ready | to accept").unwrap();
        assert_eq!(
            (line.container.as_str(), line.text.as_str()),
            ("db-1", "ready | to accept")
        );
        let at = line
            .at
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap();
        assert_eq!(at.as_millis(), 1_796_664_606_500);
        assert_eq!(service_of("db-1", &services, &named), "db");
        assert_eq!(service_of("api-v2-12", &services, &named), "api-v2");
        assert_eq!(service_of("custom", &services, &named), "db");
        assert_eq!(service_of("other-1", &services, &named), "other-1");
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
