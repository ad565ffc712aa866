//! Just enough of a Dockerfile to know what its build takes from the context:
//! the COPY/ADD sources and `RUN --mount` binds of every stage the target
//! reaches, as BuildKit's Dockerfile frontend collects them (its
//! `ctxPaths`), with build args and `ARG`/`ENV` expanded.

use std::collections::BTreeMap;

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

/// The parser directives BuildKit reads at the top of the file.
#[derive(Debug, Default)]
struct Directives {
    escape: Option<char>,
    syntax: Option<String>,
}

fn directives(text: &str) -> Directives {
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

fn instructions(text: &str) -> Vec<Instruction> {
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
            .filter(|s| !is_remote(s) && !s.starts_with("<<"))
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

fn is_remote(source: &str) -> bool {
    source.contains("://") || source.starts_with("git@")
}

/// What a build gives the Dockerfile frontend besides the file.
#[derive(Debug, Clone, Default)]
pub struct BuildInputs {
    /// Build arguments; a `None` value is one given without a value.
    pub args: BTreeMap<String, Option<String>>,
    /// The stage to build; the last one when `None`.
    pub target: Option<String>,
}

impl BuildInputs {
    /// From a service's `build` section as `docker compose config --format
    /// json` resolves it (`args` a map, `target` a string).
    pub fn from_compose(build: &serde_json::Value) -> BuildInputs {
        let args = build["args"]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_owned)))
                    .collect()
            })
            .unwrap_or_default();
        BuildInputs {
            args,
            target: build["target"].as_str().map(str::to_owned),
        }
    }
}

/// One path the frontend asks the client for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsedPath {
    /// Relative to the context and cleaned as the frontend does
    /// (`path.Join("/", src)`, then relative); wildcards kept.
    pub path: String,
    pub line: usize,
    pub instruction: String,
}

/// Which part of the context the build's frontend asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ContextUse {
    /// Only these paths; none means the build reads nothing from the context.
    Paths { paths: Vec<UsedPath> },
    /// Everything the ignore file lets through, because of the instruction at `line`.
    Whole {
        line: usize,
        instruction: String,
        why: String,
    },
    /// The file could not be settled: everything the ignore file lets
    /// through is assumed, and `why` says what stopped the reading.
    Unsure { why: String },
}

const KEYWORDS: &[&str] = &[
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

/// What a variable holds, as far as the Dockerfile tells.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lookup {
    Set(String),
    Unset,
    /// Not set by the Dockerfile; the base image's environment may set it.
    Unknown,
}

#[derive(Debug, Default)]
struct Stage {
    name: Option<String>,
    deps: Vec<usize>,
    /// Variables known to hold a value, or (`None`) declared without one.
    vars: BTreeMap<String, Option<String>>,
    /// Starts from an image whose environment is unknown here.
    foreign_env: bool,
    paths: Vec<UsedPath>,
    whole: Option<(usize, String, String)>,
    unsure: Option<String>,
}

impl Stage {
    fn lookup(&self, name: &str) -> Lookup {
        match self.vars.get(name) {
            Some(Some(v)) => Lookup::Set(v.clone()),
            Some(None) => Lookup::Unset,
            None if self.foreign_env => Lookup::Unknown,
            None => Lookup::Unset,
        }
    }

    /// `written` is the source as the file has it, `source` after expansion.
    fn use_path(&mut self, written: &str, source: &str, line: usize, instruction: &str) {
        let cleaned = crate::goclean::clean(&format!("/{source}"));
        let rel = cleaned.trim_start_matches('/');
        if rel.is_empty() {
            if self.whole.is_none() {
                let why = match (instruction, source.is_empty()) {
                    ("RUN", _) => "a RUN --mount bind of the context root".to_owned(),
                    (_, true) => format!("{instruction} {written}, empty once expanded"),
                    _ => format!("{instruction} {written}"),
                };
                self.whole = Some((line, instruction.to_owned(), why));
            }
        } else {
            self.paths.push(UsedPath {
                path: rel.to_owned(),
                line,
                instruction: instruction.to_owned(),
            });
        }
    }

    fn depend_on(&mut self, from: &str, stages: &[Stage]) {
        if let Some(i) = stage_index(from, stages) {
            self.deps.push(i);
        }
    }
}

