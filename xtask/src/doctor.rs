//! `cargo xtask doctor`: what this machine has for e2e runs, and the fix for each gap.

use compose::{ComposeFlavor, Engine};

pub fn run() -> anyhow::Result<()> {
    let engine = Engine::detect();
    let mut problems = Vec::new();
    let show =
        |what: &str, value: Option<&str>| println!("{what:<16} {}", value.unwrap_or("missing"));
    show("docker client", engine.client_version.as_deref());
    if engine.client_version.is_none() {
        problems
            .push("no docker CLI on PATH: run `make engine` (Debian: apt-get install docker.io)");
    }
    match &engine.daemon_error {
        None => println!(
            "{:<16} {} ({}, {})",
            "docker engine",
            engine.server_version.as_deref().unwrap_or("?"),
            engine.server_os.as_deref().unwrap_or("?"),
            engine.storage_driver.as_deref().unwrap_or("?")
        ),
        Some(e) => {
            println!("{:<16} not answering: {e}", "docker engine");
            problems.push("the Docker daemon does not answer: run `make engine` (starts dockerd), or check DOCKER_HOST");
        }
    }
    let compose = match &engine.compose {
        ComposeFlavor::Plugin(v) => format!("docker compose {v} (plugin)"),
        ComposeFlavor::StandaloneV2(v) => format!("docker-compose {v} (standalone v2)"),
        ComposeFlavor::V1(v) => {
            problems.push("only Compose v1 (Python, end of life, no --wait): run `make engine` for Compose v2");
            format!("docker-compose {v} (v1, unsupported)")
        }
        ComposeFlavor::Missing => {
            problems.push("no Compose: run `make engine` (installs the v2 plugin)");
            "missing".to_owned()
        }
    };
    println!("{:<16} {compose}", "compose");
    println!(
        "{:<16} {}",
        "buildkit",
        if engine.buildkit {
            "yes (through Compose v2)"
        } else {
            "no"
        }
    );
    let nextest = crate::shell().ok().and_then(|sh| {
        crate::nested_cargo(xshell::cmd!(sh, "cargo nextest --version"))
            .quiet()
            .ignore_stderr()
            .read()
            .ok()
    });
    let nextest = nextest.and_then(|v| v.lines().next().map(str::to_owned));
    if nextest.is_none() {
        problems.push("cargo-nextest is missing: cargo install cargo-nextest --locked");
    }
    show("nextest", nextest.as_deref());
    if problems.is_empty() {
        println!("\nall good");
        return Ok(());
    }
    println!();
    for p in &problems {
        println!("problem: {p}");
    }
    anyhow::bail!(
        "{} problem(s) found; each line above says the fix",
        problems.len()
    )
}
