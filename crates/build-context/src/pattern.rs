//! One `.dockerignore` pattern, compiled exactly as moby/patternmatcher does.
//!
//! A pattern is classified as an exact, prefix (`dir/**`), suffix (`**/x`) or
//! regular-expression match, and the regex is built token by token from the
//! cleaned pattern. Syntax errors that Go's `filepath.Match` reports are found
//! when the pattern is read (the engine refuses the whole build); errors that
//! only the regex compiler sees surface when the pattern is first evaluated,
//! again as the engine does it.

use regex::bytes::Regex;

use crate::goclean::clean;

/// A compiled pattern; `text` is the cleaned pattern without its `!`.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    pub exclusion: bool,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Exact,
    /// `text` minus its trailing `**`.
    Prefix(String),
    /// `text` minus its leading `**`.
    Suffix(String),
    /// The regex or the compiler's complaint, raised on first use; the
    /// expression as Go writes it is kept for messages and tests.
    Regex {
        go: String,
        compiled: Result<Regex, String>,
    },
}

/// Why a pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternError {
    /// A lone `!`.
    IllegalExclusion,
    /// What Go's `filepath.Match` calls `ErrBadPattern`.
    Syntax,
    /// The translated regular expression does not compile.
    Regex(String),
}

impl std::fmt::Display for PatternError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PatternError::IllegalExclusion => f.write_str("illegal exclusion pattern: \"!\""),
            PatternError::Syntax => f.write_str("syntax error in pattern"),
            PatternError::Regex(e) => write!(f, "syntax error in pattern: {e}"),
        }
    }
}

impl Pattern {
    /// Compiles one pattern as `patternmatcher.New` does; `Ok(None)` for a
    /// pattern that is empty after trimming.
    pub fn new(raw: &str) -> Result<Option<Pattern>, PatternError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Ok(None);
        }
        let mut p = clean(trimmed);
        let mut exclusion = false;
        if let Some(rest) = p.strip_prefix('!') {
            if rest.is_empty() {
                return Err(PatternError::IllegalExclusion);
            }
            exclusion = true;
            p = rest.to_owned();
        }
        if !glob_syntax_ok(p.as_bytes()) {
            return Err(PatternError::Syntax);
        }
        let kind = compile(&p);
        Ok(Some(Pattern {
            text: p,
            exclusion,
            kind,
        }))
    }

    /// Whether the pattern matches `path` itself (not its parents).
    pub fn matches(&self, path: &[u8]) -> Result<bool, PatternError> {
        Ok(match &self.kind {
            Kind::Exact => path == self.text.as_bytes(),
            Kind::Prefix(prefix) => path.starts_with(prefix.as_bytes()),
            Kind::Suffix(suffix) => {
                let s = suffix.as_bytes();
                path.ends_with(s) || (s.first() == Some(&b'/') && path == &s[1..])
            }
            Kind::Regex {
                compiled: Ok(re), ..
            } => re.is_match(path),
            Kind::Regex {
                compiled: Err(e), ..
            } => return Err(PatternError::Regex(e.clone())),
        })
    }

    /// The regular expression as patternmatcher writes it for Go, if any.
    pub fn go_regex(&self) -> Option<&str> {
        match &self.kind {
            Kind::Regex { go, .. } => Some(go),
            _ => None,
        }
    }

    /// The pattern with one trailing `/**` and then one trailing `/*` removed,
    /// as fsutil computes it to decide whether an excluded folder can be pruned.
    pub fn without_trailing_glob(&self) -> &str {
        let p = self.text.strip_suffix("/**").unwrap_or(&self.text);
        p.strip_suffix("/*").unwrap_or(p)
    }
}

