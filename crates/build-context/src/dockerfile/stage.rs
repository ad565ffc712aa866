//! A stage as the frontend walks it: its variables (`ARG`, `ENV`, build
//! args) and their expansion, the stages it depends on, and the context
//! paths its instructions use.

use std::collections::BTreeMap;

use super::parse::{Instruction, arguments, shell_words};
use super::{BuildInputs, UsedPath, is_remote};

/// What a variable holds, as far as the Dockerfile tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Lookup {
    Set(String),
    Unset,
    /// Not set by the Dockerfile; the base image's environment may set it.
    Unknown,
}

#[derive(Debug, Default)]
pub(super) struct Stage {
    pub(super) name: Option<String>,
    pub(super) deps: Vec<usize>,
    /// Variables known to hold a value, or (`None`) declared without one.
    pub(super) vars: BTreeMap<String, Option<String>>,
    /// Starts from an image whose environment is unknown here.
    pub(super) foreign_env: bool,
    pub(super) paths: Vec<UsedPath>,
    pub(super) whole: Option<(usize, String, String)>,
    pub(super) unsure: Option<String>,
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

pub(super) fn stage_index(reference: &str, stages: &[Stage]) -> Option<usize> {
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

pub(super) fn from_stage(
    ins: &Instruction,
    meta: &Stage,
    stages: &[Stage],
) -> Result<Stage, String> {
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
pub(super) fn declare_args(
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
pub(super) fn set_env(stage: &mut Stage, ins: &Instruction) -> Result<(), String> {
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

pub(super) fn copy_or_add(
    stage: &mut Stage,
    ins: &Instruction,
    stages: &[Stage],
) -> Result<(), String> {
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
pub(super) fn run_mounts(
    stage: &mut Stage,
    ins: &Instruction,
    stages: &[Stage],
) -> Result<(), String> {
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

/// One word expanded as BuildKit's shell lexer does: quotes removed,
/// `$A`, `${A}`, `${A:-x}`, `${A-x}`, `${A:+x}`, `${A+x}`. A variable whose
/// value is not known here (it may come from a base image's environment)
/// and the other operators are errors that say so.
pub(super) fn expand(word: &str, lookup: impl Fn(&str) -> Lookup + Copy) -> Result<String, String> {
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

pub(super) fn unknown(name: &str, word: &str) -> String {
    format!(
        "`${name}` in `{word}` is set by no ARG or ENV of the Dockerfile (it may come from the base image)"
    )
}

pub(super) fn known(
    name: &str,
    word: &str,
    lookup: impl Fn(&str) -> Lookup,
) -> Result<String, String> {
    match lookup(name) {
        Lookup::Set(v) => Ok(v),
        Lookup::Unset => Ok(String::new()),
        Lookup::Unknown => Err(unknown(name, word)),
    }
}

pub(super) fn braced(
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
