//! What a changed file means to a watched run: a file some service's build
//! transfers (its context, after the ignore file, only the paths its
//! Dockerfile names), the sources of a staged binary or of the tests, the
//! configuration, or nothing; and what reaches a running container without
//! an image: a file a `develop.watch` rule syncs (or restarts or execs for),
//! a file a bind mount shows it. The loop that watches lives in the CLI;
//! this is the map it asks.

use std::collections::{BTreeMap, BTreeSet};

use build_context::dockerfile::BuildInputs;
use build_context::{Context, Matcher};
use camino::{Utf8Path, Utf8PathBuf};
use compose::develop::Action;

use crate::e2e::Options;

mod live;
mod packages;
pub use live::Live;
use live::{Mount, Rule};
use packages::{Package, closure, packages};

/// Why a changed path matters, or not.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Change {
    /// The config or a compose file: everything may differ.
    Config,
    /// A file this service's build transfers.
    Service(String),
    /// The sources of a binary staged into a context.
    Staged(String),
    /// A test package's sources.
    Tests(String),
    /// A service's `develop.watch` rule matched: the running container is
    /// updated (sync, restart, exec) instead of its image built.
    Develop(String, Action),
    /// A service mounts it from here: the running container sees it already.
    Mounted(String),
    /// Another crate of the workspace that the tests or a staged binary
    /// build on (one neither uses is `Nothing`).
    Crate(String),
    /// The workspace's own manifest, lock file or cargo config: every
    /// cargo build may differ.
    Manifest,
    /// Nothing the run uses.
    Nothing,
    /// The run's own output (target, staged binaries, certificates): never a cause.
    Output,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Config => f.write_str("config"),
            Change::Service(s) => write!(f, "sent by {s}'s build"),
            Change::Develop(s, a) => write!(f, "{s}'s develop.watch {a}"),
            Change::Mounted(s) => write!(f, "mounted by {s}"),
            Change::Staged(p) => write!(f, "staged binary {p}"),
            Change::Tests(p) => write!(f, "tests {p}"),
            Change::Crate(p) => write!(f, "crate {p}"),
            Change::Manifest => f.write_str("the workspace's manifest"),
            Change::Nothing => f.write_str("nothing uses it"),
            Change::Output => f.write_str("the run's own output"),
        }
    }
}

#[derive(Debug)]
struct Sent {
    service: String,
    root: Utf8PathBuf,
    ignore: Matcher,
    /// `None`: the whole context after the ignore file.
    include: Option<Matcher>,
}

/// The map from a path to what it changes, made once per configuration.
#[derive(Debug)]
pub struct Map {
    config_files: BTreeSet<Utf8PathBuf>,
    outputs: Vec<Utf8PathBuf>,
    sent: Vec<Sent>,
    rules: Vec<Rule>,
    mounts: Vec<Mount>,
    /// The staged binaries, where staging copies them.
    staged_outputs: Vec<Utf8PathBuf>,
    /// (manifest folder, package, what it is), longest folder first.
    crates: Vec<(Utf8PathBuf, String, Change)>,
    /// The workspace's own manifest, lock file and cargo config.
    workspace_files: Vec<Utf8PathBuf>,
    /// The packages the test binaries build from (the test packages and
    /// what they depend on in the workspace), and those of the staged binaries.
    tests_use: BTreeSet<String>,
    staged_use: BTreeSet<String>,
}

/// What a change makes a cycle build again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Effects {
    /// The staged binaries (cargo decides which changed).
    pub stage: bool,
    /// The test binaries.
    pub tests: bool,
}