/// Translates a cleaned pattern into its match kind (patternmatcher's `compile`).
fn compile(pattern: &str) -> Kind {
    #[derive(PartialEq)]
    enum Ty {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut re = String::from("^");
    let mut ty = Ty::Exact;
    let mut chars = pattern.chars().peekable();
    let mut i = 0;
    while let Some(ch) = chars.next() {
        match ch {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `**/` is treated as `**`.
                if chars.peek() == Some(&'/') {
                    chars.next();
                }
                if chars.peek().is_none() {
                    if ty == Ty::Exact {
                        ty = Ty::Prefix;
                    } else {
                        re.push_str(".*");
                        ty = Ty::Regex;
                    }
                } else {
                    re.push_str("(.*/)?");
                    ty = Ty::Regex;
                }
                if i == 0 {
                    ty = Ty::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                ty = Ty::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                ty = Ty::Regex;
            }
            '.' | '+' | '(' | ')' | '|' | '{' | '}' | '$' => {
                re.push('\\');
                re.push(ch);
            }
            '\\' => match chars.next() {
                Some(next) => {
                    re.push('\\');
                    re.push(next);
                    ty = Ty::Regex;
                }
                None => re.push('\\'),
            },
            '[' | ']' => {
                re.push(ch);
                ty = Ty::Regex;
            }
            _ => re.push(ch),
        }
        i += 1;
    }
    match ty {
        Ty::Exact => Kind::Exact,
        Ty::Prefix => Kind::Prefix(pattern[..pattern.len() - 2].to_owned()),
        Ty::Suffix => Kind::Suffix(pattern[2..].to_owned()),
        Ty::Regex => {
            re.push('$');
            let compiled = Regex::new(&go_regex_to_rust(&re)).map_err(|e| e.to_string());
            Kind::Regex { go: re, compiled }
        }
    }
}

/// Rewrites a Go RE2 expression into one Rust's regex reads the same way.
///
/// The two dialects differ where patternmatcher's output can reach: inside a
/// class RE2 takes `[` (unless it opens `[:name:]`), `&` and `~` literally,
/// where Rust nests classes and reads `&&`/`~~` as set operations; RE2 takes
/// `\<` and `\>` as literals, Rust as word boundaries; a leading `]` in a class
/// is a literal in RE2. Punctuation escapes become hex escapes, which mean the
/// literal character everywhere in Rust. `\d`, `\w`, `\s` stay as they are:
/// Rust's are Unicode-aware where RE2's are ASCII (see ARCHITECTURE.md).
fn go_regex_to_rust(go: &str) -> String {
    let chars: Vec<char> = go.chars().collect();
    let mut out = String::with_capacity(go.len() + 8);
    let mut in_class = false;
    let mut i = 0;
    let hex = |out: &mut String, c: char| out.push_str(&format!("\\x{{{:X}}}", c as u32));
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let next = chars[i + 1];
                if next.is_ascii_punctuation() || next == ' ' {
                    hex(&mut out, next);
                } else {
                    out.push('\\');
                    out.push(next);
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    hex(&mut out, ']');
                    i += 1;
                }
            }
            ']' if !in_class => hex(&mut out, ']'),
            ']' => {
                in_class = false;
                out.push(']');
            }
            '[' => {
                let rest: String = chars[i..].iter().collect();
                match rest.strip_prefix("[:").and_then(|r| r.find(":]")) {
                    Some(end) => {
                        out.push_str(&rest[..end + 4]);
                        i += rest[..end + 4].chars().count();
                        continue;
                    }
                    None => hex(&mut out, '['),
                }
            }
            '&' | '~' if in_class => hex(&mut out, c),
            '-' if in_class && out.ends_with('-') => hex(&mut out, '-'),
            _ => out.push(c),
        }
        i += 1;
    }
    out
}

/// Go's `filepath.Match(pattern, ".")` succeeds without error exactly when
/// every chunk of the pattern parses; this checks that, byte for byte.
fn glob_syntax_ok(mut pattern: &[u8]) -> bool {
    while !pattern.is_empty() {
        // scanChunk: leading stars, then up to the next unbracketed star.
        while pattern.first() == Some(&b'*') {
            pattern = &pattern[1..];
        }
        let mut in_range = false;
        let mut i = 0;
        while i < pattern.len() {
            match pattern[i] {
                b'\\' if i + 1 < pattern.len() => i += 1,
                b'[' => in_range = true,
                b']' => in_range = false,
                b'*' if !in_range => break,
                _ => {}
            }
            i += 1;
        }
        if !chunk_ok(&pattern[..i]) {
            return false;
        }
        pattern = &pattern[i..];
    }
    true
}

/// The parsing half of Go's `matchChunk`.
fn chunk_ok(mut chunk: &[u8]) -> bool {
    while let Some(&c) = chunk.first() {
        match c {
            b'[' => {
                chunk = &chunk[1..];
                if chunk.first() == Some(&b'^') {
                    chunk = &chunk[1..];
                }
                let mut nrange = 0;
                loop {
                    if chunk.first() == Some(&b']') && nrange > 0 {
                        chunk = &chunk[1..];
                        break;
                    }
                    let Some(rest) = class_char(chunk) else {
                        return false;
                    };
                    chunk = rest;
                    if chunk.first() == Some(&b'-') {
                        let Some(rest) = class_char(&chunk[1..]) else {
                            return false;
                        };
                        chunk = rest;
                    }
                    nrange += 1;
                }
            }
            b'\\' => {
                if chunk.len() < 2 {
                    return false;
                }
                chunk = &chunk[2..];
            }
            _ => chunk = &chunk[1..],
        }
    }
    true
}

/// Go's `getEsc`: one (possibly escaped) character of a class; `None` on error.
fn class_char(mut chunk: &[u8]) -> Option<&[u8]> {
    match chunk.first() {
        None | Some(b'-') | Some(b']') => return None,
        Some(b'\\') => {
            chunk = &chunk[1..];
            if chunk.is_empty() {
                return None;
            }
        }
        _ => {}
    }
    let width = utf8_width(chunk)?;
    let rest = &chunk[width..];
    if rest.is_empty() { None } else { Some(rest) }
}

