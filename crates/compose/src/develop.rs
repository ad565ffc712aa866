//! Compose's `develop.watch` rules, as `compose config` resolves them
//! (absolute `path`), and what applying one to a running container takes:
//! files copied in (one tar stream into `docker cp -`, as Compose's own
//! watch copies through the API), files removed (`rm -rf` in the container,
//! as Compose does), a restart, an exec.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::project::Project;

/// A service's `develop:` section.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Develop {
    #[serde(default)]
    pub watch: Vec<WatchRule>,
}

/// One `develop.watch` rule.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct WatchRule {
    /// Absolute, as `compose config` writes it.
    pub path: Utf8PathBuf,
    pub action: Action,
    /// Where a sync puts `path` in the container.
    #[serde(default)]
    pub target: Option<String>,
    /// Patterns relative to `path`, in `.dockerignore` syntax.
    #[serde(default)]
    pub ignore: Vec<String>,
    #[serde(default)]
    pub exec: Option<Hook>,
    #[serde(default)]
    pub initial_sync: bool,
}

/// What a rule does with a change it matches.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    #[serde(rename = "sync")]
    Sync,
    #[serde(rename = "sync+restart")]
    SyncRestart,
    #[serde(rename = "sync+exec")]
    SyncExec,
    #[serde(rename = "rebuild")]
    Rebuild,
    #[serde(rename = "restart")]
    Restart,
}

impl Action {
    /// Whether it copies files into the container.
    pub fn syncs(self) -> bool {
        matches!(self, Action::Sync | Action::SyncRestart | Action::SyncExec)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Sync => "sync",
            Action::SyncRestart => "sync+restart",
            Action::SyncExec => "sync+exec",
            Action::Rebuild => "rebuild",
            Action::Restart => "restart",
        })
    }
}

/// `sync+exec`'s command and how it runs.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Hook {
    #[serde(default)]
    pub command: Option<Vec<String>>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub privileged: bool,
    /// `KEY: value` (a value of `null`: the variable as the container has it).
    #[serde(default)]
    pub environment: BTreeMap<String, Option<String>>,
}

/// A file or folder to copy from here to a path in the container.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Copy {
    pub host: Utf8PathBuf,
    pub container: String,
}

impl Project {
    /// Copies `files` into a running container: one tar stream, each entry at
    /// its full path in the container (folders on the way are made), owner
    /// and mode as here. What is gone here is removed there instead.
    /// Returns how many were copied and how many removed.
    pub fn sync_into(&self, container: &str, files: &[Copy]) -> Result<(usize, usize)> {
        let (present, gone): (Vec<&Copy>, Vec<&Copy>) = files
            .iter()
            .partition(|c| c.host.symlink_metadata().is_ok());
        if !present.is_empty() {
            let mut archive = tar::Builder::new(Vec::new());
            archive.follow_symlinks(false);
            for c in &present {
                let name = c.container.trim_start_matches('/');
                let added = if c.host.is_dir() {
                    archive.append_dir_all(name, &c.host)
                } else {
                    archive.append_path_with_name(&c.host, name)
                };
                added.map_err(|e| Error::Parse {
                    command: format!("packing {} for {container}", c.host),
                    detail: e.to_string(),
                })?;
            }
            let tar = archive.into_inner().map_err(|e| Error::Parse {
                command: format!("packing files for {container}"),
                detail: e.to_string(),
            })?;
            // `-a`: owners as here, as Compose's own sync copies them.
            crate::docker(["cp", "-a", "-", &format!("{container}:/")])
                .output_with_input(&self.spec.dir, tar)?;
        }
        if !gone.is_empty() {
            let args = ["exec", container, "rm", "-rf", "--"]
                .map(str::to_owned)
                .into_iter()
                .chain(gone.iter().map(|c| c.container.clone()));
            crate::docker(args).output(&self.spec.dir)?;
        }
        Ok((present.len(), gone.len()))
    }

    /// Restarts these containers (what `compose restart --no-deps` does to
    /// a service's, without Compose's own start-up, ~0.2 s); one whose PID 1
    /// ignores its stop signal is killed first instead of waiting out the
    /// grace. Returns the services killed so.
    pub fn restart(&self, running: Vec<String>, grace: Duration) -> Result<Vec<String>> {
        let killed = self.kill_deaf(running.clone())?;
        let args = ["restart", "-t", &grace.as_secs().to_string()]
            .map(str::to_owned)
            .into_iter()
            .chain(running);
        crate::docker(args).output(&self.spec.dir)?;
        Ok(killed)
    }

