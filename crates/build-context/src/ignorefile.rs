//! The `.dockerignore` reader, as moby/patternmatcher's `ignorefile.ReadAll`.

/// Go's bufio.Scanner refuses longer lines, and so does the engine.
const MAX_LINE: usize = 64 * 1024;

/// One pattern line of an ignore file, after the reader's normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreLine {
    /// 1-based line number in the file.
    pub line: usize,
    /// The pattern as the reader hands it on (cleaned, `!` kept).
    pub pattern: String,
}

/// Reads ignore-file bytes into patterns; `Err(line)` names a line too long to read.
pub fn read(bytes: &[u8]) -> Result<Vec<IgnoreLine>, usize> {
    let mut out = Vec::new();
    if bytes.is_empty() {
        return Ok(out);
    }
    // Split on '\n' as bufio.ScanLines does: a final empty piece is no line.
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for (index, raw) in body.split(|&b| b == b'\n').enumerate() {
        let line = index + 1;
        if raw.len() + 1 > MAX_LINE {
            return Err(line);
        }
        let mut raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if index == 0 {
            raw = raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw);
        }
        // A comment is a '#' in the very first byte, before any trimming.
        if raw.first() == Some(&b'#') {
            continue;
        }
        let text = String::from_utf8_lossy(raw);
        let mut pattern = text.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut pattern = if pattern.is_empty() {
            String::new()
        } else {
            let cleaned = crate::goclean::clean(pattern);
            match cleaned.strip_prefix('/') {
                Some(rest) if cleaned.len() > 1 => rest.to_owned(),
                _ => cleaned,
            }
        };
        if invert {
            pattern.insert(0, '!');
        }
        out.push(IgnoreLine { line, pattern });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patterns(input: &[u8]) -> Vec<String> {
        read(input)
            .unwrap()
            .into_iter()
            .map(|l| l.pattern)
            .collect()
    }

    /// ignorefile's own test, then the corners listed in shared/dockerignore.md.
    #[test]
    fn reader_table() {
        let content = b"test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
        assert_eq!(
            patterns(content),
            [
                "test1",
                "test2",
                "a/file/here",
                "lastfile",
                "!inverted/abs/path",
                "!",
                "!"
            ]
        );
        let table: &[(&[u8], &[&str])] = &[
            (b"\xEF\xBB\xBFfoo\n\xEF\xBB\xBFbar", &["foo", "\u{FEFF}bar"]),
            (b"a\r\nb\r\n", &["a", "b"]),
            (b"a\rb\n", &["a\rb"]),
            (b" #x\n#y", &["#x"]),
            (b"!!foo", &["!!foo"]),
            (b"/", &["/"]),
            (b".", &["."]),
            (b"/*", &["*"]),
            (b"//x", &["x"]),
            (b"../x", &["../x"]),
            (b"a/./b//c/", &["a/b/c"]),
            (b"\tspaced\t \n", &["spaced"]),
            (b"foo\\ ", &["foo\\"]),
        ];
        for (input, want) in table {
            assert_eq!(
                patterns(input),
                *want,
                "input {:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn line_numbers_count_comments_and_blanks() {
        let lines = read(b"# c\n\nfoo\n  \n!bar\n").unwrap();
        assert_eq!(lines.iter().map(|l| l.line).collect::<Vec<_>>(), [3, 5]);
    }

    #[test]
    fn overlong_line_is_refused_with_its_number() {
        let mut input = b"ok\n".to_vec();
        input.extend(std::iter::repeat_n(b'a', MAX_LINE));
        assert_eq!(read(&input), Err(2));
    }
}
