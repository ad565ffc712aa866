//! The Dockerfile's syntax as BuildKit reads it: parser directives,
//! instructions with continuation lines joined and heredoc bodies skipped,
//! and the shell words of an instruction.

/// One instruction, continuation lines joined, heredoc bodies skipped.
pub(super) struct Instruction {
    /// 1-based line where it starts.
    pub(super) line: usize,
    /// Upper-cased.
    pub(super) keyword: String,
    pub(super) rest: String,
}

/// The parser directives BuildKit reads at the top of the file.
#[derive(Debug, Default)]
pub(super) struct Directives {
    pub(super) escape: Option<char>,
    pub(super) syntax: Option<String>,
}

pub(super) fn directives(text: &str) -> Directives {
    let mut d = Directives::default();
    for line in text.lines() {
        let Some(body) = line.trim().strip_prefix('#') else {
            break;
        };
        let Some((key, value)) = body.split_once('=') else {
            break;
        };
        let key = key.trim().to_ascii_lowercase();
        if key.contains(char::is_whitespace) {
            break;
        }
        match key.as_str() {
            "escape" => d.escape = value.trim().chars().next(),
            "syntax" => d.syntax = Some(value.trim().to_owned()),
            _ => {}
        }
    }
    d
}

pub(super) fn instructions(text: &str) -> Vec<Instruction> {
    let escape = directives(text).escape.unwrap_or('\\');
    let mut out = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let start = i;
        let first = lines[i].trim();
        i += 1;
        if first.is_empty() || first.starts_with('#') {
            continue;
        }
        // Join continuation lines; comment lines inside a continuation vanish.
        let mut joined = String::from(first);
        while joined.ends_with(escape) && i < lines.len() {
            joined.pop();
            let next = lines[i].trim();
            i += 1;
            if next.starts_with('#') || next.is_empty() {
                joined.push(escape);
                continue;
            }
            joined.push(' ');
            joined.push_str(next);
        }
        let (keyword, rest) = joined
            .split_once(char::is_whitespace)
            .unwrap_or((&joined, ""));
        let keyword = keyword.to_ascii_uppercase();
        if let Some(marker) = heredoc_marker(rest) {
            // Skip the heredoc body up to its terminator.
            while i < lines.len() && lines[i].trim() != marker {
                i += 1;
            }
            i += 1;
        }
        out.push(Instruction {
            line: start + 1,
            keyword,
            rest: rest.trim().to_owned(),
        });
    }
    out
}

/// Whitespace-separated words, quotes kept together (for `ENV a="b c"`).
pub(super) fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, c) if c.is_whitespace() => {
                if !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                }
            }
            (None, '"' | '\'') => {
                quote = Some(c);
                cur.push(c);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(c);
            }
            (_, '\\') => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        words.push(cur);
    }
    words
}

pub(super) fn arguments(rest: &str) -> Vec<String> {
    // The exec form is a JSON array of strings.
    if rest.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(rest)
    {
        return list;
    }
    rest.split_whitespace().map(str::to_owned).collect()
}

pub(super) fn heredoc_marker(rest: &str) -> Option<String> {
    let at = rest.find("<<")?;
    let marker = rest[at + 2..]
        .trim_start_matches('-')
        .split_whitespace()
        .next()?;
    let marker = marker.trim_matches(|c| c == '"' || c == '\'');
    (!marker.is_empty()
        && marker
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'))
    .then(|| marker.to_owned())
}

pub(super) const KEYWORDS: &[&str] = &[
    "FROM",
    "RUN",
    "CMD",
    "LABEL",
    "MAINTAINER",
    "EXPOSE",
    "ENV",
    "ADD",
    "COPY",
    "ENTRYPOINT",
    "VOLUME",
    "USER",
    "WORKDIR",
    "ARG",
    "ONBUILD",
    "STOPSIGNAL",
    "HEALTHCHECK",
    "SHELL",
];