impl Map {
    /// Reads the stack's build contexts and Dockerfiles, and the workspace's
    /// packages (`cargo metadata --no-deps`).
    pub fn new(opts: &Options) -> crate::Result<Map> {
        let c = &opts.config;
        let project = compose::Project::load(c.project_spec(Some(opts.project.clone())))
            .map_err(|e| crate::Error::BadInput(format!("the compose stack: {e}")))?;
        let mut config_files: BTreeSet<Utf8PathBuf> = BTreeSet::new();
        config_files.insert(canonical(&c.path));
        for f in &c.compose.files {
            config_files.insert(canonical(&c.resolve(f)));
        }
        let mut outputs = vec![canonical(&opts.workspace.target_dir)];
        let staged_outputs = c
            .stage
            .iter()
            .map(|s| canonical(&c.resolve(&s.to)).join(&s.package))
            .collect();
        for s in &c.stage {
            outputs.push(canonical(&c.resolve(&s.to)));
        }
        if let Some((dir, ca_key_dir)) = c.certs_folders() {
            outputs.push(canonical(&dir));
            outputs.push(canonical(&ca_key_dir));
        }
        let mut sent = Vec::new();
        let mut ignores: BTreeMap<String, (Utf8PathBuf, Matcher)> = BTreeMap::new();
        for (service, root, dockerfile) in project.stack.build_contexts() {
            let ctx = Context::open(root, Some(&dockerfile))
                .map_err(|e| crate::Error::BadInput(e.to_string()))?;
            let inputs = BuildInputs::from_compose(&project.stack.service_config(service)["build"]);
            let usage = ctx
                .usage(&inputs)
                .map_err(|e| crate::Error::BadInput(e.to_string()))?;
            let include = build_context::sent::include_patterns(&ctx.root, &usage)
                .map(|p| Matcher::from_patterns(&p))
                .transpose()
                .map_err(|b| {
                    crate::Error::BadInput(format!("{dockerfile}: `{}`: {}", b.pattern, b.error))
                })?;
            config_files.insert(canonical(&dockerfile));
            ignores.insert(
                service.to_owned(),
                (ctx.root.clone(), ctx.ignore.matcher.clone()),
            );
            sent.push(Sent {
                service: service.to_owned(),
                root: ctx.root.clone(),
                ignore: ctx.ignore.matcher.clone(),
                include,
            });
        }
        let mut rules = Vec::new();
        for (service, s) in &project.stack.services {
            let develop = s.develop.iter().flat_map(|d| d.watch.iter());
            for (index, rule) in develop.enumerate() {
                let ignore = Matcher::from_patterns(&rule.ignore).map_err(|b| {
                    crate::Error::BadInput(format!(
                        "{service}'s develop.watch rule for {}: ignore `{}`: {}",
                        rule.path, b.pattern, b.error
                    ))
                })?;
                let mut rule = rule.clone();
                rule.path = canonical(&rule.path);
                rules.push(Rule {
                    service: service.clone(),
                    index,
                    rule,
                    ignore,
                    context: ignores.get(service).cloned(),
                });
            }
        }
        let mounts = project
            .stack
            .bind_mounts()
            .into_iter()
            .map(|b| {
                let source = canonical(Utf8Path::new(&b.source));
                // Another mount deeper in the container hides that part of
                // this one (`- /app/node_modules` over `.:/app`).
                let volumes = project.stack.services.get(&b.service);
                let masked = volumes
                    .into_iter()
                    .flat_map(|s| s.volumes.iter())
                    .filter_map(|v| {
                        let rel = Utf8Path::new(&v.target).strip_prefix(&b.target).ok()?;
                        (!rel.as_str().is_empty()).then(|| source.join(rel))
                    })
                    .collect();
                Mount {
                    service: b.service,
                    source,
                    masked,
                }
            })
            .collect();
        let staged: BTreeSet<&str> = c.stage.iter().map(|s| s.package.as_str()).collect();
        let packages = packages(&opts.workspace.root)?;
        // No test packages named: nextest builds the whole workspace's tests.
        let tests: BTreeSet<&str> = if c.tests.packages.is_empty() {
            packages.iter().map(|p| p.name.as_str()).collect()
        } else {
            c.tests.packages.iter().map(String::as_str).collect()
        };
        let tests_use = closure(&packages, &tests);
        let staged_use = closure(&packages, &staged);
        let mut crates = Vec::new();
        for Package { name, dir, .. } in &packages {
            let (name, dir) = (name.clone(), dir.clone());
            let kind = if tests.contains(name.as_str()) {
                Change::Tests(name.clone())
            } else if staged.contains(name.as_str()) {
                Change::Staged(name.clone())
            } else if tests_use.contains(&name) || staged_use.contains(&name) {
                Change::Crate(name.clone())
            } else {
                Change::Nothing
            };
            crates.push((dir, name, kind));
        }
        crates.sort_by_key(|c| std::cmp::Reverse(c.0.as_str().len()));
        let root = canonical(&opts.workspace.root);
        let workspace_files = ["Cargo.toml", "Cargo.lock", ".cargo"]
            .map(|f| root.join(f))
            .to_vec();
        Ok(Map {
            config_files,
            outputs,
            sent,
            rules,
            mounts,
            staged_outputs,
            crates,
            workspace_files,
            tests_use,
            staged_use,
        })
    }

    /// What a change makes a cycle build again (beside the images, which
    /// the fingerprints decide).
    pub fn effects(&self, change: &Change) -> Effects {
        let uses = |p: &String| Effects {
            stage: self.staged_use.contains(p),
            tests: self.tests_use.contains(p),
        };
        match change {
            Change::Staged(p) => Effects {
                stage: true,
                ..uses(p)
            },
            Change::Tests(p) => Effects {
                tests: true,
                ..uses(p)
            },
            Change::Crate(p) => uses(p),
            Change::Manifest => Effects {
                stage: true,
                tests: true,
            },
            Change::Config
            | Change::Service(_)
            | Change::Develop(..)
            | Change::Mounted(_)
            | Change::Nothing
            | Change::Output => Effects::default(),
        }
    }