fn stage_index(reference: &str, stages: &[Stage]) -> Option<usize> {
    let lower = reference.to_ascii_lowercase();
    stages
        .iter()
        .position(|s| s.name.as_deref() == Some(lower.as_str()))
        .or_else(|| {
            reference
                .parse::<usize>()
                .ok()
                .filter(|&i| i < stages.len())
        })
}

/// Reads which context paths the build asks for, as BuildKit's Dockerfile
/// frontend does: every COPY/ADD without `--from` (URLs and heredocs are not
/// paths) and every `RUN --mount` that binds the context, in the stages the
/// target reaches.
pub fn context_use(text: &str, inputs: &BuildInputs) -> ContextUse {
    let unsure = |why: String| ContextUse::Unsure { why };
    if let Some(syntax) = directives(text).syntax
        && !is_stock_frontend(&syntax)
    {
        return unsure(format!(
            "`# syntax={syntax}` names a frontend of its own; its rules are not known here"
        ));
    }
    let mut meta = Stage::default();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in instructions(text) {
        let keyword = ins.keyword.as_str();
        if !KEYWORDS.contains(&keyword) {
            return unsure(format!(
                "line {}: `{keyword}` is not an instruction known here",
                ins.line
            ));
        }
        if keyword == "FROM" {
            match from_stage(&ins, &meta, &stages) {
                Ok(stage) => stages.push(stage),
                Err(why) => return unsure(why),
            }
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            if keyword == "ARG"
                && let Err(why) = declare_args(&mut meta, &ins, inputs, None)
            {
                return unsure(why);
            }
            continue;
        };
        let result = match keyword {
            "ARG" => declare_args(stage, &ins, inputs, Some(&meta)),
            "ENV" => set_env(stage, &ins),
            "COPY" | "ADD" => {
                let mut stage = std::mem::take(stage);
                let r = copy_or_add(&mut stage, &ins, &stages);
                *stages.last_mut().expect("a stage") = stage;
                r
            }
            "RUN" => {
                let mut stage = std::mem::take(stage);
                let r = run_mounts(&mut stage, &ins, &stages);
                *stages.last_mut().expect("a stage") = stage;
                r
            }
            _ => Ok(()),
        };
        if let Err(why) = result {
            stages
                .last_mut()
                .expect("a stage")
                .unsure
                .get_or_insert(why);
        }
    }
    if stages.is_empty() {
        return unsure("the Dockerfile has no FROM".into());
    }
    let target = match &inputs.target {
        None => stages.len() - 1,
        Some(name) => match stage_index(name, &stages) {
            Some(i) => i,
            None => {
                return unsure(format!(
                    "the target `{name}` is not a stage of the Dockerfile"
                ));
            }
        },
    };
    let mut reached = vec![false; stages.len()];
    let mut todo = vec![target];
    while let Some(i) = todo.pop() {
        if !std::mem::replace(&mut reached[i], true) {
            todo.extend(stages[i].deps.iter().copied());
        }
    }
    let reached: Vec<&Stage> = stages
        .iter()
        .zip(&reached)
        .filter_map(|(s, &r)| r.then_some(s))
        .collect();
    if let Some(why) = reached.iter().find_map(|s| s.unsure.clone()) {
        return unsure(why);
    }
    if let Some((line, instruction, why)) = reached
        .iter()
        .filter_map(|s| s.whole.clone())
        .min_by_key(|w| w.0)
    {
        return ContextUse::Whole {
            line,
            instruction,
            why,
        };
    }
    let mut paths: Vec<UsedPath> = reached.iter().flat_map(|s| s.paths.clone()).collect();
    paths.sort_by_key(|p| p.line);
    ContextUse::Paths { paths }
}

fn is_stock_frontend(syntax: &str) -> bool {
    let image = syntax.trim_start_matches("docker.io/");
    image == "docker/dockerfile"
        || image.starts_with("docker/dockerfile:")
        || image.starts_with("docker/dockerfile@")
        || image.starts_with("docker/dockerfile-upstream:")
}

