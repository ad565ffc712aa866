//! Just enough of a Dockerfile to know what COPY and ADD take from the context.

/// One COPY or ADD that reads the build context.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopySource {
    /// 1-based line where the instruction starts.
    pub line: usize,
    pub instruction: String,
    /// Sources as written, relative to the context.
    pub sources: Vec<String>,
}

/// One instruction, continuation lines joined, heredoc bodies skipped.
struct Instruction {
    /// 1-based line where it starts.
    line: usize,
    /// Upper-cased.
    keyword: String,
    rest: String,
}

fn instructions(text: &str) -> Vec<Instruction> {
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
        while joined.ends_with('\\') && i < lines.len() {
            joined.pop();
            let next = lines[i].trim();
            i += 1;
            if next.starts_with('#') || next.is_empty() {
                joined.push('\\');
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
            continue;
        }
        out.push(Instruction {
            line: start + 1,
            keyword,
            rest: rest.trim().to_owned(),
        });
    }
    out
}

/// The COPY/ADD instructions that read the context (no `--from`, no URLs, no heredocs).
pub fn copy_sources(text: &str) -> Vec<CopySource> {
    let mut out = Vec::new();
    for ins in instructions(text) {
        if ins.keyword != "COPY" && ins.keyword != "ADD" {
            continue;
        }
        let args = arguments(&ins.rest);
        let (flags, rest): (Vec<&String>, Vec<&String>) =
            args.iter().partition(|a| a.starts_with("--"));
        if flags.iter().any(|f| f.starts_with("--from")) || rest.len() < 2 {
            continue;
        }
        let sources: Vec<String> = rest[..rest.len() - 1]
            .iter()
            .filter(|s| !s.contains("://") && !s.starts_with("git@"))
            .map(|s| s.to_string())
            .collect();
        if !sources.is_empty() {
            out.push(CopySource {
                line: ins.line,
                instruction: ins.keyword,
                sources,
            });
        }
    }
    out
}

/// The images the stages start from, as written (`${VAR}` unresolved): every
/// `FROM` that names neither an earlier stage nor `scratch`.
pub fn base_images(text: &str) -> Vec<String> {
    let mut stages: Vec<String> = Vec::new();
    let mut out: Vec<String> = Vec::new();
    for ins in instructions(text)
        .into_iter()
        .filter(|i| i.keyword == "FROM")
    {
        let words: Vec<&str> = ins
            .rest
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        let Some(image) = words.first() else { continue };
        let lower = image.to_ascii_lowercase();
        if lower != "scratch" && !stages.contains(&lower) && !out.iter().any(|o| o == image) {
            out.push((*image).to_owned());
        }
        if let [_, as_, name] = words.as_slice()
            && as_.eq_ignore_ascii_case("as")
        {
            stages.push(name.to_ascii_lowercase());
        }
    }
    out
}

fn arguments(rest: &str) -> Vec<String> {
    // The exec form is a JSON array of strings.
    if rest.starts_with('[')
        && let Ok(list) = serde_json::from_str::<Vec<String>>(rest)
    {
        return list;
    }
    rest.split_whitespace().map(str::to_owned).collect()
}

fn heredoc_marker(rest: &str) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_images_are_the_froms_that_name_no_stage() {
        let text = "FROM --platform=$BUILDPLATFORM debian:bookworm-slim AS base\nFROM rust:1.95 as Builder\nFROM base AS db\nFROM builder\nFROM db\nfrom scratch\nFROM debian:bookworm-slim\nFROM ${BASE}\n";
        assert_eq!(
            base_images(text),
            ["debian:bookworm-slim", "rust:1.95", "${BASE}"]
        );
    }

    #[test]
    fn reads_copy_and_add_sources() {
        let text = "FROM rust AS build\n# a comment\nCOPY --chown=1:1 Cargo.toml Cargo.lock /src/\nCOPY crates/ \\\n  # inside\n  /src/crates/\nADD [\"a b.txt\", \"/x/\"]\nCOPY --from=build /bin/app /app\nADD https://example.com/x /x\nRUN <<EOF\nCOPY fake /x\nEOF\ncopy . /all\n";
        let got = copy_sources(text);
        let simple: Vec<(usize, Vec<&str>)> = got
            .iter()
            .map(|c| (c.line, c.sources.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            simple,
            [
                (3, vec!["Cargo.toml", "Cargo.lock"]),
                (4, vec!["crates/"]),
                (7, vec!["a b.txt"]),
                (13, vec!["."])
            ]
        );
    }
}
