//! `cargo e2e --watch`: the first run as usual with the stack kept, then a
//! cycle per burst of changes, each doing only what its changes need
//! (`pipeline::session`): the fingerprints build only the services whose
//! transferred files changed, only their containers are recreated, and the
//! tests run again. What nothing uses starts no cycle and says so in one
//! line. Ctrl-C ends the loop with the teardown policy; a watch killed
//! outright leaves it to the session's reaper.

mod events;
mod folders;

use std::collections::BTreeSet;
use std::io::Write as _;

use anyhow::Context as _;
use camino::{Utf8Path, Utf8PathBuf};
use compose::Policy;
use notify::{RecursiveMode, Watcher as _};
use pipeline::e2e::Options;
use pipeline::session::{Session, Work};
use pipeline::watch::{Change, Map};
use pipeline::{Failure, RunReport, Verdict};

/// Runs the loop; the teardown policy (`opts.teardown`) applies when it
/// ends. With `only_failed`, a cycle after one whose tests failed runs only
/// those that failed.
/// `no_logs`: `--no-logs`, which a reloaded config does not undo.
pub fn run(opts: &Options, only_failed: bool, no_logs: bool) -> anyhow::Result<()> {
    let root = &opts.workspace.root;
    let policy = opts.teardown;
    let mut map = Map::new(opts).map_err(|e| anyhow::anyhow!(e))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let never = opts.workspace.target_dir.clone();
    let mut watches = Watches {
        watcher: notify::recommended_watcher(tx).context("starting the file watcher")?,
        folders: BTreeSet::new(),
        never: never.canonicalize_utf8().unwrap_or(never),
        full: false,
    };
    // Watching starts before the first run: a change made meanwhile is not lost.
    let skipped = watches.add(root, &map);
    if !skipped.is_empty() {
        const SHOWN: usize = 5;
        let names: Vec<String> = skipped.iter().take(SHOWN).map(|p| shown(root, p)).collect();
        let more = match skipped.len().saturating_sub(SHOWN) {
            0 => String::new(),
            n => format!(" and {n} more"),
        };
        say(&format!(
            "not watched (git ignores them and nothing the run uses is in them): {}{more}",
            names.join(", ")
        ));
    }
    let own = own_output();
    let mut session = Session::open(opts, say)?;
    let first = one_cycle(&mut session, Work::default(), only_failed);
    say(&format!("{first}"));
    say(&summary(0, &["first run".to_owned()], &first));
    // Cargo writes the lock file itself (the first build of a workspace
    // without one): as the run left it, it is no change.
    let lock_file = root.join("Cargo.lock");
    let mut lock_text = std::fs::read(&lock_file).ok();
    let mut said = true;
    while !process::interrupt::is_requested() {
        if said {
            say(&format!(
                "watching {root}: a change runs what it affects; Ctrl-C ends ({policy})"
            ));
        }
        said = false;
        let Some((mut paths, changed_at)) = events::next_batch(&rx) else {
            break;
        };
        // A folder made since inside the watched ones: watched from now on
        // (unless git ignores it and nothing uses it), and what it already
        // holds counts as changed.
        // A folder removed and made again is a new inode: watched anew.
        for path in paths.clone() {
            if path.is_dir() && path.parent().is_some_and(|p| watches.folders.contains(p)) {
                watches.folders.retain(|f| !f.starts_with(&path));
                if watches.add(&path, &map).is_empty() {
                    paths.extend(files_in(&path));
                }
            }
        }
        paths.retain(|p| !(p == &lock_file && std::fs::read(p).ok() == lock_text));
        // What the watch itself writes (`cargo e2e --watch > watch.log` in
        // the workspace) is no change: each line it said woke it again, and
        // a user's edit drowned among "nothing uses watch.log".
        paths.retain(|p| !own.contains(p));
        if paths.is_empty() {
            continue;
        }
        let mut causes: Vec<String> = Vec::new();
        let mut idle: Vec<String> = Vec::new();
        let mut work = Work::default();
        work.live.changed_at = Some(changed_at);
        // The services whose builds the changes ask for.
        let mut asked = BTreeSet::new();
        for path in &paths {
            let changes = map.classify(path);
            let shown = shown(root, path);
            if changes.contains(&Change::Output) {
                continue;
            }
            if changes.contains(&Change::Nothing) {
                idle.push(shown);
                continue;
            }
            map.live(path, &mut work.live);
            for c in &changes {
                let effects = map.effects(c);
                work.whole |= *c == Change::Config;
                if let Change::Service(s) = c {
                    work.build = true;
                    asked.insert(s.clone());
                }
                work.stage |= effects.stage;
                work.tests |= effects.tests;
            }
            let what: Vec<String> = changes.iter().map(Change::to_string).collect();
            causes.push(format!("{shown} ({})", what.join(", ")));
        }
        let mut asked = pipeline::session::Asked {
            services: asked,
            ..Default::default()
        };
        if work.stage {
            // A staged binary a develop rule syncs goes in without its image.
            for (output, live, build) in map.staged() {
                work.staged_live.push((output.clone(), live));
                asked.by_staged.insert(output, build);
            }
        }
        work.build_only = Some(asked);
        if causes.is_empty() {
            if !idle.is_empty() {
                say(&format!("no cycle: nothing uses {}", idle.join(", ")));
                said = true;
            }
            continue;
        }
        // The config file itself: read again, or the cycle would run with
        // the one the watch started with.
        let config_path = session.options().config.path.clone();
        let config_file = config_path.canonicalize_utf8().ok();
        if paths
            .iter()
            .any(|p| config_file.is_some() && p.canonicalize_utf8().ok() == config_file)
        {
            match pipeline::Config::load(&config_path, &opts.workspace) {
                Ok(mut config) => {
                    config.readiness.logs &= !no_logs;
                    session.use_config(config)
                }
                Err(e) => {
                    say(&format!(
                        "no cycle: {e}; fix it and save again (the last config stays in use)"
                    ));
                    said = true;
                    continue;
                }
            }
        }
        let cycle = session.cycles();
        let narrowed = only_failed && session.narrowed();
        say(&format!(
            "cycle {cycle}: {}{}",
            causes.join("; "),
            if narrowed {
                "; running only the tests that failed last"
            } else {
                ""
            }
        ));
        let whole = work.whole;
        let report = one_cycle(&mut session, work, only_failed);
        say(&summary(cycle, &causes, &report));
        said = true;
        lock_text = std::fs::read(&lock_file).ok();
        if whole {
            // The stack, its contexts or its Dockerfiles may differ now.
            match Map::new(session.options()) {
                Ok(m) => map = m,
                Err(e) => say(&format!(
                    "the configuration does not load ({e}); keeping the last one"
                )),
            }
        }
    }
    finish(session, policy)
}

