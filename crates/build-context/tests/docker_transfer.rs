//! The engine is the judge of what a build really transfers. Each case is a
//! context and a Dockerfile (selective COPYs, stages the target does not
//! reach, `--from`, wildcards, ADD, bind/cache/tmpfs mounts, build args and
//! a target from compose, links, `<Dockerfile>.dockerignore`); all are built
//! in one `docker compose build --progress json`, whose raw status carries
//! the exact byte count of each "transferring context". `build-context`
//! must predict it to the byte. Then the listing: an image that COPYs
//! exactly the paths the Dockerfile names holds exactly the files listed.

use std::collections::BTreeMap;

use build_context::dockerfile::{BuildInputs, ContextUse};
use build_context::{Context, WalkOptions};
use camino::{Utf8Path, Utf8PathBuf};
use compose::oracle::{self, Case};

struct Spec {
    name: &'static str,
    dockerfile: &'static str,
    /// The Dockerfile's path in the context.
    dockerfile_at: &'static str,
    files: Vec<(String, Vec<u8>)>,
    /// (link, target)
    symlinks: Vec<(&'static str, &'static str)>,
    /// (new name, existing file)
    hardlinks: Vec<(&'static str, &'static str)>,
    /// (path, mode)
    modes: Vec<(&'static str, u32)>,
    args: Vec<(&'static str, &'static str)>,
    target: Option<&'static str>,
    /// "paths" or "whole"
    basis: &'static str,
}

impl Spec {
    fn new(name: &'static str, basis: &'static str, dockerfile: &'static str) -> Spec {
        Spec {
            name,
            dockerfile,
            dockerfile_at: "Dockerfile",
            files: Vec::new(),
            symlinks: Vec::new(),
            hardlinks: Vec::new(),
            modes: Vec::new(),
            args: Vec::new(),
            target: None,
            basis,
        }
    }
    fn file(mut self, path: &str, size: usize) -> Spec {
        // Varied bytes; sizes around the 32 KiB packet size matter.
        let body = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        self.files.push((path.to_owned(), body));
        self
    }
    fn text(mut self, path: &str, body: &str) -> Spec {
        self.files.push((path.to_owned(), body.as_bytes().to_vec()));
        self
    }
}

fn specs() -> Vec<Spec> {
    let mut out = vec![
        Spec::new(
            "stages",
            "paths",
            "FROM debian:bookworm-slim AS build\nCOPY *.go /w/\nCOPY src/ /w/src/\nFROM build AS unused\nCOPY unused /u\nFROM scratch\nCOPY --from=build /w /w\nCOPY assets /assets\n",
        )
        .file("src/a.go", 70_000)
        .file("src/b.txt", 10)
        .file("src/sub/c.go", 32_768)
        .file("assets/logo.png", 65_536)
        .file("assets/notes.txt", 3)
        .file("unused/u", 100_000)
        .file("main.go", 40)
        .file("util.go", 0)
        .file("docs/big.md", 200_000)
        .text(".dockerignore", "docs\n**/*.txt\n"),
        Spec {
            args: vec![("APP", "worker")],
            target: Some("test"),
            ..Spec::new(
                "args-target",
                "paths",
                "ARG APP=server\nFROM scratch AS build\nARG APP\nCOPY cmd/${APP}/ /src/\nFROM build AS test\nCOPY testdata /t\nFROM scratch\nCOPY --from=build /src /src\nCOPY release /r\n",
            )
            .file("cmd/server/main.go", 5_000)
            .file("cmd/worker/main.go", 7_000)
            .file("testdata/t.json", 900)
            .file("release/notes", 50)
        },
        Spec {
            symlinks: vec![("link", "real"), ("abs", "/data"), ("real/up", "../elsewhere")],
            hardlinks: vec![("data/hard", "data/d")],
            ..Spec::new(
                "links",
                "paths",
                "FROM scratch\nCOPY link/f /f\nCOPY data /data\nCOPY abs /abs\nCOPY real/up/e /e\n",
            )
            .file("real/f", 6)
            .file("data/d", 40_000)
            .file("elsewhere/e", 12)
            .file("other", 500)
        },
        Spec::new(
            "mounts",
            "paths",
            "FROM debian:bookworm-slim\nRUN --mount=type=bind,source=vendor,target=/v --mount=type=cache,target=/c --mount=type=secret,id=s true\nCOPY a /a\n",
        )
        .file("vendor/m/v.go", 300)
        .file("a/1", 1)
        .file("b/2", 100_000),
        Spec::new(
            "tmpfs-whole",
            "whole",
            "FROM debian:bookworm-slim\nRUN --mount=type=tmpfs,target=/t true\nCOPY a /a\n",
        )
        .file("a/1", 10)
        .file("b/2", 20),
        Spec {
            modes: vec![("b/2", 0o4755), ("b", 0o1777)],
            ..Spec::new(
                "empty-arg-whole",
                "whole",
                "FROM scratch\nARG EMPTY\nCOPY ${EMPTY} /all/\n",
            )
            .file("a/1", 2)
            .file("b/2", 2)
        },
        Spec {
            dockerfile_at: "build/App.Dockerfile",
            ..Spec::new(
                "add-own-ignore",
                "paths",
                "FROM scratch\nADD conf/ /conf/\nCOPY [\"with space\", \"/s/\"]\n",
            )
            .file("conf/app.toml", 120)
            .file("conf/secret.key", 40)
            .file("with space/x", 33_000)
            .text("build/App.Dockerfile.dockerignore", "conf/*.key\n")
            .text(".dockerignore", "conf\n")
        },
    ];
    // Generated: random trees, random sources, random ignore lines.
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    const DIRS: &[&str] = &["a", "b", "a/b", "c/d/e", "x y"];
    const IGNORES: &[&str] = &["*.out", "**/*.out", "a/b", "!a/b/keep", "c/d", "**/tmp*"];
    const DOCKERFILES: &[&str] = &[
        "FROM scratch\nCOPY a /a\n",
        "FROM scratch\nCOPY a/b c /x/\n",
        "FROM scratch\nCOPY b /b\nCOPY [\"x y\", \"/y\"]\n",
        "FROM scratch\nCOPY c/d/e /e\nCOPY a/b /ab\n",
    ];
    for (n, name) in ["gen-1", "gen-2", "gen-3", "gen-4", "gen-5", "gen-6"]
        .into_iter()
        .enumerate()
    {
        let mut spec = Spec::new(name, "paths", DOCKERFILES[n % DOCKERFILES.len()]);
        for dir in DIRS {
            for f in ["keep", "f.out", "tmp1", "g"] {
                let size = match next() % 4 {
                    0 => 0,
                    1 => next() % 100,
                    2 => 32_768 * (1 + next() % 2),
                    _ => next() % 90_000,
                };
                spec = spec.file(&format!("{dir}/{f}"), size);
            }
        }
        let ignore: Vec<&str> = (0..3).map(|_| IGNORES[next() % IGNORES.len()]).collect();
        spec = spec.text(".dockerignore", &format!("{}\n", ignore.join("\n")));
        out.push(spec);
    }
    out
}

fn write(root: &Utf8Path, spec: &Spec) {
    let put = |path: &str, body: &[u8]| {
        let p = root.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    put(spec.dockerfile_at, spec.dockerfile.as_bytes());
    for (path, body) in &spec.files {
        put(path, body);
    }
    for (link, target) in &spec.symlinks {
        std::os::unix::fs::symlink(target, root.join(link)).unwrap();
    }
    for (new, old) in &spec.hardlinks {
        std::fs::hard_link(root.join(old), root.join(new)).unwrap();
    }
    for (path, mode) in &spec.modes {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join(path), std::fs::Permissions::from_mode(*mode)).unwrap();
    }
}

fn inputs(spec: &Spec) -> BuildInputs {
    BuildInputs {
        args: spec
            .args
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect(),
        target: spec.target.map(str::to_owned),
    }
}

/// The exact "transferring context" count of each service's build context.
fn engine_counts(compose_file: &Utf8Path, project: &str) -> BTreeMap<String, u64> {
    let args = ["compose", "-f", compose_file.as_str(), "-p", project];
    let out = compose::docker(args.into_iter().chain(["--progress", "json", "build"]))
        .run_group(
            compose_file.parent().unwrap(),
            process::GroupOptions {
                capture: true,
                interruptible: false,
            },
        )
        .expect("docker runs");
    let text = out.stdout.clone() + &out.stderr;
    assert!(out.success(), "the builds failed:\n{text}");
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let Ok(doc) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        for v in doc["vertexes"].as_array().into_iter().flatten() {
            if let (Some(d), Some(n)) = (v["digest"].as_str(), v["name"].as_str()) {
                names.insert(d.to_owned(), n.to_owned());
            }
        }
        for s in doc["statuses"].as_array().into_iter().flatten() {
            let vertex = s["vertex"].as_str().unwrap_or_default();
            let Some(name) = names.get(vertex) else {
                continue;
            };
            // "[svc internal] load build context"; the ignore file's load is another vertex.
            if s["id"].as_str() == Some("transferring context:")
                && let Some(service) = name
                    .strip_prefix('[')
                    .and_then(|n| n.strip_suffix(" internal] load build context"))
            {
                let count = s["current"].as_u64().unwrap_or(0);
                counts.insert(service.to_owned(), count);
            }
        }
    }
    counts
}

