//! Lints of a build context: COPY/ADD sources the ignore file hides (the
//! build breaks, or silently leaves files out), and secrets it sends.

use foldhash::{HashMap, HashMapExt};

use serde::Serialize;

use crate::context::Context;
use crate::dockerfile::{ContextUse, CopySource};
use crate::matcher::Matcher;
use crate::report::{Tally, Transfer};
use crate::walk::{Entry, EntryKind, Walk};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    /// Advice: nothing is wrong, something could be smaller or simpler.
    Note,
}

#[derive(Debug, Clone, Serialize)]
pub struct Lint {
    pub severity: Severity,
    pub message: String,
}

/// A COPY/ADD source that the ignore file hides breaks the build, or worse,
/// silently leaves files out of the image (`**/*_test.go` and a test server).
pub(crate) fn copy_lints(ctx: &Context, walk: &Walk, copies: &[CopySource]) -> Vec<Lint> {
    let mut lints = Vec::new();
    let df = crate::context::dockerfile_name(ctx.dockerfile.as_deref());
    for copy in copies {
        for source in &copy.sources {
            let clean = crate::goclean::clean(source.trim_start_matches('/'));
            if clean == "." || clean.contains('$') {
                continue;
            }
            let at = format!("{df}:{} {} {source}", copy.line, copy.instruction);
            let is_glob = clean.contains(['*', '?', '[']);
            if !is_glob && let Ok(ex) = ctx.explain(&clean) {
                if !ex.sent {
                    let by = ex.decided_by.unwrap_or_default();
                    lints.push(Lint {
                        severity: Severity::Error,
                        message: format!(
                            "{at}: the source is excluded by {by}, so the build cannot see it"
                        ),
                    });
                    continue;
                }
                if !ex.exists {
                    lints.push(Lint {
                        severity: Severity::Error,
                        message: format!("{at}: no such file or folder in the context"),
                    });
                    continue;
                }
            }
            let Ok(include) = Matcher::from_patterns(&[clean.as_str()]) else {
                continue;
            };
            let mut by_line: HashMap<Option<usize>, (u64, String)> = HashMap::new();
            let mut matched_sent = 0;
            for e in walk.entries.iter().filter(|e| e.kind != EntryKind::Dir) {
                if !include
                    .decide_stateless(&e.path)
                    .map(|d| d.excluded)
                    .unwrap_or(false)
                {
                    continue;
                }
                if e.excluded {
                    let slot = by_line
                        .entry(e.by)
                        .or_insert_with(|| (0, e.display().into_owned()));
                    slot.0 += 1;
                } else {
                    matched_sent += 1;
                }
            }
            let mut rows: Vec<_> = by_line.into_iter().collect();
            rows.sort_by_key(|(by, _)| *by);
            for (by, (count, example)) in rows {
                let rule = by.map(|i| ctx.ignore.describe(i)).unwrap_or_default();
                let severity = if matched_sent == 0 {
                    Severity::Error
                } else {
                    Severity::Warning
                };
                lints.push(Lint {
                    severity,
                    message: format!(
                        "{at}: {count} file(s) it names are excluded by {rule} (e.g. {example})"
                    ),
                });
            }
        }
    }
    lints
}

/// Names that usually hold credentials and should never reach an image.
pub(crate) fn secret_lints(ctx: &Context, sent: &[&Entry]) -> Vec<Lint> {
    let mut lints = Vec::new();
    let mut git = Tally::default();
    for e in sent {
        let path = e.display();
        if path.starts_with(".git/") || path.contains("/.git/") {
            git.add(e.size);
            continue;
        }
        let name = path.rsplit('/').next().unwrap_or_default();
        let why = if name == ".env" || (name.starts_with(".env.") && !name.ends_with(".example")) {
            Some("environment file")
        } else if [
            "id_rsa",
            "id_dsa",
            "id_ecdsa",
            "id_ed25519",
            ".netrc",
            ".npmrc",
            ".pypirc",
        ]
        .contains(&name)
            || name.ends_with(".p12")
            || name.ends_with(".pfx")
        {
            Some("credentials")
        } else if (name.ends_with(".key") || name.ends_with(".pem"))
            && holds_private_key(ctx, &path)
        {
            Some("private key")
        } else {
            None
        };
        if let Some(why) = why {
            lints.push(Lint {
                severity: Severity::Warning,
                message: format!(
                    "{path} ({why}) is sent to the builder; add it to the ignore file"
                ),
            });
        }
    }
    if git.files > 0 {
        lints.push(Lint {
            severity: Severity::Warning,
            message: format!(
                ".git is sent ({} files, {}); add `.git` to the ignore file",
                git.files,
                crate::human(git.bytes)
            ),
        });
    }
    lints
}

