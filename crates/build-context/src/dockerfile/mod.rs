//! Just enough of a Dockerfile to know what its build takes from the context:
//! the COPY/ADD sources and `RUN --mount` binds of every stage the target
//! reaches, as BuildKit's Dockerfile frontend collects them (its
//! `ctxPaths`), with build args and `ARG`/`ENV` expanded.

use std::collections::BTreeMap;

mod parse;
mod stage;

use parse::{KEYWORDS, arguments, directives, instructions};
use stage::{Stage, copy_or_add, declare_args, from_stage, run_mounts, set_env, stage_index};

/// One COPY or ADD that reads the build context.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CopySource {
    /// 1-based line where the instruction starts.
    pub line: usize,
    pub instruction: String,
    /// Sources as written, relative to the context.
    pub sources: Vec<String>,
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
