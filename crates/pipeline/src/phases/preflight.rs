//! Preflight: before anything exists, the filtersets and packages (cargo
//! metadata), the engine and the stack (docker) are checked at once, and the
//! run's override files are written (owner labels, ephemeral ports, the
//! certificates volume of a remote engine). Fails in seconds.

use compose::{Engine, Project};
use process::Cmd;

use super::test::write_cargo_metadata;
use super::{Options, PhaseResult, expand};
use crate::error::{Error, Result};
use crate::probed::Probed;

/// Checks filtersets (cargo metadata) and the engine and stack (docker) at
/// once: two independent chains of process starts. A filterset error wins,
/// being the user's typo rather than the machine's state.
pub(crate) fn preflight(opts: &Options) -> PhaseResult<Project> {
    let (filters, docker) = std::thread::scope(|s| {
        let filters = s.spawn(|| check_filtersets(opts));
        let docker = s.spawn(|| engine_and_stack(opts));
        (
            filters.join().expect("filterset check does not panic"),
            docker.join().expect("stack check does not panic"),
        )
    });
    let version_note = filters?;
    let (engine, project, warnings) = docker?;
    // Before any line names what the stack is made of.
    crate::secrets::register(crate::secrets::of_run(&opts.config, &project.stack));
    let mut note = format!("engine {engine}, {} services", project.stack.services.len());
    if opts.ephemeral_ports {
        note.push_str(", ports picked by the engine");
    }
    for w in version_note.into_iter().chain(warnings) {
        note.push_str(&format!("; {w}"));
    }
    Ok((project, note))
}

/// `-E` and the config's filterset, against the package graph; the note to
/// show when the installed nextest is not the one whose parser we embed.
fn check_filtersets(opts: &Options) -> Result<Option<String>, Error> {
    let version = std::thread::spawn({
        let root = opts.workspace.root.clone();
        move || Cmd::cargo(["nextest", "--version"]).text(&root).ok()
    });
    let packages_error = |e: test_runner::Error| {
        Error::BadInput(format!("{}: tests.packages: {e}", opts.config.path))
    };
    let members: Vec<&str> = opts.workspace.members.iter().map(String::as_str).collect();
    let no_filtersets = opts.filtersets.is_empty() && opts.config.tests.filterset.is_none();
    if no_filtersets && !members.is_empty() {
        // Nothing to parse: the members found with the workspace suffice, and
        // the whole package graph (a full `cargo metadata`, ~0.2 s) is left
        // to the test build beside the stack.
        test_runner::filterset::check_members(&members, &opts.config.tests.packages)
            .map_err(packages_error)?;
    } else {
        let workspace = test_runner::Workspace::load(&opts.workspace.root)?;
        write_cargo_metadata(opts, workspace.metadata_json());
        // A package that is not a member would make nextest fail after the whole
        // stack was built and started; say so now, with the members to choose from.
        workspace
            .check_packages(&opts.config.tests.packages)
            .map_err(packages_error)?;
        for f in &opts.filtersets {
            workspace
                .check(f, "-E")
                .map_err(|e| Error::BadInput(e.to_string()))?;
        }
        if let Some(f) = &opts.config.tests.filterset {
            let what = format!("{}: tests.filterset", opts.config.path);
            workspace
                .check(f, &what)
                .map_err(|e| Error::BadInput(e.to_string()))?;
        }
    }
    let version = version
        .join()
        .expect("asking nextest's version does not panic");
    Ok(version.and_then(|v| test_runner::filterset::version_note(&v)))
}