fn holds_private_key(ctx: &Context, rel: &str) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4096];
    let Ok(mut f) = std::fs::File::open(ctx.root.join(rel)) else {
        return false;
    };
    let n = f.read(&mut head).unwrap_or(0);
    head[..n].windows(11).any(|w| w == b"PRIVATE KEY")
}

/// Below this, a whole-context transfer is not worth a remark.
const WHOLE_CONTEXT_NOTE_BYTES: u64 = 10 * 1024 * 1024;

/// What the transfer tells about the Dockerfile and the ignore file: ignore
/// lines that save nothing (the Dockerfile never names what they exclude),
/// and a `COPY .` of a large context, where naming the paths is the fix.
pub(crate) fn transfer_lints(
    ctx: &Context,
    walk: &Walk,
    included: &[bool],
    transfer: &Transfer,
    moved: &[&Entry],
) -> Vec<Lint> {
    let df = crate::context::dockerfile_name(ctx.dockerfile.as_deref());
    let mut lints = Vec::new();
    match &transfer.basis {
        ContextUse::Paths { .. } => {
            // Per ignore line: what it excludes, and whether any of it is named.
            let mut lines: HashMap<usize, (Tally, bool)> = HashMap::new();
            for (e, &named) in walk.entries.iter().zip(included) {
                if !e.excluded || e.kind == EntryKind::Dir {
                    continue;
                }
                if let Some(by) = e.by {
                    let slot = lines.entry(by).or_default();
                    slot.0.add(e.size);
                    slot.1 |= named;
                }
            }
            let mut idle: Vec<(usize, Tally)> = lines
                .into_iter()
                .filter(|(_, (_, named))| !named)
                .map(|(by, (t, _))| (by, t))
                .collect();
            idle.sort_by_key(|(by, _)| *by);
            if !idle.is_empty() {
                let mut total = Tally::default();
                let rules: Vec<String> = idle
                    .iter()
                    .map(|(by, t)| {
                        total.files += t.files;
                        total.bytes += t.bytes;
                        ctx.ignore.describe(*by)
                    })
                    .collect();
                let (what, verb, they) = if rules.len() == 1 {
                    ("line", "excludes", "it saves")
                } else {
                    ("lines", "exclude", "they save")
                };
                lints.push(Lint {
                    severity: Severity::Note,
                    message: format!(
                        "ignore {what} {} {verb} only what {df} never names ({} file(s), {}); for this build {they} nothing",
                        rules.join(", "),
                        total.files,
                        crate::human(total.bytes),
                    ),
                });
            }
        }
        ContextUse::Whole {
            line,
            instruction,
            why,
        } if instruction != "RUN" && transfer.bytes >= WHOLE_CONTEXT_NOTE_BYTES => {
            let mut tops: HashMap<String, u64> = HashMap::new();
            for e in moved {
                let path = e.display();
                let top = match path.split_once('/') {
                    Some((dir, _)) => format!("{dir}/"),
                    None => path.into_owned(),
                };
                *tops.entry(top).or_default() += e.size;
            }
            let mut tops: Vec<(String, u64)> = tops.into_iter().collect();
            tops.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let biggest: Vec<String> = tops
                .iter()
                .take(4)
                .map(|(p, b)| format!("{p} ({})", crate::human(*b)))
                .collect();
            lints.push(Lint {
                severity: Severity::Note,
                message: format!(
                    "{df}:{line} {why} transfers the whole context ({}); copying only the paths the image needs sends only those (biggest now: {})",
                    crate::human(transfer.bytes),
                    biggest.join(", ")
                ),
            });
        }
        _ => {}
    }
    lints
}
