//! `cargo e2e doctor`: what this machine has for e2e runs, and for each
//! gap the command that fixes it. Exit 3 when anything is missing.

use compose::versions::Builder;
use compose::{ComposeFlavor, Engine, ImageStore, PortState};
use process::Cmd;

use crate::exit::Exit;
use crate::flags::Doctor;

pub fn run(flags: &Doctor) -> anyhow::Result<()> {
    let engine = Engine::detect();
    let mut problems: Vec<String> = Vec::new();
    let row = |what: &str, value: &str| println!("{what:<16} {value}");

    row(
        "docker client",
        engine.client_version.as_deref().unwrap_or("missing"),
    );
    if engine.client_version.is_none() {
        problems.push(
            "no docker CLI on PATH: install Docker (https://docs.docker.com/engine/install/; Debian: apt-get install docker.io)".into(),
        );
    }
    row(
        "docker host",
        Engine::host().as_deref().unwrap_or("unknown"),
    );
    match Engine::remote_host() {
        Some(remote) => row(
            "engine machine",
            &format!(
                "{remote} (remote: ports are reached there, and host bind mounts are its folders, not ours)"
            ),
        ),
        None => row("engine machine", "this one"),
    }
    match (&engine.facts, &engine.daemon_error) {
        (Some(facts), _) => engine_rows(facts, &row),
        (None, e) => {
            let e = e.as_deref().unwrap_or("no answer");
            row("docker engine", &format!("not answering: {e}"));
            match compose::versions::api_refusal(e) {
                Some((client, min)) => {
                    problems.push(compose::versions::api_refusal_fix(&client, &min))
                }
                None => problems.push(
                    "the Docker daemon does not answer: start it (`sudo systemctl start docker`, or Docker Desktop), or check DOCKER_HOST / `docker context use`"
                        .into(),
                ),
            }
        }
    }
    let compose = match &engine.compose {
        ComposeFlavor::Plugin(v) => format!("docker compose {v} (plugin)"),
        ComposeFlavor::StandaloneV2(v) => format!("docker-compose {v} (standalone v2)"),
        ComposeFlavor::V1(v) => {
            problems.push("only Compose v1 (Python, end of life, no --wait): install the Compose v2 plugin (https://docs.docker.com/compose/install/linux/)".into());
            format!("docker-compose {v} (v1, unsupported)")
        }
        ComposeFlavor::Missing => {
            problems.push("no Compose: install the Compose v2 plugin (https://docs.docker.com/compose/install/linux/)".into());
            "missing".to_owned()
        }
    };
    row("compose", &compose);
    if let Some(builder) = &engine.builder {
        row("builder", &builder_row(builder));
        if let Some(why) = builder.refusal() {
            problems.push(why);
        }
    }

    let here = camino::Utf8Path::new(".");
    let nextest = Cmd::cargo(["nextest", "--version"]).text(here).ok();
    match nextest.as_deref().and_then(|v| v.lines().next()) {
        Some(v) => {
            row("nextest", v);
            if let Some(note) = test_runner::filterset::version_note(v) {
                row("", &format!("note: {note}"));
            }
        }
        None => {
            row("nextest", "missing");
            problems.push("cargo-nextest is missing: cargo install cargo-nextest --locked".into());
        }
    }

    // The stack: certificates and ports need the config and Compose's model.
    match crate::load_config(flags.config.config.as_deref()) {
        Err(e) => problems.push(format!("the config does not load: {e:#}")),
        Ok((ws, config)) => {
            row("config", ws.shown(&config.path).as_str());
            let api = engine.facts.as_ref().and_then(|f| f.api.as_deref());
            stack_rows(&config, engine.daemon_error.is_none(), api, &mut problems);
        }
    }

    if problems.is_empty() {
        println!("\nall good");
        return Ok(());
    }
    println!();
    for p in &problems {
        println!("problem: {p}");
    }
    Err(Exit::environment(format!(
        "{} problem(s) found; each line above says the fix",
        problems.len()
    ))
    .into())
}