fn from_stage(ins: &Instruction, meta: &Stage, stages: &[Stage]) -> Result<Stage, String> {
    let words: Vec<&str> = ins
        .rest
        .split_whitespace()
        .filter(|w| !w.starts_with("--"))
        .collect();
    let Some(image) = words.first() else {
        return Err(format!("line {}: FROM names no image", ins.line));
    };
    let image = expand(image, |n| meta.lookup(n)).map_err(|e| format!("line {}: {e}", ins.line))?;
    let mut stage = Stage {
        name: match words.as_slice() {
            [_, as_, name] if as_.eq_ignore_ascii_case("as") => Some(name.to_ascii_lowercase()),
            _ => None,
        },
        ..Stage::default()
    };
    match stage_index(&image, stages).filter(|_| image.parse::<usize>().is_err()) {
        Some(i) => {
            stage.deps.push(i);
            stage.vars = stages[i].vars.clone();
            stage.foreign_env = stages[i].foreign_env;
        }
        None => stage.foreign_env = !image.eq_ignore_ascii_case("scratch"),
    }
    Ok(stage)
}

/// `ARG A=1 B`: a build argument wins over the default; inside a stage a
/// bare `ARG A` takes the global default.
fn declare_args(
    stage: &mut Stage,
    ins: &Instruction,
    inputs: &BuildInputs,
    meta: Option<&Stage>,
) -> Result<(), String> {
    for word in ins.rest.split_whitespace() {
        let (name, default) = match word.split_once('=') {
            Some((n, d)) => (n, Some(d)),
            None => (word, None),
        };
        let value = match (inputs.args.get(name), default) {
            (Some(Some(given)), _) => Some(given.clone()),
            (_, Some(d)) => Some(
                expand(d, |n| stage.lookup(n)).map_err(|e| format!("line {}: {e}", ins.line))?,
            ),
            (_, None) => meta.and_then(|m| m.vars.get(name).cloned()).flatten(),
        };
        stage.vars.insert(name.to_owned(), value);
    }
    Ok(())
}

/// `ENV A=1 B="two words"` or the old `ENV A value`.
fn set_env(stage: &mut Stage, ins: &Instruction) -> Result<(), String> {
    let at = |e: String| format!("line {}: {e}", ins.line);
    let first = ins.rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (name, value) = ins
            .rest
            .split_once(char::is_whitespace)
            .unwrap_or((&ins.rest, ""));
        let value = expand(value.trim(), |n| stage.lookup(n)).map_err(at)?;
        stage.vars.insert(name.to_owned(), Some(value));
        return Ok(());
    }
    for word in shell_words(&ins.rest) {
        if let Some((name, value)) = word.split_once('=') {
            let value = expand(value, |n| stage.lookup(n)).map_err(at)?;
            stage.vars.insert(name.to_owned(), Some(value));
        }
    }
    Ok(())
}

fn copy_or_add(stage: &mut Stage, ins: &Instruction, stages: &[Stage]) -> Result<(), String> {
    let at = |e: String| format!("line {}: {e}", ins.line);
    let args = arguments(&ins.rest);
    let mut from = None;
    let mut positional = Vec::new();
    for a in &args {
        if positional.is_empty() && a.starts_with("--") {
            if let Some(v) = a.strip_prefix("--from=") {
                from = Some(expand(v, |n| stage.lookup(n)).map_err(at)?);
            }
        } else {
            positional.push(a.as_str());
        }
    }
    if let Some(from) = from {
        stage.depend_on(&from, stages);
        return Ok(());
    }
    let Some((_, sources)) = positional.split_last() else {
        return Ok(());
    };
    for source in sources {
        if source.starts_with("<<") || (ins.keyword == "ADD" && is_remote(source)) {
            continue;
        }
        let expanded = expand(source, |n| stage.lookup(n)).map_err(at)?;
        stage.use_path(source, &expanded, ins.line, &ins.keyword);
    }
    Ok(())
}

