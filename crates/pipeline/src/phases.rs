//! The phases of a run, each a function from the options (and the project
//! preflight loaded) to its value and the note shown for it: preflight,
//! clean, certs, build, up, test. The runner in `e2e.rs` times and records
//! them and tears down after them.

use std::collections::BTreeMap;
use std::time::Duration;

use build_context::clean;
use camino::Utf8PathBuf;
use compose::{Container, Engine, Project, UpOptions};
use process::Cmd;

use crate::e2e::{Failure, Options, PhaseResult, Progress, stack};
use crate::fingerprint::{self, Store};
use crate::report::{CertsDone, Cleaned, ContextSize, Phase};

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
fn check_filtersets(opts: &Options) -> Result<Option<String>, Failure> {
    let version = std::thread::spawn({
        let root = opts.workspace.root.clone();
        move || Cmd::cargo(["nextest", "--version"]).text(&root).ok()
    });
    let packages_error = |e: test_runner::Error| {
        Failure::BadInput(format!("{}: tests.packages: {e}", opts.config.path))
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
        let workspace = test_runner::Workspace::load(&opts.workspace.root).map_err(stack)?;
        write_cargo_metadata(opts, workspace.metadata_json());
        // A package that is not a member would make nextest fail after the whole
        // stack was built and started; say so now, with the members to choose from.
        workspace
            .check_packages(&opts.config.tests.packages)
            .map_err(packages_error)?;
        for f in &opts.filtersets {
            workspace
                .check(f, "-E")
                .map_err(|e| Failure::BadInput(e.to_string()))?;
        }
        if let Some(f) = &opts.config.tests.filterset {
            let what = format!("{}: tests.filterset", opts.config.path);
            workspace
                .check(f, &what)
                .map_err(|e| Failure::BadInput(e.to_string()))?;
        }
    }
    let version = version
        .join()
        .expect("asking nextest's version does not panic");
    Ok(version.and_then(|v| test_runner::filterset::version_note(&v)))
}