#[test]
fn transfer_matches_the_engine_to_the_byte() {
    let test = "transfer_matches_the_engine_to_the_byte";
    if !compose::testing::image_or_skip(test, "debian:bookworm-slim") {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let base = Utf8PathBuf::from_path_buf(work.path().canonicalize().unwrap()).unwrap();
    let specs = specs();
    let project = format!("transfer{}", std::process::id());
    let mut yaml = String::from("services:\n");
    let mut predicted = BTreeMap::new();
    let mut listing_cases = Vec::new();
    for spec in &specs {
        let root = base.join(spec.name);
        write(&root, spec);
        let df = root.join(spec.dockerfile_at);
        let ctx = Context::open(&root, Some(&df)).unwrap();
        let walk = ctx
            .walk(WalkOptions {
                sizes: true,
                into_pruned: true,
            })
            .unwrap();
        let r = build_context::analyze(&ctx, &walk, &inputs(spec), None);
        let broken = r
            .lints
            .iter()
            .any(|l| l.severity == build_context::report::Severity::Error);
        if broken {
            // The build would fail on a source the ignore file hides; generated cases may.
            assert!(spec.name.starts_with("gen-"), "{}: {r}", spec.name);
            continue;
        }
        let kind = match &r.transfer.basis {
            ContextUse::Paths { .. } => "paths",
            ContextUse::Whole { .. } => "whole",
            ContextUse::Unsure { why } => panic!("{}: unsure: {why}", spec.name),
        };
        assert_eq!(kind, spec.basis, "{}: {r}", spec.name);
        predicted.insert(
            spec.name.to_owned(),
            r.transfer.wire_bytes.expect("measured"),
        );
        let args: String = spec
            .args
            .iter()
            .map(|(k, v)| format!("        {k}: {v}\n"))
            .collect();
        yaml.push_str(&format!(
            "  {}:\n    image: {project}-{}:latest\n    build:\n      context: {}\n      dockerfile: {}\n{}{}",
            spec.name,
            spec.name,
            serde_json::to_string(root.as_str()).unwrap(),
            spec.dockerfile_at,
            if args.is_empty() { String::new() } else { format!("      args:\n{args}") },
            spec.target.map_or(String::new(), |t| format!("      target: {t}\n")),
        ));
        if let Some(include) = &r.transfer.include {
            listing_cases.push((
                spec,
                root.clone(),
                include.clone(),
                ctx.list_sent(&inputs(spec)).unwrap(),
            ));
        }
    }
    let compose_file = base.join("compose.yaml");
    std::fs::write(&compose_file, &yaml).unwrap();
    let counts = engine_counts(&compose_file, &project);
    let down = [
        "compose",
        "-f",
        compose_file.as_str(),
        "-p",
        &project,
        "down",
        "--rmi",
        "all",
    ];
    let _ = compose::docker(down).output(&base);
    let engine: BTreeMap<String, u64> = predicted
        .keys()
        .map(|name| (name.clone(), *counts.get(name).unwrap_or(&0)))
        .collect();
    assert!(
        predicted.len() >= 9,
        "enough cases reach the engine: {predicted:?}"
    );
    for (name, n) in &engine {
        eprintln!(
            "{name:<16} engine {n:>8} bytes, predicted {:>8}",
            predicted[name]
        );
    }
    assert_eq!(
        predicted, engine,
        "ours (left) against the engine's count (right)"
    );

    // The listing: COPY exactly the named paths (no wildcard, no link) into an image.
    let mut cases = Vec::new();
    let mut expected = Vec::new();
    for (spec, root, include, listed) in &listing_cases {
        let plain = include.iter().all(|p| {
            !p.contains(['*', '?', '['])
                && root
                    .join(p)
                    .symlink_metadata()
                    .is_ok_and(|m| !m.file_type().is_symlink())
        });
        if !plain
            || spec
                .symlinks
                .iter()
                .any(|(l, _)| include.iter().any(|p| p.starts_with(l)))
        {
            continue;
        }
        let name = Utf8Path::new(spec.dockerfile_at).file_name().unwrap();
        let dir = base.join("oracle").join(spec.name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut text = String::from("FROM scratch\n");
        for p in include {
            text.push_str(&format!(
                "COPY {}\n",
                serde_json::json!([p, format!("/ctx/{p}")])
            ));
        }
        std::fs::write(dir.join(name), text).unwrap();
        let own_ignore = root.join(format!("{}.dockerignore", spec.dockerfile_at));
        if own_ignore.exists() {
            std::fs::copy(&own_ignore, dir.join(format!("{name}.dockerignore"))).unwrap();
        }
        cases.push(Case {
            context: root.clone(),
            dockerfile: dir.join(name),
        });
        expected.push((spec.name, listed.clone()));
    }
    assert!(
        cases.len() >= 6,
        "enough cases reach the listing check: {}",
        cases.len()
    );
    eprintln!("listing checked on {} cases", cases.len());
    let images = oracle::list_contexts(&cases).unwrap();
    for ((name, ours), theirs) in expected.iter().zip(images) {
        let show = |l: &[Box<[u8]>]| -> Vec<String> {
            l.iter()
                .map(|p| String::from_utf8_lossy(p).into_owned())
                .collect()
        };
        assert_eq!(
            show(ours),
            show(&theirs),
            "{name}: ours (left) against the image (right)"
        );
    }
}
