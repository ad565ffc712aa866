//! The engine is the judge: generated trees and ignore files, listed by
//! `build-context` and by a real BuildKit build (`COPY . /ctx/`), file for file.

use build_context::Context;
use camino::{Utf8Path, Utf8PathBuf};
use compose::oracle::{self, Case};

/// A small deterministic generator, so a failure names a reproducible seed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.next() as usize % items.len()]
    }
}

const DIRS: &[&str] = &[
    "a",
    "b",
    "dir",
    "sub",
    "a/b",
    "dir/sub",
    "sub/deep/er",
    "x y",
    "[br]",
];
const FILES: &[&str] = &[
    "x.txt",
    "y.out",
    "z.test",
    "keep.txt",
    ".hidden",
    "a",
    "Dockerfile",
    "f_test.go",
    "é.txt",
];
const PATTERNS: &[&str] = &[
    "*.out",
    "**/*.out",
    "a",
    "a/",
    "!a/keep.txt",
    "**/keep.txt",
    "!**/keep.txt",
    "dir/**",
    "*/x.txt",
    "!dir",
    "b/*",
    "?.txt",
    "[xy].txt",
    "!**/*.test",
    "/a/b",
    "# comment",
    "  spaced  ",
    "sub/**/y.out",
    "a**",
    "!a",
    ".hidden",
    "**/sub",
    "!sub/x.txt",
    "**/*_test.go",
    "*",
    "!*.txt",
    "dir/sub",
    "!dir/sub/keep.txt",
    "x y",
    "\\[br\\]",
    "[[]br]",
    "**",
    "!x y/**",
    "sub/deep",
    "!sub/deep/er",
    "**/.hidden",
    "z.test",
    "!**/dir",
];

fn write(path: &Utf8Path, body: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, body).unwrap();
}

/// Generated names may collide (a file `a` and a folder `a`); the first one wins.
fn try_write(path: &Utf8Path, body: &[u8]) {
    let _ =
        std::fs::create_dir_all(path.parent().unwrap()).and_then(|()| std::fs::write(path, body));
}

fn generate(rng: &mut Lcg, root: &Utf8Path) -> String {
    for _ in 0..(4 + rng.next() % 12) {
        let file = format!("{}/{}", rng.pick(DIRS), rng.pick(FILES));
        try_write(&root.join(&file), file.as_bytes());
    }
    for _ in 0..(rng.next() % 4) {
        try_write(&root.join(rng.pick(FILES)), b"top");
    }
    if rng.next().is_multiple_of(3) {
        let _ = std::os::unix::fs::symlink("../outside", root.join("link"));
    }
    if rng.next().is_multiple_of(4) {
        let _ = std::fs::create_dir_all(root.join("empty/dir"));
    }
    let lines: Vec<&str> = (0..(1 + rng.next() % 6))
        .map(|_| rng.pick(PATTERNS))
        .collect();
    let ignore = lines.join("\n") + "\n";
    write(&root.join(".dockerignore"), ignore.as_bytes());
    ignore
}

struct Generated {
    case: Case,
    description: String,
}

fn cases(base: &Utf8Path) -> Vec<Generated> {
    let mut out = Vec::new();
    let dockerfiles = base.join("dockerfiles");
    std::fs::create_dir_all(&dockerfiles).unwrap();
    for seed in 0..48u64 {
        let mut rng = Lcg(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5eed);
        let root = base.join(format!("ctx{seed}"));
        std::fs::create_dir_all(&root).unwrap();
        let ignore = generate(&mut rng, &root);
        // Half the cases keep the Dockerfile in the context, where it is sent like any file.
        let dockerfile = if seed.is_multiple_of(2) {
            root.join("Dockerfile")
        } else {
            dockerfiles.join(format!("ctx{seed}.Dockerfile"))
        };
        if std::fs::write(&dockerfile, oracle::DOCKERFILE).is_err() {
            continue; // a generated folder took the Dockerfile's name
        }
        out.push(Generated {
            case: Case {
                context: root,
                dockerfile,
            },
            description: format!("seed {seed}, .dockerignore:\n{ignore}"),
        });
    }
    // Hand-written corners: the walker/stateless divergences and a per-Dockerfile ignore file.
    let fixed: &[(&str, &[&str], &str)] = &[
        (
            "diverge1",
            &["dir/a.txt", "dir/b.out", "top.txt"],
            "**/*.txt\n!dir\n",
        ),
        ("diverge2", &["a/b/c", "a/x", "keep"], "a\n!a/b\na\n"),
        (
            "crlf-bom",
            &["a.out", "b.txt", "c/d.out"],
            "\u{FEFF}*.out\r\n#c\r\n!c/d.out\r\n",
        ),
        (
            "glob-exception",
            &["a/keep.txt", "a/no", "b/c/keep.txt", "b/c/no"],
            "*\n!**/keep.txt\n",
        ),
    ];
    for (name, files, ignore) in fixed {
        let root = base.join(name);
        for f in *files {
            write(&root.join(f), f.as_bytes());
        }
        write(&root.join(".dockerignore"), ignore.as_bytes());
        let dockerfile = dockerfiles.join(format!("{name}.Dockerfile"));
        write(&dockerfile, oracle::DOCKERFILE.as_bytes());
        out.push(Generated {
            case: Case {
                context: root,
                dockerfile,
            },
            description: format!("{name}:\n{ignore}"),
        });
    }
    let root = base.join("per-dockerfile");
    for f in [
        "app/main.rs",
        "app/main.out",
        "docs/readme.md",
        "secret.env",
    ] {
        write(&root.join(f), f.as_bytes());
    }
    write(&root.join(".dockerignore"), b"docs\n");
    let dockerfile = root.join("build/App.Dockerfile");
    write(&dockerfile, oracle::DOCKERFILE.as_bytes());
    write(
        &root.join("build/App.Dockerfile.dockerignore"),
        b"**/*.out\n*.env\n",
    );
    out.push(Generated {
        case: Case {
            context: root,
            dockerfile,
        },
        description: "per-Dockerfile ignore file".into(),
    });
    out
}

#[test]
fn listing_matches_the_engine() {
    if compose::testing::engine_or_skip("listing_matches_the_engine").is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let base = Utf8PathBuf::from_path_buf(tmp.path().canonicalize().unwrap()).unwrap();
    let generated = cases(&base);
    let engine: Vec<Case> = generated.iter().map(|g| g.case.clone()).collect();
    let expected = oracle::list_contexts(&engine).expect("the engine lists every context");
    let mut failures = Vec::new();
    for (g, want) in generated.iter().zip(&expected) {
        let ctx = Context::open(&g.case.context, Some(&g.case.dockerfile)).unwrap();
        let got = ctx.list().unwrap();
        if &got != want {
            let show = |v: &[Box<[u8]>]| {
                v.iter()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .collect::<Vec<_>>()
            };
            failures.push(format!(
                "{}\n  engine: {:?}\n  ours:   {:?}",
                g.description,
                show(want),
                show(&got)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} contexts differ:\n{}",
        failures.len(),
        generated.len(),
        failures.join("\n")
    );
    eprintln!(
        "{} contexts listed identically by the engine and build-context",
        generated.len()
    );
}