    /// The services whose builds send `path` (canonical), by the same
    /// rules as the build: the ignore file, and only what the Dockerfile names.
    fn senders<'a>(&'a self, path: &'a Utf8Path) -> impl Iterator<Item = &'a str> + 'a {
        self.sent.iter().filter_map(move |s| {
            let rel = path.strip_prefix(&s.root).ok()?.as_str();
            let ignored = s.ignore.decide_walked(rel).is_ok_and(|(d, _)| d.excluded);
            let named = s
                .include
                .as_ref()
                .is_none_or(|m| m.decide_walked(rel).is_ok_and(|(d, _)| d.excluded));
            (!ignored && named).then_some(s.service.as_str())
        })
    }

    /// For a cycle that builds the staged binaries: what each one, if its
    /// bytes change, does to running containers (a develop rule that syncs
    /// it), and the services that must then build (those that send it and
    /// that no rule syncs it into).
    pub fn staged(&self) -> Vec<(Utf8PathBuf, Live, BTreeSet<String>)> {
        self.staged_outputs
            .iter()
            .map(|output| {
                let mut live = Live::default();
                self.live(output, &mut live);
                let build = self
                    .senders(output)
                    .filter(|s| !live.sync.contains_key(*s))
                    .map(str::to_owned)
                    .collect();
                (output.clone(), live, build)
            })
            .collect()
    }

    /// Whether anything the run uses lies in or under folder `dir`, or
    /// contains it: a build sends from it, a develop rule or a bind mount
    /// reaches it, a crate the tests or staged binaries build is in it, the
    /// config is. A folder git ignores is watched only then.
    pub fn uses_folder(&self, dir: &Utf8Path) -> bool {
        let dir = canonical(dir);
        let near = |p: &Utf8Path| p.starts_with(&dir) || dir.starts_with(p);
        self.sent.iter().any(|s| s.root.starts_with(&dir))
            || self.senders(&dir).next().is_some()
            || self.rules.iter().any(|r| {
                r.rule.path.starts_with(&dir) || (dir.starts_with(&r.rule.path) && r.matches(&dir))
            })
            || self
                .mounts
                .iter()
                .any(|m| m.source.starts_with(&dir) || m.shows(&dir))
            || self
                .crates
                .iter()
                .any(|(c, _, kind)| *kind != Change::Nothing && near(c))
            || self.config_files.iter().any(|f| f.starts_with(&dir))
    }

    /// What `path` (absolute) changes; a path can matter in several ways.
    pub fn classify(&self, path: &Utf8Path) -> BTreeSet<Change> {
        let mut out = BTreeSet::new();
        let path = canonical(path);
        if path.components().any(|c| c.as_str() == ".git")
            || self.outputs.iter().any(|o| path.starts_with(o))
        {
            out.insert(Change::Output);
            return out;
        }
        if self.config_files.contains(&path) {
            out.insert(Change::Config);
        }
        // Services a develop rule or a bind mount updates without an image:
        // their builds are not asked for this path (a `rebuild` rule is a
        // build, as any file the build sends).
        let mut live: BTreeSet<&str> = BTreeSet::new();
        for r in self.rules.iter().filter(|r| r.matches(&path)) {
            if r.rule.action == Action::Rebuild {
                out.insert(Change::Service(r.service.clone()));
            } else {
                live.insert(&r.service);
                out.insert(Change::Develop(r.service.clone(), r.rule.action));
            }
        }
        for m in &self.mounts {
            if m.shows(&path) && !live.contains(m.service.as_str()) {
                out.insert(Change::Mounted(m.service.clone()));
            }
        }
        live.extend(
            self.mounts
                .iter()
                .filter(|m| m.shows(&path))
                .map(|m| m.service.as_str()),
        );
        for service in self.senders(&path) {
            if !live.contains(service) {
                out.insert(Change::Service(service.to_owned()));
            }
        }
        if let Some((_, _, kind)) = self.crates.iter().find(|(dir, _, _)| path.starts_with(dir))
            && *kind != Change::Nothing
        {
            out.insert(kind.clone());
        }
        if self.workspace_files.iter().any(|f| path.starts_with(f)) {
            out.insert(Change::Manifest);
        }
        if out.is_empty() {
            out.insert(Change::Nothing);
        }
        out
    }
}

/// A path with its folders resolved (the path itself may be gone: a deleted file).
pub(super) fn canonical(path: &Utf8Path) -> Utf8PathBuf {
    if let Ok(p) = path.canonicalize_utf8() {
        return p;
    }
    match (path.parent(), path.file_name()) {
        (Some(dir), Some(name)) => canonical(dir).join(name),
        _ => path.to_owned(),
    }
}
