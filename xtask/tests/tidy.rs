//! The workspace's invariants, checked by an ordinary test run (as
//! rust-analyzer's tidy): ARCHITECTURE.md states them, this enforces them.

use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

fn root() -> Utf8PathBuf {
    Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize_utf8()
        .unwrap()
}

/// Every Rust file git knows (tracked, or new and not ignored), with its text.
fn rust_files() -> Vec<(Utf8PathBuf, String)> {
    let out = duct::cmd!(
        "git",
        "ls-files",
        "--cached",
        "--others",
        "--exclude-standard",
        "*.rs"
    )
    .dir(root())
    .read()
    .unwrap();
    out.lines()
        .map(|p| {
            let path = root().join(p);
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            (Utf8PathBuf::from(p), text)
        })
        .filter(|(p, _)| root().join(p).exists())
        .collect()
}

#[test]
fn every_file_opens_with_what_it_is_for() {
    let missing: Vec<_> = rust_files()
        .into_iter()
        .filter(|(_, text)| !text.starts_with("//!"))
        .map(|(p, _)| p)
        .collect();
    assert!(
        missing.is_empty(),
        "open these with a `//!` line: {missing:?}"
    );
}

#[test]
fn only_the_compose_crate_starts_docker() {
    let starts = [
        "Cmd::new(\"docker\"",
        "cmd(\"docker\"",
        "cmd!(\"docker\"",
        "cmd!(sh, \"docker",
    ];
    let offenders: Vec<_> = rust_files()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("crates/compose/src"))
        .filter(|(_, text)| starts.iter().any(|s| text.contains(s)))
        .map(|(p, _)| p)
        .collect();
    assert!(
        offenders.is_empty(),
        "start docker through compose::docker: {offenders:?}"
    );
}

#[test]
fn libraries_neither_print_nor_exit() {
    let libraries = [
        "crates/build-context/src",
        "crates/certs/src",
        "crates/compose/src",
        "crates/pipeline/src",
        "crates/process/src",
        "crates/test-runner/src",
    ];
    // Test support prints why a Docker-backed test skips; it is not the library.
    let allowed = ["crates/compose/src/testing.rs"];
    let banned = [
        "println!",
        "eprintln!",
        "print!(",
        "eprint!(",
        "process::exit",
    ];
    let offenders: Vec<_> = rust_files()
        .into_iter()
        .filter(|(p, _)| libraries.iter().any(|l| p.starts_with(l)))
        .filter(|(p, _)| !allowed.contains(&p.as_str()))
        .filter(|(_, text)| {
            // Only the code before the unit tests counts.
            let code = text.split("#[cfg(test)]").next().unwrap_or_default();
            banned.iter().any(|b| code.contains(b))
        })
        .map(|(p, _)| p)
        .collect();
    assert!(
        offenders.is_empty(),
        "libraries return data; only crates/cli prints and exits: {offenders:?}"
    );
}

/// `n ms` as docs write a duration.
fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

#[test]
fn numbers_in_the_docs_are_the_code_s() {
    let read = |p: &str| std::fs::read_to_string(root().join(p)).unwrap();
    let architecture = read("ARCHITECTURE.md");
    let reference = read("docs/reference.md");
    let defaults = pipeline::Config::default();
    let checks: Vec<(&str, &str, String)> = vec![
        (
            "ARCHITECTURE.md",
            &architecture,
            format!("every {}", ms(compose::POLL_INTERVAL)),
        ),
        (
            "ARCHITECTURE.md",
            &architecture,
            format!("stays\n  open {}", ms(compose::readiness::TCP_HOLD)),
        ),
        (
            "docs/reference.md",
            &reference,
            format!("stays open** for {}", ms(compose::readiness::TCP_HOLD)),
        ),
        (
            "docs/reference.md",
            &reference,
            format!("grace_s: {} ", defaults.teardown.grace_s),
        ),
        (
            "docs/reference.md",
            &reference,
            format!("timeout_s: {}\n", defaults.readiness.timeout_s),
        ),
    ];
    for (file, text, want) in checks {
        assert!(
            text.contains(&want),
            "{file} should say `{want}` (the code's value)"
        );
    }
}
