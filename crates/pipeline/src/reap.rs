//! What dead runs left, and only that. A run whose policy is `purge` (the
//! default under CI, where each run has its own project) labels its
//! containers with its owner: host, boot, pid and the pid's start time, the
//! user, and when it started. The sweep (`reap`, and preflight under CI)
//! removes a labelled project when its owner is gone and it is old enough;
//! projects without the label (a developer's kept or stopped stack, anyone
//! else's) are never touched, nor another user's, nor one whose project
//! lock is held here (its run, or its reaper, is at work).

use std::time::Duration;

use compose::Labelled;

pub const RUN_LABEL: &str = "dev.cargo-e2e.run";
pub const CREATED_LABEL: &str = "dev.cargo-e2e.created";
pub const USER_LABEL: &str = "dev.cargo-e2e.user";

/// A run, as its label names it: `host/boot id/pid/start ticks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub host: String,
    pub boot: String,
    pub pid: u32,
    /// The pid's start time in clock ticks since boot (`/proc/PID/stat`):
    /// a reused pid has another.
    pub start: u64,
}

impl Owner {
    /// This process.
    pub fn current() -> Option<Owner> {
        let pid = std::process::id();
        Some(Owner {
            host: read_trimmed("/proc/sys/kernel/hostname")?,
            boot: read_trimmed("/proc/sys/kernel/random/boot_id")?,
            pid,
            start: start_ticks(pid)?,
        })
    }

    pub fn label(&self) -> String {
        format!("{}/{}/{}/{}", self.host, self.boot, self.pid, self.start)
    }

    pub fn parse(label: &str) -> Option<Owner> {
        let mut parts = label.rsplitn(4, '/');
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let boot = parts.next()?.to_owned();
        let host = parts.next()?.to_owned();
        Some(Owner {
            host,
            boot,
            pid,
            start,
        })
    }

    /// Whether the run still lives, as far as this host can tell.
    pub fn liveness(&self, here: &Owner) -> Liveness {
        if self.host != here.host {
            return Liveness::Elsewhere;
        }
        if self.boot != here.boot || start_ticks(self.pid) != Some(self.start) {
            return Liveness::Gone;
        }
        Liveness::Alive
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    Alive,
    Gone,
    /// Another host's run: only its age can tell.
    Elsewhere,
}

/// How old a project must be before the sweep removes it.
#[derive(Debug, Clone, Copy)]
pub struct Thresholds {
    /// When its run is known to be gone (this host).
    pub gone: Duration,
    /// When its run lives on another host, which cannot be asked.
    pub elsewhere: Duration,
}

impl Default for Thresholds {
    fn default() -> Thresholds {
        Thresholds {
            gone: Duration::from_secs(10 * 60),
            elsewhere: Duration::from_secs(6 * 3600),
        }
    }
}

/// What the sweep does with one project, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub project: String,
    pub owner: String,
    pub age_s: u64,
    pub remove: bool,
    pub why: String,
}

/// Judges each labelled project (`labels`: [`RUN_LABEL`], [`CREATED_LABEL`],
/// [`USER_LABEL`]) for a sweep by user `uid` on `here` at `now`.
pub fn judge(
    projects: &[Labelled],
    here: &Owner,
    uid: u32,
    now: u64,
    t: Thresholds,
) -> Vec<Decision> {
    projects
        .iter()
        .map(|p| {
            let get = |k: &str| p.labels.get(k).map(String::as_str).unwrap_or_default();
            let owner = Owner::parse(get(RUN_LABEL));
            let created: u64 = get(CREATED_LABEL).parse().unwrap_or(now);
            let age_s = now.saturating_sub(created);
            let shown = owner.as_ref().map_or_else(
                || "unknown".to_owned(),
                |o| format!("{} pid {}", o.host, o.pid),
            );
            let (remove, why) = if get(USER_LABEL) != uid.to_string() {
                (false, "another user's".to_owned())
            } else {
                match owner.as_ref().map(|o| o.liveness(here)) {
                    Some(Liveness::Alive) => (false, "its run is alive".to_owned()),
                    Some(Liveness::Gone) if age_s >= t.gone.as_secs() => {
                        (true, "its run is gone".to_owned())
                    }
                    Some(Liveness::Gone) => (
                        false,
                        format!("its run is gone, but younger than {}", human(t.gone)),
                    ),
                    Some(Liveness::Elsewhere) | None if age_s >= t.elsewhere.as_secs() => (
                        true,
                        format!(
                            "its run is on another host, older than {}",
                            human(t.elsewhere)
                        ),
                    ),
                    Some(Liveness::Elsewhere) | None => (
                        false,
                        format!(
                            "its run is on another host (cannot tell), younger than {}",
                            human(t.elsewhere)
                        ),
                    ),
                }
            };
            Decision {
                project: p.project.clone(),
                owner: shown,
                age_s,
                remove,
                why,
            }
        })
        .collect()
}

