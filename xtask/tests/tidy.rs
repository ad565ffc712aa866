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
    // And only `compose` names docker commands: other crates call its typed
    // functions. Tests (the engine as the oracle), the bench's naive side
    // (the bare commands a user would type) and the soak's faults (a
    // container killed from outside, as someone else would) are the exceptions.
    let named: Vec<_> = rust_files()
        .into_iter()
        .filter(|(p, _)| !p.starts_with("crates/compose/src") && !is_test(p))
        .filter(|(p, _)| !p.starts_with("xtask/src/bench") && !p.starts_with("xtask/src/soak"))
        .filter(|(_, text)| code_of(text).contains("compose::docker("))
        .map(|(p, _)| p)
        .collect();
    assert!(
        named.is_empty(),
        "docker commands belong in crates/compose (a typed function there): {named:?}"
    );
}

/// A test file: under a crate's `tests/` folder.
fn is_test(path: &Utf8Path) -> bool {
    path.components().any(|c| c.as_str() == "tests")
}

/// A file's code without its unit tests.
fn code_of(text: &str) -> &str {
    text.split("#[cfg(test)]").next().unwrap_or_default()
}

#[test]
fn build_context_and_certs_start_no_process() {
    let starts = ["Cmd::", "duct::", "std::process", "xshell", "Command::new"];
    let offenders: Vec<_> = rust_files()
        .into_iter()
        .filter(|(p, _)| {
            p.starts_with("crates/build-context/src") || p.starts_with("crates/certs/src")
        })
        .filter(|(_, text)| starts.iter().any(|s| code_of(text).contains(s)))
        .map(|(p, _)| p)
        .collect();
    assert!(
        offenders.is_empty(),
        "build-context and certs take what they need from processes as data: {offenders:?}"
    );
    for manifest in ["crates/build-context/Cargo.toml", "crates/certs/Cargo.toml"] {
        let text = std::fs::read_to_string(root().join(manifest)).unwrap();
        let deps = text.split("[dev-dependencies]").next().unwrap();
        for crate_name in ["process", "duct", "xshell"] {
            assert!(
                !deps.contains(&format!("\n{crate_name}")),
                "{manifest} depends on {crate_name}"
            );
        }
    }
}

#[test]
fn processes_start_through_cmd_never_a_shell() {
    let offenders: Vec<_> = rust_files()
        .into_iter()
        .filter(|(p, _)| !is_test(p))
        .filter(|(_, text)| {
            let code = code_of(text);
            // A nested cargo drops what `cargo run` set: `Cmd::cargo`.
            code.contains("Cmd::new(\"cargo\"") && !code.contains("pub fn cargo<")
                || code.contains("cmd!(\"sh\"")
                || code.contains("Cmd::new(\"sh\"")
                || code.contains("cmd(\"sh\"")
        })
        .map(|(p, _)| p)
        .collect();
    assert!(
        offenders.is_empty(),
        "start cargo with Cmd::cargo and never a shell: {offenders:?}"
    );
    // `std::process::Command::new` is denied by clippy.toml in every crate.
    let clippy = std::fs::read_to_string(root().join("clippy.toml")).unwrap();
    assert!(clippy.contains("std::process::Command::new"), "clippy.toml");
    let lints = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    assert!(
        lints.contains("disallowed_methods = \"deny\""),
        "Cargo.toml"
    );
    for manifest in manifests() {
        let text = std::fs::read_to_string(root().join(&manifest)).unwrap();
        assert!(
            text.contains("[lints]\nworkspace = true"),
            "{manifest} does not take the workspace's lints"
        );
    }
}

/// Every package's Cargo.toml but the workspace's.
fn manifests() -> Vec<Utf8PathBuf> {
    let mut out = vec![Utf8PathBuf::from("xtask/Cargo.toml")];
    for entry in root().join("crates").read_dir_utf8().unwrap() {
        let manifest = entry.unwrap().path().join("Cargo.toml");
        if manifest.exists() {
            out.push(manifest.strip_prefix(root()).unwrap().to_owned());
        }
    }
    out
}

/// The library crates' sources: what the tool is made of, apart from its CLI.
const LIBRARIES: [&str; 6] = [
    "crates/build-context/src",
    "crates/certs/src",
    "crates/compose/src",
    "crates/pipeline/src",
    "crates/process/src",
    "crates/test-runner/src",
];