/// `RUN --mount=type=bind,source=x,from=y`: a mount without `from` reads the
/// context (a cache mount without one reads an empty folder; secrets and
/// SSH sockets read nothing). BuildKit counts tmpfs mounts too.
fn run_mounts(stage: &mut Stage, ins: &Instruction, stages: &[Stage]) -> Result<(), String> {
    let at = |e: String| format!("line {}: {e}", ins.line);
    for word in ins.rest.split_whitespace() {
        if !word.starts_with("--") {
            break;
        }
        let Some(spec) = word.strip_prefix("--mount=") else {
            continue;
        };
        let (mut kind, mut from, mut source) = ("bind".to_owned(), String::new(), String::new());
        for field in spec.split(',') {
            let (key, value) = field.split_once('=').unwrap_or((field, ""));
            let value = expand(value, |n| stage.lookup(n)).map_err(at)?;
            match key.to_ascii_lowercase().as_str() {
                "type" => kind = value.to_ascii_lowercase(),
                "from" => from = value,
                "source" | "src" => source = value,
                _ => {}
            }
        }
        match (kind.as_str(), from.is_empty()) {
            ("secret" | "ssh", _) | ("cache", true) => {}
            (_, true) => stage.use_path(spec, &source, ins.line, "RUN"),
            (_, false) => stage.depend_on(&from, stages),
        }
    }
    Ok(())
}

