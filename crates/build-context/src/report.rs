//! What a context costs and why: what passes the ignore file, what the build
//! really transfers (only what the Dockerfile names, `sent.rs`), the `du`
//! table of the transfer a person would make by hand, suggested ignore
//! lines, and the lints of `lints.rs`.

use foldhash::{HashMap, HashMapExt};

use camino::Utf8PathBuf;
use serde::Serialize;

use crate::context::Context;
use crate::dockerfile::{self, BuildInputs, ContextUse, CopySource};
pub use crate::lints::Severity;
use crate::lints::{Lint, copy_lints, secret_lints, transfer_lints};
use crate::matcher::Matcher;
use crate::walk::{Entry, EntryKind, Problem, Walk};

const TOP: usize = 8;

#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct Tally {
    pub files: u64,
    pub bytes: u64,
}

impl Tally {
    pub(crate) fn add(&mut self, bytes: u64) {
        self.files += 1;
        self.bytes += bytes;
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SizeRow {
    pub path: String,
    pub files: u64,
    pub bytes: u64,
}

/// What the build really transfers: only what the Dockerfile's
/// instructions name, after the ignore file.
#[derive(Debug, Clone, Serialize)]
pub struct Transfer {
    /// Which paths the Dockerfile asks for, or why it is the whole context.
    pub basis: ContextUse,
    /// The patterns the client matches, links followed; `None`: everything.
    pub include: Option<Vec<String>>,
    pub files: u64,
    pub bytes: u64,
    /// Folders, files and links sent.
    pub entries: u64,
    /// The engine's own count of a first transfer ("transferring context"),
    /// when the walk measured it.
    pub wire_bytes: Option<u64>,
    /// The entries sent, as indexes into the walk, in the client's order.
    #[serde(skip)]
    pub order: Vec<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Suggestion {
    /// The line to add to the ignore file.
    pub line: String,
    pub files: u64,
    pub bytes: u64,
}

/// Everything known about one context.
#[derive(Debug, Clone, Serialize)]
pub struct ContextReport {
    pub context: Utf8PathBuf,
    /// The compose services built from it (filled in by the caller).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<String>,
    /// The stage built, when the build names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub dockerfile: Option<Utf8PathBuf>,
    pub ignore_file: Option<Utf8PathBuf>,
    pub sent: Tally,
    pub excluded: Tally,
    pub largest_dirs: Vec<SizeRow>,
    pub largest_files: Vec<SizeRow>,
    pub transfer: Transfer,
    pub suggestions: Vec<Suggestion>,
    pub lints: Vec<Lint>,
    pub problems: Vec<Problem>,
    pub budget: Option<u64>,
    pub over_budget: bool,
}

/// Builds the report from a walk made with sizes and into pruned folders.
/// The budget applies to what the build transfers.
pub fn analyze(
    ctx: &Context,
    walk: &Walk,
    inputs: &BuildInputs,
    budget: Option<u64>,
) -> ContextReport {
    let files = || walk.entries.iter().filter(|e| e.kind != EntryKind::Dir);
    let mut sent = Tally::default();
    let mut excluded = Tally::default();
    for e in files() {
        if e.excluded {
            excluded.add(e.size)
        } else {
            sent.add(e.size)
        }
    }
    let text = ctx
        .dockerfile
        .as_ref()
        .and_then(|df| std::fs::read_to_string(df).ok());
    let copies = text
        .as_deref()
        .map(dockerfile::copy_sources)
        .unwrap_or_default();
    let basis = match &text {
        Some(text) => dockerfile::context_use(text, inputs),
        None => ContextUse::Unsure {
            why: "no Dockerfile to read".into(),
        },
    };
    let mut problems = walk.problems.clone();
    let include = crate::sent::include_patterns(&ctx.root, &basis);
    let (order, included) = match crate::sent::sent_entries(walk, include.as_deref()) {
        Ok(found) => found,
        Err(bad) => {
            // A COPY source the pattern engine refuses fails the build too.
            problems.push(Problem {
                path: bad.pattern.clone(),
                message: format!(
                    "the Dockerfile names a path the engine cannot match: {}",
                    bad.error
                ),
                excluded: false,
            });
            crate::sent::sent_entries(walk, None).expect("no include patterns, nothing to refuse")
        }
    };
    let wire_bytes = crate::sent::wire_bytes(&ctx.root, walk, &order).ok();
    let moved: Vec<&Entry> = order
        .iter()
        .map(|&i| &walk.entries[i])
        .filter(|e| e.kind != EntryKind::Dir)
        .collect();
    let mut moved_tally = Tally::default();
    moved.iter().for_each(|e| moved_tally.add(e.size));
    let transfer = Transfer {
        basis,
        include,
        files: moved_tally.files,
        bytes: moved_tally.bytes,
        entries: order.len() as u64,
        wire_bytes,
        order,
    };
    let mut lints = copy_lints(ctx, walk, &copies);
    lints.extend(secret_lints(ctx, &moved));
    lints.extend(transfer_lints(ctx, walk, &included, &transfer, &moved));
    ContextReport {
        context: ctx.root.clone(),
        services: Vec::new(),
        target: inputs.target.clone(),
        dockerfile: ctx.dockerfile.clone(),
        ignore_file: ctx.ignore.path.clone(),
        sent,
        excluded,
        largest_dirs: largest_dirs(&moved),
        largest_files: largest_files(&moved),
        suggestions: suggestions(&moved, &copies),
        over_budget: budget.is_some_and(|b| transfer.bytes > b),
        transfer,
        lints,
        problems,
        budget,
    }
}

fn largest_dirs(sent: &[&Entry]) -> Vec<SizeRow> {
    let mut dirs: HashMap<&[u8], Tally> = HashMap::new();
    for e in sent {
        // Every folder above the file, three levels deep at most, as `du -d 3` shows.
        for (depth, (i, _)) in e
            .path
            .iter()
            .enumerate()
            .filter(|&(_, &b)| b == b'/')
            .enumerate()
        {
            if depth >= 3 {
                break;
            }
            dirs.entry(&e.path[..i]).or_default().add(e.size);
        }
    }
    let mut rows: Vec<SizeRow> = dirs
        .into_iter()
        .map(|(p, t)| SizeRow {
            path: format!("{}/", String::from_utf8_lossy(p)),
            files: t.files,
            bytes: t.bytes,
        })
        .collect();
    rows.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    rows.truncate(TOP);
    rows
}

fn largest_files(sent: &[&Entry]) -> Vec<SizeRow> {
    let mut rows: Vec<SizeRow> = sent
        .iter()
        .map(|e| SizeRow {
            path: e.display().into_owned(),
            files: 1,
            bytes: e.size,
        })
        .collect();
    rows.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.path.cmp(&b.path)));
    rows.truncate(TOP);
    rows
}

/// Below this a suggestion is noise.
const SUGGEST_MIN_BYTES: u64 = 64 * 1024;

fn suggestions(sent: &[&Entry], copies: &[CopySource]) -> Vec<Suggestion> {
    let mut groups: HashMap<String, Tally> = HashMap::new();
    for e in sent {
        let path = e.display();
        let mut parts = path.split('/').collect::<Vec<_>>();
        let name = parts.pop().unwrap_or_default();
        if let Some(dir) = parts
            .iter()
            .find(|d| crate::artifacts::is_artifact_folder(d))
        {
            let line = if *dir == ".git" {
                ".git".to_owned()
            } else {
                format!("**/{dir}")
            };
            groups.entry(line).or_default().add(e.size);
        } else if let Some((_, ext)) = name.rsplit_once('.')
            && crate::artifacts::is_artifact_ending(ext)
        {
            groups.entry(format!("**/*.{ext}")).or_default().add(e.size);
        }
    }
    // Never suggest a line that would hide something COPY names explicitly.
    let named: Vec<String> = copies
        .iter()
        .flat_map(|c| c.sources.iter())
        .map(|s| crate::goclean::clean(s.trim_start_matches('/')))
        .filter(|s| s != ".")
        .collect();
    let mut out: Vec<Suggestion> = groups
        .into_iter()
        .filter(|(_, t)| t.bytes >= SUGGEST_MIN_BYTES)
        .filter(|(line, _)| {
            let m =
                Matcher::from_patterns(&[line.as_str()]).expect("suggestions are valid patterns");
            !named.iter().any(|s| {
                m.decide_stateless(s.as_bytes())
                    .map(|d| d.excluded)
                    .unwrap_or(false)
            })
        })
        .map(|(line, t)| Suggestion {
            line,
            files: t.files,
            bytes: t.bytes,
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.line.cmp(&b.line)));
    out
}

impl ContextReport {
    /// "sends X, over the budget of Y; biggest: ..." when over budget: the
    /// three largest folders sent are where to look first.
    pub fn over_budget_message(&self) -> Option<String> {
        if !self.over_budget {
            return None;
        }
        let top: Vec<String> = self
            .largest_dirs
            .iter()
            .take(3)
            .map(|d| format!("{} ({})", d.path, crate::human(d.bytes)))
            .collect();
        Some(format!(
            "sends {}, over the budget of {}; biggest: {}",
            crate::human(self.transfer.bytes),
            crate::human(self.budget.unwrap_or_default()),
            top.join(", ")
        ))
    }
}

impl std::fmt::Display for ContextReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::human;
        write!(f, "context {}", self.context)?;
        if !self.services.is_empty() {
            write!(f, " for {}", self.services.join(", "))?;
        }
        match &self.target {
            Some(t) => writeln!(f, " (target {t})")?,
            None => writeln!(f)?,
        }
        if let Some(df) = &self.dockerfile {
            writeln!(f, "  dockerfile   {df}")?;
        }
        let ignore = self
            .ignore_file
            .as_ref()
            .map_or("(none)".to_owned(), |p| p.to_string());
        writeln!(f, "  ignore file  {ignore}")?;
        writeln!(
            f,
            "  after ignore {:>8} files  {:>10}",
            self.sent.files,
            human(self.sent.bytes)
        )?;
        writeln!(
            f,
            "  excluded     {:>8} files  {:>10}",
            self.excluded.files,
            human(self.excluded.bytes)
        )?;
        let t = &self.transfer;
        let how = match &t.basis {
            ContextUse::Paths { paths } if paths.is_empty() => {
                "the Dockerfile reads nothing from the context".to_owned()
            }
            ContextUse::Paths { .. } => format!(
                "only what the Dockerfile names: {}",
                t.include.as_deref().unwrap_or_default().join(" ")
            ),
            ContextUse::Whole { line, why, .. } => {
                let df = crate::context::dockerfile_name(self.dockerfile.as_deref());
                format!("everything: {df}:{line} {why}")
            }
            ContextUse::Unsure { why } => format!("everything, assumed: {why}"),
        };
        writeln!(
            f,
            "  transferred  {:>8} files  {:>10}  {how}",
            t.files,
            human(t.bytes)
        )?;
        if let Some(w) = t.wire_bytes {
            writeln!(
                f,
                "  on the wire  {:>8} items  {:>10}  the engine's count on a first transfer ({w} bytes)",
                t.entries,
                human(w)
            )?;
        }
        if let Some(b) = self.budget {
            let verdict = if self.over_budget { "OVER" } else { "within" };
            writeln!(f, "  budget       {:>25}  {verdict}", human(b))?;
        }
        if !self.largest_dirs.is_empty() {
            writeln!(f, "  largest folders transferred:")?;
            for r in &self.largest_dirs {
                writeln!(
                    f,
                    "    {:>10}  {:>7} files  {}",
                    human(r.bytes),
                    r.files,
                    r.path
                )?;
            }
        }
        if !self.largest_files.is_empty() {
            writeln!(f, "  largest files transferred:")?;
            for r in &self.largest_files {
                writeln!(f, "    {:>10}  {}", human(r.bytes), r.path)?;
            }
        }
        if !self.suggestions.is_empty() {
            writeln!(f, "  suggested ignore lines:")?;
            for s in &self.suggestions {
                writeln!(
                    f,
                    "    {:<24} saves {:>10} in {} files",
                    s.line,
                    human(s.bytes),
                    s.files
                )?;
            }
        }
        for l in &self.lints {
            let tag = match l.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Note => "note",
            };
            writeln!(f, "  {tag}: {}", l.message)?;
        }
        for p in &self.problems {
            let note = if p.excluded {
                " (excluded; the engine ignores this)"
            } else {
                ""
            };
            writeln!(f, "  problem: {}: {}{note}", p.path, p.message)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WalkOptions;

    #[test]
    fn report_catches_the_classic_bugs() {
        let dir = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(dir.path().canonicalize().unwrap()).unwrap();
        let put = |p: &str, size: usize| {
            let p = root.join(p);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, vec![b'k'; size]).unwrap();
        };
        put("server/main.go", 1000);
        put("server/fake_test.go", 500);
        put("testserver/server_test.go", 500);
        put("coverage/c1.out", 300_000);
        put("pkg/big.test", 200_000);
        put(".env", 10);
        std::fs::write(root.join("tls.key"), "-----BEGIN PRIVATE KEY-----\n").unwrap();
        std::fs::write(
            root.join(".dockerignore"),
            "# tests are not shipped\n**/*_test.go\n",
        )
        .unwrap();
        std::fs::write(
            root.join("Dockerfile"),
            "FROM scratch\nCOPY server/ /app/\nCOPY testserver/server_test.go /t/\nCOPY missing.txt /m\n",
        )
        .unwrap();
        let open = || {
            let ctx = Context::open(&root, Some(&root.join("Dockerfile"))).unwrap();
            let walk = ctx
                .walk(WalkOptions {
                    sizes: true,
                    into_pruned: true,
                })
                .unwrap();
            (ctx, walk)
        };
        let (ctx, walk) = open();
        let report = |dockerfile: &str| {
            std::fs::write(root.join("Dockerfile"), dockerfile).unwrap();
            analyze(&ctx, &walk, &BuildInputs::default(), Some(100_000))
        };
        let r = report(
            "FROM scratch\nCOPY server/ /app/\nCOPY testserver/server_test.go /t/\nCOPY missing.txt /m\n",
        );
        let messages = |r: &ContextReport| -> Vec<String> {
            r.lints.iter().map(|l| l.message.clone()).collect()
        };
        let msgs = messages(&r);
        let has = |msgs: &[String], needle: &str| msgs.iter().any(|m| m.contains(needle));
        assert!(
            has(
                &msgs,
                "Dockerfile:3 COPY testserver/server_test.go: the source is excluded by .dockerignore:2 `**/*_test.go`"
            ),
            "{msgs:#?}"
        );
        assert!(
            has(
                &msgs,
                "Dockerfile:2 COPY server/: 1 file(s) it names are excluded by .dockerignore:2 `**/*_test.go`"
            ),
            "{msgs:#?}"
        );
        assert!(
            has(&msgs, "Dockerfile:4 COPY missing.txt: no such file"),
            "{msgs:#?}"
        );
        // Only what the Dockerfile names is transferred: no secret, no artifact, within budget.
        let t = &r.transfer;
        assert_eq!(
            t.include.as_deref().unwrap(),
            ["missing.txt", "server", "testserver/server_test.go"]
        );
        assert_eq!(
            (t.files, t.bytes),
            (1, 1000),
            "only server/main.go is named and sent"
        );
        assert!(
            r.sent.bytes > 500_000,
            "the ignore file alone lets the artifacts through"
        );
        assert!(!r.over_budget && r.suggestions.is_empty(), "{r}");
        assert!(!has(&msgs, ".env"), "{msgs:#?}");

        // `COPY .` transfers everything the ignore file lets through.
        let r = report("FROM scratch\nCOPY . /app/\n");
        let msgs = messages(&r);
        assert!(matches!(
            r.transfer.basis,
            ContextUse::Whole { line: 2, .. }
        ));
        assert!(
            has(&msgs, ".env (environment file)") && has(&msgs, "tls.key (private key)"),
            "{msgs:#?}"
        );
        let lines: Vec<&str> = r.suggestions.iter().map(|s| s.line.as_str()).collect();
        assert_eq!(lines, ["**/coverage", "**/*.test"]);
        assert!(r.over_budget);
        assert_eq!(r.excluded.files, 2);
        assert_eq!(r.largest_dirs[0].path, "coverage/");
        assert_eq!(r.transfer.bytes, r.sent.bytes);

        // An ignore line that excludes only what the Dockerfile never names saves nothing.
        std::fs::write(root.join(".dockerignore"), "**/*_test.go\ncoverage\n").unwrap();
        let (ctx, walk) = open();
        std::fs::write(
            root.join("Dockerfile"),
            "FROM scratch\nCOPY server/ /app/\n",
        )
        .unwrap();
        let r = analyze(&ctx, &walk, &BuildInputs::default(), None);
        let msgs = messages(&r);
        assert!(
            has(
                &msgs,
                "ignore line .dockerignore:2 `coverage` excludes only what Dockerfile never names (1 file(s), 293.0 KiB)"
            ),
            "{msgs:#?}"
        );
        assert!(
            !msgs
                .iter()
                .any(|m| m.starts_with("ignore line") && m.contains("_test.go")),
            "{msgs:#?}"
        );
    }
}