fn engine_and_stack(opts: &Options) -> Result<(String, Project, Vec<String>), Error> {
    let spec = opts.config.project_spec(Some(opts.project.clone()));
    let target = &opts.workspace.target_dir;
    // The last run's answers, while nothing they depend on changed.
    let key = Probed::key(&spec, &opts.config.path);
    let kept = key
        .as_deref()
        .filter(|_| !opts.rebuild)
        .and_then(|k| Probed::load(target, &opts.project, k));
    let mut warnings = Vec::new();
    let (server, project) = match kept {
        Some(probed) => {
            warnings.push(
                "engine and compose model as the last run found them (nothing they depend on changed)"
                    .to_owned(),
            );
            let stack = compose::Stack::from_config(probed.config)
                .map_err(|e| Error::Stack(format!("the kept compose model: {e}")))?;
            (probed.facts, Ok(Project { spec, stack }))
        }
        None => {
            // The engine's answer and Compose's model of the stack are
            // independent; loading the stack proves Compose v2 is there.
            let engine = std::thread::spawn(Engine::server);
            let project = Project::load(spec);
            let server = engine.join().expect("asking the engine does not panic")?;
            if let (Some(key), Ok(p)) = (&key, &project) {
                Probed::save(target, &opts.project, key, &server, &p.stack.config);
            }
            (server, project)
        }
    };
    crate::disk::check_floor(&server, &opts.config.disk, &opts.config.path)?;
    let engine = server.summary();
    let mut project = match project {
        Ok(p) => p,
        // Compose's own error first, naming its files.
        Err(e @ compose::Error::Refused { .. }) => return Err(Error::BadInput(e.to_string())),
        Err(e) => {
            // A missing or v1-only Compose explains more than its failure does.
            Engine::require()?;
            return Err(Error::BadInput(format!(
                "the compose stack ({}): {e}",
                opts.config.path
            )));
        }
    };
    if server.product == compose::Product::Podman {
        // Podman serves no BuildKit: Compose's BuildKit paths would start a
        // `moby/buildkit` container (a pull) instead of building on Podman.
        // Its classic `/build` API builds there (buildah).
        project.spec.env.extend(
            [("DOCKER_BUILDKIT", "0"), ("COMPOSE_BAKE", "false")]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
        );
    }
    // A `{service:port}` that names nothing is a config error: found now, not after `up`.
    let model_ports = |service: &str, port: u16, protocol: &str| {
        let s = project.stack.services.get(service)?;
        s.ports
            .iter()
            .find(|p| {
                p.target == port
                    && p.published.is_some()
                    && p.protocol.as_deref().unwrap_or("tcp") == protocol
            })
            .map(|_| format!("{service}:{port}"))
    };
    for value in opts.config.tests.env.values() {
        expand(value, model_ports)
            .map_err(|e| Error::BadInput(format!("{}: {e}", opts.config.path)))?;
    }
    let config = &opts.config;
    for (service, probe) in &config.readiness.services {
        let Some(s) = project.stack.services.get(service) else {
            return Err(Error::BadInput(format!(
                "{}: readiness.services.{service}: the stack has no such service (it has {})",
                config.path,
                project
                    .stack
                    .services
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if matches!(probe, compose::Probe::Healthcheck) && !s.has_healthcheck() {
            return Err(Error::BadInput(format!(
                "{}: readiness.services.{service}: `healthcheck`, but {service} has no healthcheck in the compose file; \
                 add one there, or judge it by a port (`tcp: PORT`), its log (`log: REGEX`) or `running`",
                config.path
            )));
        }
        let port = match probe {
            compose::Probe::Tcp(p) => Some(*p),
            compose::Probe::Http(h) => Some(h.port),
            _ => None,
        };
        if let Some(port) = port
            && !s.published_tcp().contains(&port)
        {
            return Err(Error::BadInput(format!(
                "{}: readiness.services.{service}: the probe asks port {port}, which {service} does not publish; \
                 publish it, or judge it by its log (`log: REGEX`) or a healthcheck",
                config.path
            )));
        }
    }
    if let Some(remote) = Engine::remote_host() {
        warnings.push(format!(
            "engine on {remote}, ports reached at {}",
            project.spec.publish_host()
        ));
        // The certificates go to that engine in a project volume instead.
        let certs = opts.config.certs_mounts(&project.stack);
        if !certs.is_empty() {
            let file = opts.run_dir.join("certs-volume.yaml");
            compose::overrides::write_volume_for(&certs, CERTS_VOLUME, &file)?;
            project.spec.files.push(file);
            let services: Vec<&str> = certs.iter().map(|b| b.service.as_str()).collect();
            warnings.push(format!(
                "certificates copied into the volume {} for {} (the CA key stays here)",
                project.volume_name(CERTS_VOLUME),
                services.join(", ")
            ));
        }
        let binds: Vec<compose::model::BindMount> = project
            .stack
            .bind_mounts()
            .into_iter()
            .filter(|b| !certs.contains(b))
            .collect();
        if !binds.is_empty() {
            let named: Vec<String> = binds
                .iter()
                .map(|b| format!("{} {} -> {}", b.service, b.source, b.target))
                .collect();
            warnings.push(format!(
                "host bind mounts do not reach a remote engine (it mounts its own folders of those names): {}",
                named.join(", ")
            ));
        }
    }
    // A purge run's containers say whose they are: if the run dies and even
    // its reaper cannot act, a later sweep knows them (`reap`).
    if opts.teardown == compose::Policy::Purge
        && let Some(owner) = crate::reap::Owner::current()
    {
        let labels = crate::reap::labels(
            &owner,
            nix::unistd::getuid().as_raw(),
            crate::config::unix_time(),
        );
        let file = opts.run_dir.join("owner-labels.yaml");
        compose::overrides::write_labels(&project, &labels, &file)?;
        project.spec.files.push(file);
    }
    // Under CI, what dead runs left on this engine goes first.
    if opts.ci {
        match crate::reap::sweep(false, crate::reap::Thresholds::default()) {
            Ok(swept) => {
                let removed: Vec<String> = swept
                    .iter()
                    .filter(|(d, done)| d.remove && done.is_some())
                    .map(|(d, _)| d.project.clone())
                    .collect();
                if !removed.is_empty() {
                    warnings.push(format!(
                        "swept {} project(s) left by dead runs: {}",
                        removed.len(),
                        removed.join(", ")
                    ));
                }
            }
            Err(e) => warnings.push(format!(
                "warning: the sweep of dead runs' projects failed: {e}"
            )),
        }
    }
    let hazards = project.hazards();
    if opts.ephemeral_ports {
        isolate(opts, &mut project, &hazards, &mut warnings)?;
    } else {
        project.check_ports()?;
        if opts.ci && !hazards.is_empty() {
            let shown: Vec<String> = hazards.iter().map(ToString::to_string).collect();
            warnings.push(format!(
                "warning: two runs of this stack cannot share an engine: {}; pass --ephemeral-ports \
                 to rewrite them for this run (an external network or volume cannot be)",
                shown.join(", ")
            ));
        }
    }
    Ok((engine, project, warnings))
}

/// The isolation mode (`--ephemeral-ports`): host ports the engine picks and
/// fixed names scoped to the project again, in override files; an external
/// network or volume cannot be rewritten, and under CI, where runs share
/// engines, it is refused before anything starts.
fn isolate(
    opts: &Options,
    project: &mut Project,
    hazards: &[compose::isolation::Hazard],
    warnings: &mut Vec<String>,
) -> Result<(), Error> {
    let (rewritten, shared): (Vec<_>, Vec<_>) = hazards.iter().partition(|h| h.rewritable());
    let shared: Vec<String> = shared.iter().map(ToString::to_string).collect();
    if !shared.is_empty() && opts.ci {
        return Err(Error::BadInput(format!(
            "--ephemeral-ports under CI: runs of this stack would share {} with every other run \
             on the engine; make it the project's own (drop `external: true`), or run without \
             --ephemeral-ports on an engine of the job's own",
            shared.join(", ")
        )));
    }
    let file = opts.run_dir.join("ephemeral-ports.yaml");
    compose::overrides::write_ephemeral_ports(project, &file)?;
    project.spec.files.push(file);
    let names = opts.run_dir.join("isolation.yaml");
    let owned: Vec<compose::isolation::Hazard> = rewritten.iter().map(|h| (*h).clone()).collect();
    if compose::isolation::write_isolation(&owned, &names)? {
        project.spec.files.push(names);
        // The model with the names as Compose now resolves them.
        *project = Project::load(project.spec.clone())?;
    }
    let names: Vec<String> = rewritten
        .iter()
        .filter(|h| h.kind != compose::isolation::Kind::HostPort)
        .map(ToString::to_string)
        .collect();
    if !names.is_empty() {
        warnings.push(format!(
            "scoped to this project for the run (override file, not yours): {}",
            names.join(", ")
        ));
    }
    if !shared.is_empty() {
        warnings.push(format!(
            "warning: shared with other runs on this engine, not rewritable: {}",
            shared.join(", ")
        ));
    }
    Ok(())
}

/// The project volume that carries the certificates to a remote engine.
pub(crate) const CERTS_VOLUME: &str = "e2e-certs";