fn stack_rows(
    config: &pipeline::Config,
    daemon: bool,
    api: Option<&str>,
    problems: &mut Vec<String>,
) {
    let row = |what: &str, value: &str| println!("{what:<16} {value}");
    // One `docker compose config`: the service names the certificates must
    // cover, and the ports to check. It needs the CLI, not the daemon.
    let name = config.project_name(None, crate::in_ci());
    let project = compose::Project::load(config.project_spec(Some(name)));
    let services = project
        .as_ref()
        .map(|p| p.stack.services.keys().cloned().collect::<Vec<_>>());
    match config.certs_spec(services.unwrap_or_default()) {
        None => row("certificates", "none (no certs section)"),
        Some(spec) => match certs::ensure(&spec, certs::Mode::Check) {
            Ok(r) if r.action == certs::Action::Reused => {
                row("certificates", &format!("{} ({})", r.reason, spec.dir))
            }
            Ok(r) => {
                row(
                    "certificates",
                    &format!("need work: {}", r.reason.replace('\n', "; ")),
                );
                row("", "(the e2e run makes them; or run `cargo e2e certs`)");
            }
            Err(e) => problems.push(format!(
                "certificates: {e}; fix the certs section of {}",
                config.path
            )),
        },
    }
    let project = match project {
        Ok(p) => p,
        Err(e) => return problems.push(format!("the compose stack does not load: {e}")),
    };
    // Host bind mounts work only where the engine shares this filesystem.
    let binds = project.stack.bind_mounts();
    if binds.is_empty() {
        row(
            "bind mounts",
            "none (the stack runs on a remote engine as it is)",
        );
    }
    let certs = config.certs_mounts(&project.stack);
    for b in &binds {
        let why = if certs.contains(b) {
            "the certificates: a remote engine gets them in a volume instead"
        } else {
            "not portable to a remote engine: it would mount its own folder of that name"
        };
        row(
            "bind mount",
            &format!("{}: {} -> {} ({why})", b.service, b.source, b.target),
        );
    }
    if !daemon {
        return;
    }
    for line in health_timing_notes(&project.stack, api) {
        row("health checks", &line);
    }
    match project.deaf_to_stop_signal() {
        Ok(None) => row(
            "stop signals",
            "stack not running here: start it (`--teardown keep`) to check",
        ),
        Ok(Some(deaf)) if deaf.is_empty() => row(
            "stop signals",
            "every running service acts on its stop signal",
        ),
        Ok(Some(deaf)) => {
            row(
                "stop signals",
                &format!(
                    "PID 1 ignores its stop signal in: {} (killed at once by teardown; a plain \
                     `docker compose stop` waits its whole grace: use an exec-form entrypoint, a \
                     signal handler, or `init: true`)",
                    deaf.join(", ")
                ),
            );
        }
        Err(e) => row("stop signals", &format!("cannot tell: {e}")),
    }
    match project.port_status() {
        Ok(ports) => {
            for p in ports {
                let state = match p.state {
                    PortState::Free => "free".to_owned(),
                    PortState::Ours => "held by this stack (it will be reused)".to_owned(),
                    PortState::Unknown(why) => format!("cannot tell ({why}); the engine will say"),
                    PortState::Taken(holder) => {
                        problems.push(format!(
                            "port {} (service {}) is taken by {holder}: free it, change the port in {}, or pass --ephemeral-ports",
                            p.port,
                            p.service,
                            config.compose.files.iter().map(|f| config.resolve(f).to_string()).collect::<Vec<_>>().join(", ")
                        ));
                        format!("TAKEN by {holder}")
                    }
                };
                row("port", &format!("{} ({}): {state}", p.port, p.service));
            }
        }
        Err(e) => problems.push(format!("the project's containers cannot be listed: {e}")),
    }
}