#[test]
fn each_library_has_one_error_type() {
    for lib in LIBRARIES {
        let errors: Vec<_> = rust_files()
            .into_iter()
            .filter(|(p, _)| p.starts_with(lib))
            .filter(|(_, text)| code_of(text).contains("pub enum Error {"))
            .map(|(p, _)| p)
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "{lib}: one `pub enum Error`, found in {errors:?}"
        );
        let text = std::fs::read_to_string(root().join(&errors[0])).unwrap();
        let derive = text.find("thiserror::Error").unwrap_or(usize::MAX);
        assert!(
            derive < text.find("pub enum Error {").unwrap(),
            "{}: thiserror",
            errors[0]
        );
    }
}

/// Code longer than this (unit tests aside) says why at its top.
const LONG: usize = 450;

#[test]
fn a_long_file_says_why_it_is_long() {
    let offenders: Vec<_> = rust_files()
        .into_iter()
        .filter(|(_, text)| code_of(text).lines().count() > LONG)
        .filter(|(_, text)| {
            !text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .any(|l| l.contains("Long because"))
        })
        .map(|(p, text)| format!("{p} ({} lines)", code_of(&text).lines().count()))
        .collect();
    assert!(
        offenders.is_empty(),
        "over {LONG} lines of code: split them, or say why at the top (`//! Long because ...`): {offenders:?}"
    );
}

#[test]
fn the_exit_codes_in_the_docs_are_the_code_s() {
    use cargo_e2e::exit::{ENVIRONMENT, FAILED, INTERRUPTED, OK, USAGE};
    let reference = std::fs::read_to_string(root().join("docs/reference.md")).unwrap();
    let section = reference
        .split("## Exit codes")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/reference.md has an exit code table");
    let documented: Vec<u8> = section
        .lines()
        .filter_map(|l| l.strip_prefix("| ")?.split(' ').next()?.parse().ok())
        .collect();
    assert_eq!(documented, [OK, FAILED, USAGE, ENVIRONMENT, INTERRUPTED]);
}

#[test]
fn docker_backed_tests_live_in_docker_binaries() {
    let offenders: Vec<_> = rust_files()
        .into_iter()
        .filter(|(p, _)| is_test(p) && !p.as_str().contains("/support/"))
        .filter(|(p, _)| p.as_str() != "xtask/tests/tidy.rs")
        .filter(|(p, _)| !p.file_name().unwrap_or_default().starts_with("docker_"))
        .filter(|(_, text)| text.contains("engine_or_skip") || text.contains("compose::docker("))
        .map(|(p, _)| p)
        .collect();
    assert!(
        offenders.is_empty(),
        "a test that needs the engine goes in a `docker_*` test binary (skipped without one, run in its nextest group): {offenders:?}"
    );
}

#[test]
fn libraries_neither_print_nor_exit() {
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
        .filter(|(p, _)| LIBRARIES.iter().any(|l| p.starts_with(l)))
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
    // Every default the reference's config block quotes, as the code has it.
    let certs = pipeline::config::CertsConfig::default();
    let quoted = |v: &[String]| {
        v.iter()
            .map(|a| format!("\"{a}\""))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let defaults_quoted = [
        format!("  files: [{}]", defaults.compose.files[0]),
        format!("  ephemeral_ports: {}", defaults.compose.ephemeral_ports),
        format!("  artifacts: [{}]", quoted(&defaults.context.artifacts)),
        format!("  validity_days: {}", certs.validity_days),
        format!("  renew_within_days: {}", certs.renew_within_days),
        format!("  client: {}", certs.client),
        format!("  profile: {}  ", defaults.tests.profile),
        format!("  min_free: {}GiB", defaults.disk.min_free.0 >> 30),
        format!("  keep: {}  ", defaults.runs.keep),
        format!("  max_age_days: {}  ", defaults.runs.max_age_days),
    ];
    for want in defaults_quoted {
        assert!(
            reference.contains(&want),
            "docs/reference.md's config block should say `{want}` (the default)"
        );
    }
    for (file, text, want) in checks {
        assert!(
            text.contains(&want),
            "{file} should say `{want}` (the code's value)"
        );
    }
}
