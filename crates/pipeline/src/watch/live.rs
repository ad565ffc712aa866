//! What reaches a running container without an image: Compose's
//! `develop.watch` rules (matched as Compose matches them) and bind mounts.

use std::collections::{BTreeMap, BTreeSet};

use build_context::Matcher;
use camino::{Utf8Path, Utf8PathBuf};
use compose::develop::{Action, Copy, Hook, WatchRule};

use super::{Map, canonical};

/// A service's `develop.watch` rule, with everything it ignores: its own
/// patterns (relative to its path) and its build's ignore file.
#[derive(Debug)]
pub(super) struct Rule {
    pub(super) service: String,
    /// Its place among the service's rules (one exec per rule and cycle).
    pub(super) index: usize,
    pub(super) rule: WatchRule,
    pub(super) ignore: Matcher,
    pub(super) context: Option<(Utf8PathBuf, Matcher)>,
}

impl Rule {
    /// Whether a change of `path` is this rule's (Compose's matching: under
    /// its path, not ignored by its patterns, the build's ignore file, `.git`
    /// or an editor's temporary file).
    pub(super) fn matches(&self, path: &Utf8Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.rule.path) else {
            return false;
        };
        let excluded = |m: &Matcher, rel: &str| {
            !rel.is_empty() && m.decide_walked(rel).is_ok_and(|(d, _)| d.excluded)
        };
        if excluded(&self.ignore, rel.as_str()) || path.file_name().is_some_and(editor_temporary) {
            return false;
        }
        !self.context.as_ref().is_some_and(|(root, m)| {
            path.strip_prefix(root)
                .is_ok_and(|rel| excluded(m, rel.as_str()))
        })
    }
}

/// An editor's swap, backup or temporary file (Vim, Emacs, JetBrains, gedit),
/// which Compose's watch ignores too.
fn editor_temporary(name: &str) -> bool {
    name.ends_with('~')
        || name == "4913"
        || name.starts_with(".#")
        || (name.len() > 1 && name.starts_with('#') && name.ends_with('#'))
        || (name.starts_with('.') && [".swp", ".swx", ".swo"].iter().any(|e| name.ends_with(e)))
        || name.ends_with("___jb_tmp___")
        || name.ends_with("___jb_old___")
        || name.starts_with(".goutputstream-")
}

/// A bind mount of a service: a host path its containers see live.
#[derive(Debug)]
pub(super) struct Mount {
    pub(super) service: String,
    pub(super) source: Utf8PathBuf,
    /// Parts of `source` another mount hides in the container.
    pub(super) masked: Vec<Utf8PathBuf>,
}

impl Mount {
    /// Whether the container sees `path` (canonical) through this mount.
    pub(super) fn shows(&self, path: &Utf8Path) -> bool {
        path.starts_with(&self.source) && !self.masked.iter().any(|m| path.starts_with(m))
    }
}

/// What a cycle does to running containers, without an image: Compose's
/// `develop.watch` actions, and the services that see a change through a
/// bind mount. Applied after the cycle's build and `up`, then those
/// services are judged ready again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Files to copy into each service's containers (removed there when gone here).
    pub sync: BTreeMap<String, BTreeSet<Copy>>,
    pub restart: BTreeSet<String>,
    /// `sync+exec` hooks, by service and rule (each runs once per cycle).
    pub exec: BTreeMap<String, BTreeMap<usize, Hook>>,
    /// Services a changed file reaches through a bind mount.
    pub mounted: BTreeSet<String>,
    /// When the first change of the cycle was seen (a reloader may speak
    /// before the cycle starts).
    pub changed_at: Option<std::time::SystemTime>,
}

impl Live {
    pub fn is_empty(&self) -> bool {
        self.sync.is_empty()
            && self.restart.is_empty()
            && self.exec.is_empty()
            && self.mounted.is_empty()
    }