/// The inotify watches: one per folder (`folders.rs` says which).
struct Watches {
    watcher: notify::RecommendedWatcher,
    folders: BTreeSet<Utf8PathBuf>,
    /// The target folder: the run's own churn.
    never: Utf8PathBuf,
    /// inotify's limit was hit (said once).
    full: bool,
}

impl Watches {
    /// Watches the folders from `start` down that the run may need; returns
    /// the folders git ignores that were left out.
    fn add(&mut self, start: &Utf8Path, map: &Map) -> Vec<Utf8PathBuf> {
        let found = folders::folders(start, &self.never, &|d| map.uses_folder(d));
        let new: Vec<Utf8PathBuf> = found
            .watched
            .into_iter()
            .filter(|d| !self.folders.contains(d))
            .collect();
        for (i, dir) in new.iter().enumerate() {
            match self
                .watcher
                .watch(dir.as_std_path(), RecursiveMode::NonRecursive)
            {
                Ok(()) => {
                    self.folders.insert(dir.clone());
                }
                Err(e) if at_limit(&e) => {
                    if !self.full {
                        self.full = true;
                        let total = self.folders.len() + new.len() - i;
                        say(&folders::limit_message(self.folders.len(), total, dir));
                    }
                    break;
                }
                // Gone meanwhile: nothing to watch.
                Err(_) => {}
            }
        }
        found.skipped
    }
}

/// Whether inotify refused a watch for its per-user limit (ENOSPC).
fn at_limit(e: &notify::Error) -> bool {
    match &e.kind {
        notify::ErrorKind::MaxFilesWatch => true,
        // ENOSPC, which inotify_add_watch returns at the limit.
        notify::ErrorKind::Io(io) => io.raw_os_error() == Some(28),
        _ => false,
    }
}