fn engine_and_stack(opts: &Options) -> Result<(String, Project, Vec<String>), Failure> {
    // The engine's answer and Compose's model of the stack are independent;
    // loading the stack proves Compose v2 is there.
    let engine = std::thread::spawn(Engine::server);
    let project = Project::load(opts.config.project_spec(Some(opts.project.clone())));
    let server = engine
        .join()
        .expect("asking the engine does not panic")
        .map_err(stack)?;
    crate::disk::check_floor(&server, &opts.config.disk, &opts.config.path)
        .map_err(Failure::Stack)?;
    let engine = server.summary();
    let mut project = match project {
        Ok(p) => p,
        Err(e) => {
            // A missing or v1-only Compose explains more than its failure does.
            Engine::require().map_err(stack)?;
            return Err(Failure::BadInput(format!(
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
    let model_ports = |service: &str, port: u16| {
        let s = project.stack.services.get(service)?;
        s.ports
            .iter()
            .find(|p| p.target == port && p.published.is_some())
            .map(|_| format!("{service}:{port}"))
    };
    for value in opts.config.tests.env.values() {
        expand(value, model_ports)
            .map_err(|e| Failure::BadInput(format!("{}: {e}", opts.config.path)))?;
    }
    let config = &opts.config;
    for (service, probe) in &config.readiness.services {
        let Some(s) = project.stack.services.get(service) else {
            return Err(Failure::BadInput(format!(
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
        let port = match probe {
            compose::Probe::Tcp(p) => Some(*p),
            compose::Probe::Http(h) => Some(h.port),
            _ => None,
        };
        if let Some(port) = port
            && !s.published_tcp().contains(&port)
        {
            return Err(Failure::BadInput(format!(
                "{}: readiness.services.{service}: the probe asks port {port}, which {service} does not publish; \
                 publish it, or judge it by its log (`log: REGEX`) or a healthcheck",
                config.path
            )));
        }
    }
    let mut warnings = Vec::new();
    if let Some(remote) = Engine::remote_host() {
        warnings.push(format!(
            "engine on {remote}, ports reached at {}",
            Engine::publish_host()
        ));
        // The certificates go to that engine in a project volume instead.
        let certs = opts.config.certs_mounts(&project.stack);
        if !certs.is_empty() {
            let file = opts.run_dir.join("certs-volume.yaml");
            write_certs_volume_override(&certs, &file).map_err(Failure::Stack)?;
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
        write_labels_override(&project, &file, &labels).map_err(Failure::Stack)?;
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
    if opts.ephemeral_ports {
        let file = opts.run_dir.join("ephemeral-ports.yaml");
        write_ephemeral_override(&project, &file).map_err(Failure::Stack)?;
        project.spec.files.push(file);
    } else {
        project.check_ports().map_err(stack)?;
        let fixed: Vec<String> = project
            .stack
            .services
            .iter()
            .flat_map(|(name, s)| {
                s.ports
                    .iter()
                    .filter_map(move |p| Some(format!("{} ({name})", p.published.as_ref()?)))
            })
            .collect();
        if opts.ci && !fixed.is_empty() {
            warnings.push(format!(
                "warning: fixed host ports {} cannot run in parallel on one engine; pass --ephemeral-ports",
                fixed.join(", ")
            ));
        }
    }
    Ok((engine, project, warnings))
}

/// The project volume that carries the certificates to a remote engine.
pub(crate) const CERTS_VOLUME: &str = "e2e-certs";

/// An override file that mounts the certificates volume where the compose
/// file mounts the certificate folder (Compose merges a service's mounts by
/// target, so it replaces the bind mount).
fn write_certs_volume_override(
    mounts: &[compose::model::BindMount],
    file: &camino::Utf8Path,
) -> Result<(), String> {
    let mut text = String::from(
        "# Written by cargo e2e for this run: the engine is remote, so the certificates go in a volume.\nservices:\n",
    );
    for m in mounts {
        text.push_str(&format!(
            "  {}:\n    volumes:\n      - type: volume\n        source: {CERTS_VOLUME}\n        target: {:?}\n        read_only: {}\n",
            m.service, m.target, m.read_only
        ));
    }
    text.push_str(&format!("volumes:\n  {CERTS_VOLUME}: {{}}\n"));
    write_run_file(file, &text)
}

/// A file this run writes into its folder (the override files).
fn write_run_file(file: &camino::Utf8Path, text: &str) -> Result<(), String> {
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {dir}: {e}"))?;
    }
    std::fs::write(file, text).map_err(|e| format!("cannot write {file}: {e}"))
}

/// An override file that adds `labels` to every service's containers.
fn write_labels_override(
    project: &Project,
    file: &camino::Utf8Path,
    labels: &[(&str, String)],
) -> Result<(), String> {
    let mut text = String::from(
        "# Written by cargo e2e for this run: whose containers these are.\nservices:\n",
    );
    for name in project.stack.services.keys() {
        text.push_str(&format!("  {name}:\n    labels:\n"));
        for (k, v) in labels {
            text.push_str(&format!("      {k}: {v:?}\n"));
        }
    }
    write_run_file(file, &text)
}

/// An override file that publishes every published port again on a host
/// port the engine picks, keeping its host address and protocol; the user's
/// compose file stays as it is. `!override` replaces the list (Compose 2.24.4+).
fn write_ephemeral_override(project: &Project, file: &camino::Utf8Path) -> Result<(), String> {
    let mut text =
        String::from("# Written by cargo e2e --ephemeral-ports for this run.\nservices:\n");
    for (name, s) in &project.stack.services {
        if s.ports.iter().all(|p| p.published.is_none()) {
            continue;
        }
        text.push_str(&format!("  {name}:\n    ports: !override\n"));
        for p in &s.ports {
            text.push_str(&format!("      - target: {}\n", p.target));
            if let Some(ip) = p.host_ip.as_deref().filter(|i| !i.is_empty()) {
                text.push_str(&format!("        host_ip: \"{ip}\"\n"));
            }
            if let Some(proto) = &p.protocol {
                text.push_str(&format!("        protocol: {proto}\n"));
            }
        }
    }
    write_run_file(file, &text)
}

/// What the tests see: the project, the CA (with certificates), and
/// `tests.env` with each `{service:port}` made the address where the engine
/// publishes it, as the engine reports it (ports it picked included).
fn test_env(opts: &Options, containers: &[Container]) -> Result<Vec<(String, String)>, String> {
    let c = &opts.config;
    let mut env = vec![("E2E_PROJECT".to_owned(), opts.project.clone())];
    if let Some(dir) = c.certs_dir() {
        env.push(("E2E_CA_CERT".to_owned(), dir.join("ca.crt").to_string()));
    }
    let published = |service: &str, port: u16| {
        containers
            .iter()
            .filter(|k| k.service == service)
            .find_map(|k| k.published(port))
    };
    for (key, value) in &c.tests.env {
        env.push((key.clone(), expand(value, published)?));
    }
    Ok(env)
}

pub(crate) fn clean_phase(opts: &Options, project: &Project) -> PhaseResult<Option<Cleaned>> {
    let roots: Vec<Utf8PathBuf> = project
        .stack
        .build_contexts()
        .into_iter()
        .map(|(_, c, _)| c.to_owned())
        .collect();
    let Some(first) = roots.first() else {
        return Ok((None, "no build contexts".into()));
    };
    match crate::git::tracked(first).map_err(stack)? {
        Some((repo, tracked)) => {
            let plan = clean::plan(&repo, &roots, &opts.config.context.artifacts, &tracked)
                .map_err(|e| {
                    Failure::BadInput(format!("{}: context.artifacts: {e}", opts.config.path))
                })?;
            let outcome = clean::execute(&plan, false);
            let note = format!(
                "removed {} artifacts ({})",
                outcome.removed_files,
                build_context::human(outcome.bytes_freed)
            );
            Ok((
                Some(Cleaned {
                    files: outcome.removed_files,
                    bytes: outcome.bytes_freed,
                }),
                note,
            ))
        }
        None => Ok((None, "not a git work tree: nothing deleted".into())),
    }
}

/// What each context sends now (after staging: exactly what the build will
/// get), checked against `context.budget` before the build starts; and the
/// key of each service's build inputs (none when they could not be read:
/// then it builds).
fn measure_contexts(
    opts: &Options,
    project: &Project,
    store: &mut Store,
    image_ids: &BTreeMap<String, String>,
) -> Result<(Vec<ContextSize>, BTreeMap<String, String>), Failure> {
    let budget = opts.config.budget();
    let mut sizes = Vec::new();
    let mut keys = BTreeMap::new();
    for (service, root, dockerfile) in project.stack.build_contexts() {
        let ctx = build_context::Context::open(root, Some(&dockerfile))
            .map_err(|e| Failure::BadInput(e.to_string()))?;
        let walk = ctx
            .walk(build_context::WalkOptions {
                sizes: true,
                into_pruned: false,
            })
            .map_err(|e| Failure::BadInput(e.to_string()))?;
        let build_config = &project.stack.service_config(service)["build"];
        let inputs = build_context::dockerfile::BuildInputs::from_compose(build_config);
        let r = build_context::analyze(&ctx, &walk, &inputs, budget);
        if let Ok(key) = store.build_key(&ctx, &walk, &r.transfer.order, build_config, image_ids) {
            keys.insert(service.to_owned(), key);
        }
        if let Some(over) = r.over_budget_message() {
            return Err(Failure::Limit(format!(
                "the context of {service} {over} (`cargo xtask clean-context` suggests ignore lines)"
            )));
        }
        sizes.push(ContextSize {
            service: service.to_owned(),
            context: root.to_owned(),
            sent_files: r.transfer.files,
            sent_bytes: r.transfer.bytes,
            wire_bytes: r.transfer.wire_bytes,
        });
    }
    Ok((sizes, keys))
}

pub(crate) fn certs_phase(opts: &Options, project: &Project) -> PhaseResult<CertsDone> {
    let Some(spec) = opts
        .config
        .certs_spec(project.stack.services.keys().cloned())
    else {
        return Err(Failure::BadInput("no certs section".into()));
    };
    let r = certs::ensure(&spec, certs::Mode::Ensure).map_err(stack)?;
    let note = r.reason.replace('\n', "; ");
    Ok((
        CertsDone {
            action: r.action,
            reason: r.reason,
        },
        note,
    ))
}

/// What the build phase hands on.
#[derive(Debug)]
pub(crate) struct Built {
    pub contexts: Vec<ContextSize>,
    pub images: Vec<compose::ImageBuild>,
    /// The engine's image IDs after the build, by [`compose::image_key`].
    pub image_ids: BTreeMap<String, String>,
    /// The services whose image the build changed (a new image ID).
    pub changed: Vec<String>,
}

/// Work started in a thread of its own to run beside the phases (a cargo
/// build). Dropped before it was joined (a phase failed, Ctrl-C), it stops
/// the process groups it started, and only those, and waits for the thread.
#[derive(Debug)]
struct Beside<T> {
    handle: Option<std::thread::JoinHandle<T>>,
    scope: process::Scope,
}

impl<T: Send + 'static> Beside<T> {
    fn spawn(work: impl FnOnce() -> T + Send + 'static) -> Beside<T> {
        let scope = process::Scope::default();
        let inside = scope.clone();
        Beside {
            handle: Some(std::thread::spawn(move || inside.enter(work))),
            scope,
        }
    }

    fn join(mut self) -> T {
        self.handle
            .take()
            .expect("joined once")
            .join()
            .expect("work beside the phases does not panic")
    }
}

impl<T> Drop for Beside<T> {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.scope.stop();
            let _ = handle.join();
        }
    }
}

/// The staged binaries, built from the start of preflight on (they need
/// nothing preflight checks, and build in their own target folder): the
/// build phase joins it.
#[derive(Debug)]
pub(crate) struct Staging {
    /// `None`: nothing to build (see [`Staging::skip`]).
    work: Option<Beside<Result<usize, String>>>,
    count: usize,
}

impl Staging {
    pub(crate) fn start(opts: &Options) -> Staging {
        let stages: Vec<_> = opts
            .config
            .stage
            .iter()
            .map(|s| (s.clone(), opts.config.resolve(&s.to)))
            .collect();
        let count = stages.len();
        let (root, target) = (
            opts.workspace.root.clone(),
            opts.workspace.target_dir.clone(),
        );
        Staging {
            work: Some(Beside::spawn(move || {
                crate::stage::stage(&root, &target, &stages)
            })),
            count,
        }
    }

    /// Staging that builds nothing: no staged binary's sources changed (a
    /// watch cycle's), so none of their bytes did.
    pub(crate) fn skip(opts: &Options) -> Staging {
        Staging {
            work: None,
            count: opts.config.stage.len(),
        }
    }

    /// How many staged binaries changed.
    fn finish(self) -> Result<usize, Failure> {
        self.work
            .map_or(Ok(0), Beside::join)
            .map_err(Failure::Stack)
    }
}

pub(crate) fn build_phase(
    opts: &Options,
    project: &Project,
    store: &mut Store,
    staging: Staging,
) -> PhaseResult<Built> {
    let stages = staging.count;
    // The engine's images are listed while cargo stages: they are independent.
    let (staged, image_ids) = std::thread::scope(|s| {
        let ids = s.spawn(|| compose::image_ids(&project.spec.dir));
        let staged = staging.finish();
        (staged, ids.join().expect("listing images does not panic"))
    });
    let staged = staged?;
    let mut image_ids = image_ids.map_err(stack)?;
    let (contexts, keys) = measure_contexts(opts, project, store, &image_ids)?;
    // A service whose inputs, recorded image and engine's image all match
    // the last build is not built again.
    // (service, image name) pairs.
    let (unchanged, to_build): (Vec<_>, Vec<_>) =
        project.images().into_iter().partition(|(service, image)| {
            let record = store.state.builds.get(service);
            !opts.rebuild
                && record.is_some_and(|r| {
                    keys.get(service) == Some(&r.key)
                        && image_ids.get(&compose::image_key(image)) == Some(&r.image_id)
                })
        });
    let mut images: Vec<compose::ImageBuild> = unchanged
        .iter()
        .map(|(service, image)| compose::ImageBuild {
            service: service.clone(),
            image: image.clone(),
            built: false,
            unchanged: true,
            steps_named: false,
        })
        .collect();
    let mut changed = Vec::new();
    if !to_build.is_empty() {
        let services: Vec<String> = to_build.iter().map(|(s, _)| s.clone()).collect();
        images.extend(
            project
                .build(&opts.run_dir.join("build.log"), Some(&services))
                .map_err(stack)?,
        );
        let before = std::mem::replace(
            &mut image_ids,
            compose::image_ids(&project.spec.dir).map_err(stack)?,
        );
        for (service, image) in &to_build {
            let key = compose::image_key(image);
            if before.get(&key) != image_ids.get(&key) {
                changed.push(service.clone());
            }
        }
        // bake runs a step several targets share once, under one target's
        // name: a service with no step of its own was built if its image is new.
        for i in images.iter_mut().filter(|i| !i.unchanged && !i.steps_named) {
            i.built |= changed.contains(&i.service);
        }
        for (service, image) in &to_build {
            match (keys.get(service), image_ids.get(&compose::image_key(image))) {
                (Some(key), Some(id)) => store.state.builds.insert(
                    service.clone(),
                    fingerprint::Built {
                        key: key.clone(),
                        image_id: id.clone(),
                    },
                ),
                _ => store.state.builds.remove(service),
            };
        }
        // Losing the record costs only the next run's skip.
        let _ = store.save();
    }
    images.sort_by(|a, b| a.service.cmp(&b.service));
    let shown: Vec<String> = images
        .iter()
        .map(|i| {
            let how = match (i.unchanged, i.built) {
                (true, _) => "unchanged",
                (false, true) => "built",
                (false, false) => "cached",
            };
            format!("{} {how}", i.service)
        })
        .collect();
    let sizes: Vec<String> = contexts
        .iter()
        .map(|c| format!("{} {}", c.service, build_context::human(c.sent_bytes)))
        .collect();
    // Only what this stack has: a stack of pulled images builds nothing.
    let mut parts = Vec::new();
    if !shown.is_empty() {
        parts.push(format!("images: {}", shown.join(", ")));
    }
    if !sizes.is_empty() {
        parts.push(format!("contexts sent: {}", sizes.join(", ")));
    }
    if stages > 0 {
        parts.push(format!("staged binaries: {staged} of {stages} changed"));
    }
    let note = if parts.is_empty() {
        "nothing to build: every service runs a ready-made image".to_owned()
    } else {
        parts.join("; ")
    };
    Ok((
        Built {
            contexts,
            images,
            image_ids,
            changed,
        },
        note,
    ))
}

/// When the certificate folder's files last changed (by the certs phase, or
/// by `cargo xtask certs` between runs).
fn newest_certificate(opts: &Options) -> Option<std::time::SystemTime> {
    let dir = opts.config.certs_dir()?;
    let entries = std::fs::read_dir(dir).ok()?;
    entries
        .filter_map(|e| e.ok()?.metadata().ok()?.modified().ok())
        .max()
}

pub(crate) fn up_phase(
    opts: &Options,
    project: &Project,
    store: &mut Store,
    image_ids: Option<BTreeMap<String, String>>,
    only: Option<Vec<String>>,
    known: Option<Vec<Container>>,
    progress: &mut dyn Progress,
) -> PhaseResult<compose::UpSummary> {
    let image_ids = match image_ids {
        Some(ids) => ids,
        None => compose::image_ids(&project.spec.dir).map_err(stack)?,
    };
    // Nothing the containers are made from changed since the last `up`: if
    // the containers it left are still as it left them, `up` is skipped.
    let key = fingerprint::stack_key(project, opts.ephemeral_ports, &image_ids);
    let unchanged = match (&key, &store.state.stack) {
        (Some(key), Some(last)) if !opts.rebuild && &last.key == key => {
            Some(last.containers.clone())
        }
        _ => None,
    };
    // A running container holds the certificates it read at start: new ones
    // need new containers, which Compose would not make for unchanged config.
    let up_opts = UpOptions {
        timeout: Duration::from_secs(opts.config.readiness.timeout_s),
        // A watch cycle's certificates are the session's.
        mounted_files_changed: only.is_none().then(|| newest_certificate(opts)).flatten(),
        probes: opts.config.readiness.services.clone(),
        unchanged,
        replace_grace: Duration::from_secs(opts.config.teardown.grace_s),
        only,
        known,
    };
    // A remote engine gets the certificates in a volume, filled anew each run
    // (new certificates recreate the containers, as with a bind mount).
    if Engine::remote_host().is_some()
        && let Some(dir) = opts.config.certs_dir()
    {
        let certs = opts.config.certs_mounts(&project.stack);
        if !certs.is_empty() {
            // The images of the services that mount them first, then any other.
            let mut images: Vec<String> = Vec::new();
            let services = certs
                .iter()
                .map(|b| b.service.as_str())
                .chain(project.stack.services.keys().map(String::as_str));
            for image in services.filter_map(|s| project.image_of(s)) {
                if !images.contains(&image) {
                    images.push(image);
                }
            }
            project
                .fill_volume(CERTS_VOLUME, &dir, &images)
                .map_err(stack)?;
        }
    }
    let up = project
        .up_and_wait(up_opts, |pending| {
            let list: Vec<String> = pending.iter().map(|(s, w)| format!("{s} ({w})")).collect();
            progress.note(Phase::Up, &format!("waiting for {}", list.join(", ")));
        })
        .map_err(stack)?;
    store.state.stack = key.map(|key| fingerprint::Started {
        key,
        containers: up.conditions.clone(),
    });
    let _ = store.save();
    let mut by_time: Vec<(&String, &f64)> = up.ready_s.iter().collect();
    by_time.sort_by(|a, b| a.1.total_cmp(b.1));
    let ready: Vec<String> = by_time
        .iter()
        .map(|(s, t)| format!("{s} {t:.1} s"))
        .collect();
    let mut note = if up.unchanged {
        format!(
            "unchanged: {} containers as the last run left them, `up` skipped; ready: {}",
            up.reused,
            ready.join(", ")
        )
    } else {
        format!(
            "containers: {} created, {} started, {} reused; ready: {}",
            up.created,
            up.started,
            up.reused,
            ready.join(", ")
        )
    };
    if !up.checks_run_here.is_empty() {
        note.push_str(&format!(
            "; health checks run by the tool: {}",
            up.checks_run_here.join(", ")
        ));
    }
    if up.levels > 1 {
        note.push_str(&format!("; started in {} dependency levels", up.levels));
    }
    if !up.killed.is_empty() {
        note.push_str(&format!(
            "; old containers killed at once (PID 1 ignores its stop signal): {}",
            up.killed.join(", ")
        ));
    }
    if !up.repaired_networks.is_empty() {
        note.push_str(&format!(
            "; repaired: removed duplicate networks {}",
            up.repaired_networks.join(", ")
        ));
    }
    for (service, why) in &up.checks_left_to_docker {
        note.push_str(&format!("; {service}: Docker's own check ({why})"));
    }
    Ok((up, note))
}

/// Runs nextest; `counted` receives its outcome (counts, JUnit path) whether
/// the tests passed or not.
/// The nextest run of this config: the profile the tool supplies (for a
/// workspace whose nextest config lacks it; its own config still wins where
/// it says something), with its store (the JUnit report) in this run's
/// folder, so runs of several projects at once each count their own report.
fn invocation(
    opts: &Options,
    filtersets: Vec<String>,
    env: Vec<(String, String)>,
) -> test_runner::Result<test_runner::Invocation> {
    let c = &opts.config;
    let tool_config = opts.run_dir.join("nextest-tool.toml");
    test_runner::write_tool_config(
        &tool_config,
        &opts.run_dir,
        &c.tests.profile,
        &c.tests.packages,
    )?;
    Ok(test_runner::Invocation {
        profile: c.tests.profile.clone(),
        packages: c.tests.packages.clone(),
        filtersets,
        args: opts.nextest_args.clone(),
        env,
        tool_config: Some(tool_config),
        reuse: None,
    })
}

fn cargo_metadata_file(opts: &Options) -> Utf8PathBuf {
    opts.run_dir.join("cargo-metadata.json")
}

/// Writes the workspace's full `cargo metadata` to `to`, from the copy the
/// last run kept when no manifest, lock file or cargo config changed since
/// (their sizes and mtimes), else from cargo (~0.2 s of CPU, which on two
/// cores is felt by everything running beside it).
fn cached_cargo_metadata(ws: &crate::Workspace, to: &camino::Utf8Path) {
    let state = ws.target_dir.join("e2e/state");
    let (cached, key_file) = (
        state.join("cargo-metadata.json"),
        state.join("cargo-metadata.key"),
    );
    let mut inputs: Vec<Utf8PathBuf> = [
        "Cargo.toml",
        "Cargo.lock",
        ".cargo/config.toml",
        ".cargo/config",
    ]
    .iter()
    .map(|f| ws.root.join(f))
    .collect();
    inputs.extend(ws.manifests.iter().cloned());
    let mut key: String = inputs
        .iter()
        .map(|p| match std::fs::metadata(p) {
            Ok(m) => format!(
                "{p} {} {:?}\n",
                m.len(),
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            ),
            Err(_) => format!("{p} none\n"),
        })
        .collect();
    // Targets cargo finds by their files (a new `tests/x.rs` is a new test
    // binary, which a filterset may name) change the metadata too.
    for manifest in &ws.manifests {
        key.push_str(&auto_targets(manifest.parent().unwrap_or(&ws.root)));
    }
    if std::fs::read_to_string(&key_file).is_ok_and(|k| k == key)
        && std::fs::copy(&cached, to).is_ok()
    {
        return;
    }
    if let Ok(json) = Cmd::cargo(["metadata", "--format-version", "1"]).output(&ws.root)
        && std::fs::write(to, &json).is_ok()
    {
        // Runs of other projects in this workspace read the copy meanwhile:
        // each file is replaced whole, the copy before the key that vouches for it.
        let _ = std::fs::create_dir_all(&state);
        if crate::write_whole(&cached, &json).is_ok() {
            let _ = crate::write_whole(&key_file, key.as_bytes());
        }
    }
}

/// The files by which cargo discovers a package's targets, named.
fn auto_targets(dir: &camino::Utf8Path) -> String {
    let mut out = String::new();
    for file in ["src/lib.rs", "src/main.rs", "build.rs"] {
        if dir.join(file).exists() {
            out.push_str(&format!("{dir}/{file}\n"));
        }
    }
    for folder in ["src/bin", "tests", "examples", "benches"] {
        let Ok(entries) = dir.join(folder).read_dir_utf8() else {
            continue;
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_owned())
            .collect();
        names.sort();
        out.push_str(&format!("{dir}/{folder}: {}\n", names.join(" ")));
    }
    out
}

/// Handed to nextest with the prebuilt binaries, so it need not run cargo
/// again; a file that could not be written is removed (no reuse then).
fn write_cargo_metadata(opts: &Options, json: &str) {
    let file = cargo_metadata_file(opts);
    let _ = std::fs::create_dir_all(&opts.run_dir);
    if std::fs::write(&file, json).is_err() {
        let _ = std::fs::remove_file(&file);
    }
}

/// The test binaries, built while images build and the stack starts (they
/// do not depend on it): the test phase then only runs them.
#[derive(Debug)]
pub(crate) struct Prebuild {
    work: Option<Beside<process::Result<process::GroupOutput>>>,
    command: String,
    /// Where the list of built binaries goes, for [`test_runner::Reuse`].
    binaries: Utf8PathBuf,
    /// Built by an earlier cycle: `binaries` is ready.
    built: bool,
}

impl Prebuild {
    pub(crate) fn start(opts: &Options) -> Prebuild {
        let Ok(inv) = invocation(opts, Vec::new(), Vec::new()) else {
            // The test phase writes the same file and reports the error.
            return Prebuild {
                work: None,
                command: String::new(),
                binaries: Utf8PathBuf::new(),
                built: false,
            };
        };
        let cmd = inv.list_command();
        let command = cmd.to_string();
        let root = opts.workspace.root.clone();
        let metadata = cargo_metadata_file(opts);
        let workspace = opts.workspace.clone();
        let work = Beside::spawn(move || {
            // Preflight wrote it only when it needed the package graph; asked
            // for beside the build, it costs no wall time.
            let meta = (!metadata.exists())
                .then(|| std::thread::spawn(move || cached_cargo_metadata(&workspace, &metadata)));
            let built = cmd.run_group(
                &root,
                process::GroupOptions {
                    capture: true,
                    interruptible: true,
                },
            );
            if let Some(m) = meta {
                let _ = m.join();
            }
            built
        });
        Prebuild {
            work: Some(work),
            command,
            binaries: opts.run_dir.join("binaries-metadata.json"),
            built: false,
        }
    }

    /// The test binaries an earlier cycle built, none of whose sources
    /// changed since: its lists (`binaries-metadata.json`,
    /// `cargo-metadata.json` in `from`) are copied to this run's folder,
    /// and the test phase runs them without cargo. Anything missing: the
    /// tests build as usual.
    pub(crate) fn reuse(opts: &Options, from: &camino::Utf8Path) -> Prebuild {
        let binaries = opts.run_dir.join("binaries-metadata.json");
        let copied = std::fs::create_dir_all(&opts.run_dir).is_ok()
            && std::fs::copy(from.join("binaries-metadata.json"), &binaries).is_ok()
            && std::fs::copy(from.join("cargo-metadata.json"), cargo_metadata_file(opts)).is_ok();
        if !copied {
            return Prebuild::start(opts);
        }
        Prebuild {
            work: None,
            command: String::new(),
            binaries,
            built: true,
        }
    }

    /// Waits for the build; a failed one fails the test phase with its
    /// output. The list of the binaries built, when it could be written.
    pub(crate) fn finish(self) -> Result<Option<Utf8PathBuf>, Failure> {
        let Some(work) = self.work else {
            return Ok(self.built.then_some(self.binaries));
        };
        let out = work.join().map_err(stack)?;
        if out.success() {
            return Ok(std::fs::write(&self.binaries, &out.stdout)
                .is_ok()
                .then(|| self.binaries.clone()));
        }
        let text = format!("{}{}", out.stdout, out.stderr);
        let lines: Vec<&str> = text.lines().collect();
        Err(Failure::Stack(format!(
            "the test binaries did not build (`{}`):\n{}",
            self.command,
            lines[lines.len().saturating_sub(30)..].join("\n")
        )))
    }
}

pub(crate) fn test_phase(
    opts: &Options,
    project: &Project,
    prebuild: Option<Prebuild>,
    containers: Option<Vec<Container>>,
    counted: &mut Option<test_runner::Outcome>,
) -> PhaseResult<()> {
    let reused = prebuild.as_ref().is_some_and(|p| p.built);
    let binaries = match prebuild {
        Some(p) => p.finish()?,
        None => None,
    };
    let c = &opts.config;
    let containers = match containers {
        Some(c) => c,
        None => project.ps().map_err(stack)?,
    };
    let env = test_env(opts, &containers).map_err(Failure::BadInput)?;
    let filtersets = if opts.filtersets.is_empty() {
        c.tests.filterset.iter().cloned().collect()
    } else {
        opts.filtersets.clone()
    };
    let mut invocation = invocation(opts, filtersets, env).map_err(stack)?;
    // The binaries the prebuild made are run as they are, without a second
    // cargo build; pass-through arguments other than run options may be
    // cargo's own build options, which nextest refuses beside reused
    // binaries, so those keep the plain run.
    let metadata = cargo_metadata_file(opts);
    if let Some(binaries) = binaries
        && test_runner::reusable_with(&opts.nextest_args)
        && metadata.exists()
    {
        invocation.reuse = Some(test_runner::Reuse {
            binaries_metadata: binaries,
            cargo_metadata: metadata,
        });
    }
    let outcome = invocation
        .run(&opts.workspace.root, &opts.run_dir)
        .map_err(stack)?;
    // Tests that failed because the engine went away are not the tests' fault.
    if outcome.verdict != test_runner::Verdict::Passed
        && let Err(compose::Error::NoDaemon { detail }) = Engine::server()
    {
        return Err(Failure::Stack(format!(
            "the Docker engine went away while the tests ran ({detail}); check it with `docker info`, \
             then run again: the next run takes over what this one left"
        )));
    }
    let mut counts = outcome
        .counts
        .map_or_else(|| "no JUnit report to count from".into(), |c| c.to_string());
    if reused && invocation.reuse.is_some() {
        counts.push_str(
            "; test binaries as an earlier cycle built them (none of their sources changed)",
        );
    }
    let verdict = outcome.verdict.clone();
    *counted = Some(outcome);
    match verdict {
        test_runner::Verdict::Passed => Ok(((), counts)),
        test_runner::Verdict::Failed => Err(Failure::Tests(counts)),
        test_runner::Verdict::NoTests => Err(Failure::Tests(format!(
            "no tests ran: the filterset and the `{}` profile's default-filter selected none in {}",
            c.tests.profile,
            if c.tests.packages.is_empty() {
                "the workspace".to_owned()
            } else {
                format!("tests.packages ({})", c.tests.packages.join(", "))
            }
        ))),
        test_runner::Verdict::NextestError(code) => Err(Failure::Stack(format!(
            "`{}` failed with exit code {}",
            invocation.command(),
            code.map_or("none (a signal)".into(), |c| c.to_string())
        ))),
    }
}

/// Each `{service:port}` in `value` becomes what `published` says (the
/// `HOST:PORT` where the engine publishes it).
pub fn expand(
    value: &str,
    published: impl Fn(&str, u16) -> Option<String>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let close = rest[open..]
            .find('}')
            .ok_or(format!("tests.env: unclosed `{{` in `{value}`"))?
            + open;
        let (service, port) = rest[open + 1..close]
            .split_once(':')
            .ok_or(format!("tests.env: `{value}`: write {{service:port}}"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("tests.env: `{value}`: `{port}` is not a port number"))?;
        let address = published(service, port).ok_or(format!(
            "tests.env `{value}`: service {service} publishes no port {port}"
        ))?;
        out.push_str(&rest[..open]);
        out.push_str(&address);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_ports_become_the_published_addresses() {
        let published = |service: &str, port: u16| match (service, port) {
            ("proxy", 80) => Some("127.0.0.1:49153".to_owned()),
            _ => None,
        };
        let table = [
            (
                "http://{proxy:80}/items",
                Ok("http://127.0.0.1:49153/items"),
            ),
            (
                "{proxy:80},{proxy:80}",
                Ok("127.0.0.1:49153,127.0.0.1:49153"),
            ),
            ("plain", Ok("plain")),
            (
                "{proxy:81}",
                Err("tests.env `{proxy:81}`: service proxy publishes no port 81"),
            ),
            (
                "{proxy:http}",
                Err("tests.env: `{proxy:http}`: `http` is not a port number"),
            ),
            ("{proxy}", Err("tests.env: `{proxy}`: write {service:port}")),
            ("{proxy:80", Err("tests.env: unclosed `{` in `{proxy:80`")),
        ];
        for (value, want) in table {
            let got = expand(value, published);
            assert_eq!(
                got.as_deref(),
                want.map_err(str::to_owned).as_deref(),
                "{value}"
            );
        }
    }
}