/// One sweep: lists the labelled projects, judges them, and (unless
/// `dry_run`) removes those to go, each under its project lock taken
/// without waiting (a lock held here means a run or its reaper is at work:
/// then it stays). Returns each decision with what removing it gave.
pub fn sweep(dry_run: bool, t: Thresholds) -> Result<Vec<(Decision, Option<String>)>, String> {
    let here = Owner::current().ok_or("cannot read this process's own /proc entries")?;
    let uid = nix::unistd::getuid().as_raw();
    let projects = compose::labelled_projects(RUN_LABEL, &[RUN_LABEL, CREATED_LABEL, USER_LABEL])
        .map_err(|e| e.to_string())?;
    let now = crate::config::unix_time();
    let mut out = Vec::new();
    for mut d in judge(&projects, &here, uid, now, t) {
        let mut done = None;
        if d.remove && !dry_run {
            match crate::lock::ProjectLock::acquire(&d.project, "reap", false, |_| {}) {
                Err(busy) => {
                    d.remove = false;
                    d.why = busy.to_string();
                }
                Ok(_lock) => {
                    done = Some(match compose::remove_project(&d.project) {
                        Ok(left) if left.is_empty() => "removed".to_owned(),
                        Ok(left) => format!("removed, but the engine still holds: {left}"),
                        Err(e) => format!("not removed: {e}"),
                    });
                }
            }
        }
        out.push((d, done));
    }
    Ok(out)
}

/// `90s`, `10m`, `6h`: rounded down to the unit that reads best.
pub fn human(d: Duration) -> String {
    match d.as_secs() {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s => format!("{}h", s / 3600),
    }
}

/// The labels a `purge` run puts on its containers.
pub fn labels(owner: &Owner, uid: u32, now: u64) -> Vec<(&'static str, String)> {
    vec![
        (RUN_LABEL, owner.label()),
        (CREATED_LABEL, now.to_string()),
        (USER_LABEL, uid.to_string()),
    ]
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// Field 22 of `/proc/PID/stat`, counted after the command's closing `)`
/// (the command itself may hold spaces and parentheses).
fn start_ticks(pid: u32) -> Option<u64> {
    parse_start(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

fn parse_start(stat: &str) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(name: &str, owner: &Owner, uid: u32, created: u64) -> Labelled {
        Labelled {
            project: name.into(),
            labels: labels(owner, uid, created)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            containers: 1,
        }
    }

    #[test]
    fn only_our_user_s_projects_whose_run_is_gone_and_old_enough_go() {
        let here = Owner::current().unwrap();
        assert_eq!(Owner::parse(&here.label()), Some(here.clone()));
        let uid = 1000;
        let now = 1_000_000;
        let dead = Owner {
            pid: 1,
            start: 1,
            ..here.clone()
        };
        let rebooted = Owner {
            boot: "another-boot".into(),
            ..here.clone()
        };
        let elsewhere = Owner {
            host: "runner-7".into(),
            ..here.clone()
        };
        let hour = 3600;
        let projects = [
            project("alive", &here, uid, now - 2 * hour),
            project("dead-old", &dead, uid, now - hour),
            project("dead-young", &dead, uid, now - 60),
            project("rebooted", &rebooted, uid, now - hour),
            project("other-user", &dead, 0, now - 10 * hour),
            project("elsewhere-young", &elsewhere, uid, now - hour),
            project("elsewhere-old", &elsewhere, uid, now - 7 * hour),
        ];
        let got: Vec<(String, bool)> = judge(&projects, &here, uid, now, Thresholds::default())
            .into_iter()
            .map(|d| (d.project, d.remove))
            .collect();
        let want = [
            ("alive", false),
            ("dead-old", true),
            ("dead-young", false),
            ("rebooted", true),
            ("other-user", false),
            ("elsewhere-young", false),
            ("elsewhere-old", true),
        ]
        .map(|(p, r)| (p.to_owned(), r));
        assert_eq!(got, want);
    }

    #[test]
    fn a_command_with_spaces_and_parens_does_not_shift_the_start_time() {
        let stat = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 200";
        assert_eq!(parse_start(stat), Some(987654));
        assert_eq!(parse_start("garbage"), None);
        assert!(start_ticks(std::process::id()).is_some());
        assert_eq!(start_ticks(u32::MAX), None);
    }
}