/// The files this process writes its output to (stdout or stderr sent to a
/// file), as the watcher names them.
fn own_output() -> Vec<Utf8PathBuf> {
    ["/proc/self/fd/1", "/proc/self/fd/2"]
        .iter()
        .filter_map(|fd| std::fs::canonicalize(fd).ok())
        .filter(|p| p.is_file())
        .filter_map(|p| Utf8PathBuf::from_path_buf(p).ok())
        .collect()
}

/// The files under a folder just made (bounded: a folder copied in whole
/// is still one cycle, and its first files tell what it is).
fn files_in(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = d.read_dir_utf8() else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            if out.len() >= 1000 {
                return out;
            }
            match e.file_type() {
                Ok(t) if t.is_dir() => stack.push(e.into_path()),
                Ok(_) => out.push(e.into_path()),
                Err(_) => {}
            }
        }
    }
    out
}

fn one_cycle(session: &mut Session, work: Work, only_failed: bool) -> RunReport {
    let ci_host = crate::ci_log::CiHost::detect(|k| std::env::var(k).ok());
    session.cycle(
        work,
        only_failed,
        &mut crate::progress::Progress::new(ci_host),
    )
}

/// One line per cycle: what changed, what was built and recreated, the tests, the time.
fn summary(cycle: usize, causes: &[String], r: &RunReport) -> String {
    let built: Vec<&str> = r
        .images
        .iter()
        .filter(|i| !i.unchanged)
        .map(|i| i.service.as_str())
        .collect();
    let recreated = r.containers.as_ref().map_or(0, |c| c.created + c.started);
    let tests = r.tests.as_ref().map_or_else(
        || "tests not run".to_owned(),
        |t| format!("{} passed, {} failed", t.passed, t.failed),
    );
    let outcome = match &r.verdict {
        Verdict::Passed => String::new(),
        Verdict::Failed(Failure::Tests(_)) => failed_names(r),
        Verdict::Failed(f) => format!(
            "; failed, waiting for the next change: {}",
            telling_line(f.detail())
        ),
        Verdict::Interrupted => "; interrupted".to_owned(),
    };
    // What reached running containers without an image, as the sync phase said it.
    let synced = r
        .phases
        .iter()
        .find(|p| p.phase == pipeline::Phase::Sync && p.status == pipeline::report::Status::Ok)
        .map(|p| {
            format!(
                "{}; ",
                p.note.split("; containers kept").next().unwrap_or_default()
            )
        })
        .unwrap_or_default();
    format!(
        "cycle {cycle} done in {:.1} s: {}; built: {}; containers recreated or started: {recreated}; {synced}{tests}{outcome}",
        r.seconds,
        causes.join("; "),
        if built.is_empty() {
            "nothing".to_owned()
        } else {
            built.join(", ")
        },
    )
}

/// `; failed: bin test, ...`: which tests failed, from the JUnit report
/// (the first few; nextest's output above has them all).
fn failed_names(r: &RunReport) -> String {
    let Some(failed) = r
        .junit
        .as_ref()
        .and_then(|j| test_runner::failures(j).ok())
        .filter(|f| !f.is_empty())
    else {
        return String::new();
    };
    const SHOWN: usize = 3;
    let names: Vec<&str> = failed.iter().take(SHOWN).map(|f| f.name.as_str()).collect();
    let more = match failed.len().saturating_sub(SHOWN) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!("; failed: {}{more}", names.join(", "))
}

/// The line of a failure that says what went wrong: BuildKit's `ERROR:`
/// line when the message carries a build log, else its first line.
fn telling_line(s: &str) -> String {
    s.lines()
        .rev()
        .find(|l| l.contains("ERROR:") || l.contains("error:"))
        .or_else(|| s.lines().next())
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn shown(root: &Utf8Path, path: &Utf8Path) -> String {
    path.strip_prefix(root)
        .map_or_else(|_| path.to_string(), |p| p.to_string())
}

fn say(line: &str) {
    let line = pipeline::secrets::redact(line);
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// The teardown policy, once the loop ends, checked as a run's teardown is.
fn finish(session: Session, policy: Policy) -> anyhow::Result<()> {
    session.end().map_err(|e| {
        crate::exit::Exit::environment(format!("watch ended; teardown ({policy}): {e}"))
    })?;
    if policy == Policy::Keep {
        say("watch ended: the stack is kept");
    } else {
        say(&format!("watch ended: {policy} done"));
    }
    if process::interrupt::is_requested() {
        return Err(crate::exit::Exit::interrupted("watch ended by Ctrl-C; teardown done").into());
    }
    Ok(())
}