    /// Runs a `sync+exec` hook in a running container; its output on failure.
    pub fn exec_hook(&self, container: &str, hook: &Hook) -> Result<()> {
        let Some(command) = hook.command.as_ref().filter(|c| !c.is_empty()) else {
            return Ok(());
        };
        let mut args = vec!["exec".to_owned()];
        if let Some(u) = &hook.user {
            args.extend(["--user".to_owned(), u.clone()]);
        }
        if let Some(w) = &hook.working_dir {
            args.extend(["--workdir".to_owned(), w.clone()]);
        }
        if hook.privileged {
            args.push("--privileged".to_owned());
        }
        for (k, v) in &hook.environment {
            args.push("--env".to_owned());
            args.push(v.as_ref().map_or_else(|| k.clone(), |v| format!("{k}={v}")));
        }
        args.push(container.to_owned());
        args.extend(command.iter().cloned());
        crate::docker(args).output(&self.spec.dir)?;
        Ok(())
    }
}

/// How a service took a change it sees through a bind mount.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settled {
    /// Lines its containers printed since the change (a reloader's).
    pub lines: usize,
    /// From the change until it was quiet.
    pub seconds: f64,
    /// Still printing when the wait gave up.
    pub busy: bool,
}

/// How long a service may take to say anything about a change it sees
/// through a bind mount: a polling reloader (Flask's) looks once a second,
/// and on a loaded machine its word came later than 1.5 s.
pub const FIRST_WORD: Duration = Duration::from_millis(2000);
/// How long it must then stay quiet to count as reloaded.
pub const QUIET: Duration = Duration::from_millis(500);
/// The most a reload is waited for.
const MOST: Duration = Duration::from_secs(15);

impl Project {
    /// Waits until the containers have taken a change made at `since`: a
    /// service that says nothing within [`FIRST_WORD`] reloads nothing; one
    /// that speaks (a reloader restarting) is waited for until it has been
    /// quiet for [`QUIET`]. Then readiness is judged again.
    pub fn settle(&self, containers: &[String], since: SystemTime) -> Result<Settled> {
        let stamp = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let since_arg = format!("{stamp:.3}");
        let (mut lines, mut last_change) = (0, since);
        loop {
            let mut now_lines = 0;
            for id in containers {
                let out =
                    crate::docker(["logs", "--since", &since_arg, id]).text_both(&self.spec.dir)?;
                now_lines += out.lines().count();
            }
            let now = SystemTime::now();
            if now_lines != lines {
                (lines, last_change) = (now_lines, now);
            }
            let waited = now.duration_since(since).unwrap_or_default();
            let quiet = now.duration_since(last_change).unwrap_or_default();
            let done = (lines == 0 && waited >= FIRST_WORD) || (lines > 0 && quiet >= QUIET);
            if done || waited >= MOST || process::interrupt::is_requested() {
                return Ok(Settled {
                    lines,
                    seconds: last_change
                        .duration_since(since)
                        .unwrap_or_default()
                        .as_secs_f64(),
                    busy: !done,
                });
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Where a changed file under a rule's `path` lands in the container, or
/// `None` when the rule has no target (a `rebuild` or `restart` rule).
pub fn target_of(rule: &WatchRule, file: &Utf8Path) -> Option<String> {
    let target = rule.target.as_deref()?;
    let rel = file.strip_prefix(&rule.path).ok()?;
    Some(if rel.as_str().is_empty() {
        target.to_owned()
    } else {
        format!("{}/{rel}", target.trim_end_matches('/'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_read_as_compose_config_prints_them() {
        let json = serde_json::json!({"watch": [
            {"path": "/w/src", "action": "sync", "target": "/app/src",
             "exec": {"command": null}, "ignore": ["node_modules/"]},
            {"path": "/w/x", "action": "sync+exec", "target": "/x",
             "exec": {"command": ["kill", "-HUP", "1"], "environment": {"A": "1", "B": null}}},
            {"path": "/w/r", "action": "restart", "initial_sync": true},
            {"path": "/w/c", "action": "sync+restart", "target": "/etc/c"},
            {"path": "/w/package.json", "action": "rebuild"}
        ]});
        let d: Develop = serde_json::from_value(json).unwrap();
        let actions: Vec<Action> = d.watch.iter().map(|r| r.action).collect();
        assert_eq!(
            actions,
            [
                Action::Sync,
                Action::SyncExec,
                Action::Restart,
                Action::SyncRestart,
                Action::Rebuild
            ]
        );
        let hook = d.watch[1].exec.as_ref().unwrap();
        assert_eq!(hook.environment["B"], None);
        assert!(d.watch[2].initial_sync);
        assert_eq!(
            target_of(&d.watch[0], Utf8Path::new("/w/src/a/b.js")).as_deref(),
            Some("/app/src/a/b.js")
        );
        assert_eq!(
            target_of(&d.watch[3], Utf8Path::new("/w/c")).as_deref(),
            Some("/etc/c")
        );
        assert_eq!(
            target_of(&d.watch[4], Utf8Path::new("/w/package.json")),
            None
        );
    }
}