/// The engine's facts, each with what it means for this tool.
fn engine_rows(facts: &compose::Facts, row: &impl Fn(&str, &str)) {
    row(
        "docker engine",
        &format!("{} {} ({})", facts.product, facts.version, facts.os),
    );
    let api = facts.api.as_deref().unwrap_or("?");
    row(
        "engine API",
        &match facts.honours_start_interval() {
            Some(true) => format!("{api}: healthcheck.start_interval is honoured"),
            Some(false) => format!(
                "{api}: refuses healthcheck.start_interval (API 1.44, Docker 25, and later honour it)"
            ),
            None => format!("{api}: unknown"),
        },
    );
    let meaning = match &facts.image_store {
        ImageStore::GraphDriver(_) => "image IDs are config digests",
        ImageStore::Containerd(_) => {
            "image IDs are manifest digests; fingerprints record the ID the engine reports for each tag"
        }
        ImageStore::Storage(_) => "Podman's own store; image IDs are config digests",
    };
    row("image store", &format!("{}: {meaning}", facts.image_store));
    row(
        "rootless",
        if facts.rootless {
            "yes: ports below 1024 need net.ipv4.ip_unprivileged_port_start; a PID 1 deaf to \
             its stop signal is killed at once only where /proc here shows the container"
        } else {
            "no"
        },
    );
}

/// How Compose builds, and what that means for the run.
fn builder_row(builder: &Builder) -> String {
    match builder {
        Builder::Embedded => {
            "Compose's own BuildKit client (no buildx needed); built/cached read per step"
                .to_owned()
        }
        Builder::Bake { buildx } => format!(
            "buildx bake, buildx {}: BuildKit in the engine; built/cached read per step; \
             Ctrl-C cancels the build in the engine",
            buildx.as_deref().unwrap_or("missing")
        ),
        Builder::Classic => "the engine's classic /build API (Podman serves no BuildKit): \
             the tool builds with COMPOSE_BAKE=false DOCKER_BUILDKIT=0; built or cached judged \
             by image ID (its log interleaves parallel builds, unnamed)"
            .to_owned(),
    }
}

/// `start_interval` (engine API 1.44, Docker 25) makes Docker run a check
/// often while a service starts, where it would first run it `interval` after
/// the start. An e2e run checks at once by itself (`docker exec`); these lines
/// say what the setting would save where Docker's own timer still counts:
/// plain `docker compose up --wait`, and checks the run leaves to Docker.
fn health_timing_notes(stack: &compose::Stack, api: Option<&str>) -> Vec<String> {
    let supported = api.and_then(compose::facts::honours_start_interval);
    let mut out = Vec::new();
    for (name, s) in &stack.services {
        let Some(t) = s.health_timing() else { continue };
        if t.start_interval.is_some() {
            continue;
        }
        let interval = t.interval.as_secs_f64();
        if interval <= 1.0 {
            continue;
        }
        let advice = format!(
            "{name}: Docker runs its first check {interval:.0} s after the start (no start_interval); \
             the e2e run checks at once. `start_period: 30s` + `start_interval: 1s` would save \
             about {:.0} s per start of it under plain `docker compose up --wait`",
            interval - 1.0
        );
        out.push(match supported {
            Some(true) => advice,
            Some(false) => format!(
                "{advice}, on an engine with API 1.44 (Docker 25) or later: this one has API {}, \
                 which ignores start_interval",
                api.unwrap_or("?")
            ),
            None => format!("{advice} (engine API 1.44, Docker 25, and later)"),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_interval_advice_names_the_saving_and_the_engine_it_needs() {
        let stack: compose::Stack = serde_json::from_value(serde_json::json!({
            "name": "p",
            "services": {
                "db": {"healthcheck": {"test": ["CMD", "true"], "interval": "10s"}},
                "fast": {"healthcheck": {"test": ["CMD", "true"], "interval": "10s", "start_interval": "1s"}},
                "off": {"healthcheck": {"disable": true}},
                "plain": {}
            }
        }))
        .unwrap();
        let new = health_timing_notes(&stack, Some("1.45"));
        assert_eq!(new.len(), 1, "{new:?}");
        assert!(
            new[0].starts_with("db: Docker runs its first check 10 s after"),
            "{new:?}"
        );
        assert!(new[0].contains("save about 9 s"), "{new:?}");
        let old = health_timing_notes(&stack, Some("1.41"));
        assert!(
            old[0].contains("this one has API 1.41, which ignores start_interval"),
            "{old:?}"
        );
    }
}