    /// Adds `other`'s work to this.
    pub fn merge(&mut self, other: Live) {
        for (service, copies) in other.sync {
            self.sync.entry(service).or_default().extend(copies);
        }
        self.restart.extend(other.restart);
        for (service, hooks) in other.exec {
            self.exec.entry(service).or_default().extend(hooks);
        }
        self.mounted.extend(other.mounted);
        self.changed_at = self.changed_at.or(other.changed_at);
    }

    /// Every service it touches.
    pub fn services(&self) -> BTreeSet<String> {
        let mut out: BTreeSet<String> = self.sync.keys().cloned().collect();
        out.extend(self.restart.iter().cloned());
        out.extend(self.exec.keys().cloned());
        out.extend(self.mounted.iter().cloned());
        out
    }
}

impl Map {
    /// Adds what a change of `path` does to running containers: the syncs,
    /// restarts and execs of the develop rules it matches, and the services
    /// that mount it. A sync skips a path the service also mounts (it is
    /// there already; copying it would write the file onto itself).
    pub fn live(&self, path: &Utf8Path, live: &mut Live) {
        let path = canonical(path);
        let mut developed: BTreeSet<&str> = BTreeSet::new();
        for r in self.rules.iter().filter(|r| r.matches(&path)) {
            let service = r.service.clone();
            let mounted = self
                .mounts
                .iter()
                .any(|m| m.service == service && m.shows(&path));
            match r.rule.action {
                Action::Rebuild => continue,
                Action::Restart => {
                    live.restart.insert(service.clone());
                }
                action => {
                    if let Some(target) = compose::develop::target_of(&r.rule, &path)
                        && !mounted
                    {
                        live.sync.entry(service.clone()).or_default().insert(Copy {
                            host: path.clone(),
                            container: target,
                        });
                    }
                    if action == Action::SyncRestart {
                        live.restart.insert(service.clone());
                    }
                    if action == Action::SyncExec
                        && let Some(hook) = &r.rule.exec
                    {
                        live.exec
                            .entry(service.clone())
                            .or_default()
                            .insert(r.index, hook.clone());
                    }
                }
            }
            developed.insert(&r.service);
        }
        for m in &self.mounts {
            if m.shows(&path) && !developed.contains(m.service.as_str()) {
                live.mounted.insert(m.service.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(action: Action, ignore: &[&str], context_ignore: Option<&[&str]>) -> Rule {
        Rule {
            service: "web".into(),
            index: 0,
            rule: WatchRule {
                path: "/w/src".into(),
                action,
                target: Some("/app/src".into()),
                ignore: ignore.iter().map(|s| (*s).to_owned()).collect(),
                exec: None,
                initial_sync: false,
            },
            ignore: Matcher::from_patterns(ignore).unwrap(),
            context: context_ignore.map(|p| ("/w".into(), Matcher::from_patterns(p).unwrap())),
        }
    }

    #[test]
    fn a_rule_matches_as_compose_s_watch_does() {
        let r = rule(
            Action::Sync,
            &["node_modules/", "*.log"],
            Some(&["src/gen"]),
        );
        let m = |p: &str| r.matches(Utf8Path::new(p));
        assert!(m("/w/src/app.js"));
        assert!(m("/w/src/a/b/c.js"));
        assert!(m("/w/src"), "the rule's own path");
        assert!(!m("/w/srcx/app.js"), "a sibling that shares the prefix");
        assert!(!m("/w/other.js"));
        // Its ignore patterns are relative to its path, folders and all below.
        assert!(!m("/w/src/node_modules/x/index.js"));
        assert!(!m("/w/src/debug.log"));
        // The build's ignore file, relative to the context.
        assert!(!m("/w/src/gen/out.js"));
        // Editors' temporary files.
        for name in [
            ".app.js.swp",
            "app.js~",
            "#app.js#",
            ".#app.js",
            "4913",
            "a___jb_tmp___",
        ] {
            assert!(!m(&format!("/w/src/{name}")), "{name}");
        }
        assert!(m("/w/src/~notbackup.js"));
    }
}