/// Whitespace-separated words, quotes kept together (for `ENV a="b c"`).
fn shell_words(text: &str) -> Vec<String> {
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

/// One word expanded as BuildKit's shell lexer does: quotes removed,
/// `$A`, `${A}`, `${A:-x}`, `${A-x}`, `${A:+x}`, `${A+x}`. A variable whose
/// value is not known here (it may come from a base image's environment)
/// and the other operators are errors that say so.
fn expand(word: &str, lookup: impl Fn(&str) -> Lookup + Copy) -> Result<String, String> {
    let mut out = String::new();
    let chars: Vec<char> = word.chars().collect();
    let mut i = 0;
    let mut quote: Option<char> = None;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '\'' if quote.is_none() => quote = Some('\''),
            '\'' if quote == Some('\'') => quote = None,
            '"' if quote.is_none() => quote = Some('"'),
            '"' if quote == Some('"') => quote = None,
            '\\' if quote != Some('\'') && i < chars.len() => {
                out.push(chars[i]);
                i += 1;
            }
            '$' if quote != Some('\'') && i < chars.len() => {
                if chars[i] == '{' {
                    let Some(len) = chars[i..].iter().position(|&c| c == '}') else {
                        return Err(format!("`{word}` has an unclosed `${{`"));
                    };
                    let body: String = chars[i + 1..i + len].iter().collect();
                    i += len + 1;
                    out.push_str(&braced(&body, word, lookup)?);
                } else {
                    let len = chars[i..]
                        .iter()
                        .position(|c| !(c.is_ascii_alphanumeric() || *c == '_'))
                        .unwrap_or(chars.len() - i);
                    if len == 0 {
                        out.push('$');
                        continue;
                    }
                    let name: String = chars[i..i + len].iter().collect();
                    i += len;
                    out.push_str(&known(&name, word, lookup)?);
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

fn unknown(name: &str, word: &str) -> String {
    format!(
        "`${name}` in `{word}` is set by no ARG or ENV of the Dockerfile (it may come from the base image)"
    )
}

fn known(name: &str, word: &str, lookup: impl Fn(&str) -> Lookup) -> Result<String, String> {
    match lookup(name) {
        Lookup::Set(v) => Ok(v),
        Lookup::Unset => Ok(String::new()),
        Lookup::Unknown => Err(unknown(name, word)),
    }
}

fn braced(
    body: &str,
    word: &str,
    lookup: impl Fn(&str) -> Lookup + Copy,
) -> Result<String, String> {
    let name_len = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, op) = body.split_at(name_len);
    // `:` makes an empty value count as unset.
    let (colon, op) = match op.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, op),
    };
    let value = match lookup(name) {
        Lookup::Unknown => return Err(unknown(name, word)),
        Lookup::Set(v) if !(colon && v.is_empty()) => Some(v),
        _ => None,
    };
    match (op.chars().next(), value) {
        (None, v) if !colon => Ok(v.unwrap_or_default()),
        (Some('-'), Some(v)) => Ok(v),
        (Some('-'), None) => expand(&op[1..], lookup),
        (Some('+'), Some(_)) => expand(&op[1..], lookup),
        (Some('+'), None) => Ok(String::new()),
        _ => Err(format!(
            "`${{{body}}}` in `{word}` uses an operator not read here"
        )),
    }
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
    fn paths(
        text: &str,
        args: &[(&str, &str)],
        target: Option<&str>,
    ) -> Result<Vec<String>, String> {
        let inputs = BuildInputs {
            args: args
                .iter()
                .map(|(k, v)| (k.to_string(), Some(v.to_string())))
                .collect(),
            target: target.map(str::to_owned),
        };
        match context_use(text, &inputs) {
            ContextUse::Paths { paths } => Ok(paths.into_iter().map(|p| p.path).collect()),
            ContextUse::Whole { line, why, .. } => Err(format!("whole at {line}: {why}")),
            ContextUse::Unsure { why } => Err(format!("unsure: {why}")),
        }
    }

    #[test]
    fn context_paths_of_the_stages_the_target_reaches() {
        let text = r#"ARG APP=server
FROM golang:1.22 AS build
ARG APP
COPY go.mod go.sum ./
COPY ./cmd/${APP}/ ../internal/*.go /src/
RUN --mount=type=cache,target=/root/.cache --mount=type=bind,source=vendor,target=/v --mount=type=secret,id=x go build
ADD https://example.com/x.tgz /x
COPY <<EOF /etc/conf
COPY not-a-path /x
EOF
FROM build AS test
COPY testdata /t
FROM scratch AS final
COPY --from=build /out/app /app
COPY static/ /static
"#;
        assert_eq!(
            paths(text, &[], None).unwrap(),
            [
                "go.mod",
                "go.sum",
                "cmd/server",
                "internal/*.go",
                "vendor",
                "static"
            ]
        );
        assert_eq!(
            paths(text, &[("APP", "worker")], Some("test")).unwrap(),
            [
                "go.mod",
                "go.sum",
                "cmd/worker",
                "internal/*.go",
                "vendor",
                "testdata"
            ]
        );
        let by_index = "FROM scratch AS a\nCOPY a /a\nFROM scratch\nCOPY --from=0 /a /a\n";
        assert_eq!(paths(by_index, &[], None).unwrap(), ["a"]);
        let none = paths("FROM debian\nRUN echo hi\n", &[], None).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn the_whole_context_and_what_cannot_be_settled() {
        let err = |t: &str| paths(t, &[], None).unwrap_err();
        assert_eq!(
            err("FROM x\nCOPY a /a\nCOPY ./ /app\n"),
            "whole at 3: COPY ./"
        );
        assert_eq!(err("FROM x\nCOPY ../.. /app\n"), "whole at 2: COPY ../..");
        let bind = err("FROM x\nRUN --mount=target=/src make\n");
        assert!(bind.starts_with("whole at 2: a RUN --mount"), "{bind}");
        assert!(err("FROM x\nRUN --mount=type=tmpfs,target=/t make\n").starts_with("whole at 2"));
        let base_env = err("FROM golang\nCOPY $GOPATH/x /x\n");
        assert!(
            base_env.contains("`$GOPATH` in `$GOPATH/x` is set by no ARG or ENV"),
            "{base_env}"
        );
        let frontend = err("# syntax=example.com/my/frontend\nFROM x\nCOPY a /a\n");
        assert!(frontend.contains("frontend of its own"), "{frontend}");
        assert!(err("FROM x\nFETCH a /a\n").contains("line 2: `FETCH`"));
        let target = paths("FROM x\nCOPY a /a\n", &[], Some("nope")).unwrap_err();
        assert!(target.contains("target `nope`"), "{target}");
        // The stock frontend named by a syntax line is read as usual.
        let stock = "# syntax=docker/dockerfile:1.7\nFROM x\nCOPY a /a\n";
        assert_eq!(paths(stock, &[], None).unwrap(), ["a"]);
    }

    #[test]
    fn variables_expand_as_the_shell_lexer_does() {
        let t = "# escape=`\nFROM scratch\nARG V\nENV D=data E=\"two words\"\nCOPY ${V:-def} ${V:+plus} $D/x `\n  ${UNSET-fallback} \"${E}\" /dst/\n";
        // An empty word is the context root, as BuildKit reads it.
        assert_eq!(
            paths(t, &[], None).unwrap_err(),
            "whole at 5: COPY ${V:+plus}, empty once expanded"
        );
        assert_eq!(
            paths(t, &[("V", "given")], None).unwrap(),
            ["given", "plus", "data/x", "fallback", "two words"]
        );
        let exec = "FROM scratch\nENV D=dir\nCOPY [\"$D/a b\", \"/dst/\"]\n";
        assert_eq!(paths(exec, &[], None).unwrap(), ["dir/a b"]);
    }
}
