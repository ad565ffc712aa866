//! Lints of a build context: COPY/ADD sources the ignore file hides (the
//! build breaks, or silently leaves files out), and secrets it sends.

use std::collections::HashMap;

use serde::Serialize;

use crate::context::Context;
use crate::dockerfile::CopySource;
use crate::matcher::Matcher;
use crate::report::Tally;
use crate::walk::{Entry, EntryKind, Walk};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
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
    let df = ctx
        .dockerfile
        .as_ref()
        .and_then(|d| d.file_name())
        .unwrap_or("Dockerfile");
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