fn utf8_width(bytes: &[u8]) -> Option<usize> {
    let max = bytes.len().min(4);
    (1..=max).find(|&w| std::str::from_utf8(&bytes[..w]).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_name(p: &str) -> (&'static str, String) {
        let pat = Pattern::new(p).unwrap().unwrap();
        match &pat.kind {
            Kind::Exact => ("exact", String::new()),
            Kind::Prefix(_) => ("prefix", String::new()),
            Kind::Suffix(_) => ("suffix", String::new()),
            Kind::Regex { go, compiled } => {
                assert!(compiled.is_ok(), "{p}: {compiled:?}");
                ("regex", go.clone())
            }
        }
    }

    /// patternmatcher's `compileTests`, for the `/` separator.
    #[test]
    fn compile_table() {
        let table = [
            ("*", "regex", r"^[^/]*$"),
            ("file*", "regex", r"^file[^/]*$"),
            ("*file", "regex", r"^[^/]*file$"),
            ("a*/b", "regex", r"^a[^/]*/b$"),
            ("**", "suffix", ""),
            ("**/**", "regex", r"^(.*/)?.*$"),
            ("dir/**", "prefix", ""),
            ("**/dir", "suffix", ""),
            ("**/dir2/*", "regex", r"^(.*/)?dir2/[^/]*$"),
            ("**/dir2/**", "regex", r"^(.*/)?dir2/.*$"),
            ("**file", "suffix", ""),
            ("**/file*txt", "regex", r"^(.*/)?file[^/]*txt$"),
            ("**/**/*.txt", "regex", r"^(.*/)?(.*/)?[^/]*\.txt$"),
            ("a[b-d]e", "regex", r"^a[b-d]e$"),
            (".*", "regex", r"^\.[^/]*$"),
            ("abc.def", "exact", ""),
            ("abc?def", "regex", r"^abc[^/]def$"),
            ("**/foo/bar", "suffix", ""),
            ("a(b)c/def", "exact", ""),
            ("a.|)$(}+{bc", "exact", ""),
            (
                "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
                "exact",
                "",
            ),
        ];
        for (pattern, kind, regex) in table {
            assert_eq!(
                kind_name(pattern),
                (kind, regex.to_owned()),
                "pattern {pattern:?}"
            );
        }
    }

    /// Go's filepath.Match error vectors as patternmatcher's tests carry them.
    #[test]
    fn syntax_table() {
        let bad = [
            "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "a/[",
            "*[x-]*",
        ];
        for p in bad {
            assert_eq!(
                Pattern::new(p).unwrap_err(),
                PatternError::Syntax,
                "pattern {p:?}"
            );
        }
        let good = [
            "[\\]a]",
            "[\\-]",
            "[x\\-]",
            "[\\-x]",
            "a\\*b",
            "[a-ζ]*",
            "**/x",
            "a*b?c",
            "[Local-Only]/",
        ];
        for p in good {
            assert!(Pattern::new(p).unwrap().is_some(), "pattern {p:?}");
        }
        assert_eq!(
            Pattern::new("!").unwrap_err(),
            PatternError::IllegalExclusion
        );
        assert!(Pattern::new("   ").unwrap().is_none());
    }

    /// RE2 corners that Rust's regex reads differently unless rewritten.
    #[test]
    fn rust_reads_re2_corners_the_same() {
        let table: &[(&str, &str, bool)] = &[
            ("[[]br]", "[br]", true),
            ("[[]br]", "b", false),
            ("a]b", "a]b", true),
            ("[a&&b]", "&", true),
            ("[a~~b]", "~", true),
            ("a\\<b", "a<b", true),
            ("[[:digit:]x]", "7", true),
            ("[[:digit:]x]", "y", false),
            ("x\\.y", "x.y", true),
            ("x\\.y", "xzy", false),
        ];
        for &(pattern, path, want) in table {
            let p = Pattern::new(pattern).unwrap().unwrap();
            assert_eq!(
                p.matches(path.as_bytes()),
                Ok(want),
                "pattern {pattern:?} path {path:?}"
            );
        }
    }

    /// Passes the Go syntax check but not the regex compiler: the error waits
    /// until the pattern is evaluated (moby/moby#52203).
    #[test]
    fn regex_errors_are_lazy() {
        let p = Pattern::new("[Local-Only]/").unwrap().unwrap();
        assert!(matches!(p.matches(b"x"), Err(PatternError::Regex(_))));
        let p = Pattern::new("a\\y").unwrap().unwrap();
        assert!(matches!(p.matches(b"ay"), Err(PatternError::Regex(_))));
    }
}
