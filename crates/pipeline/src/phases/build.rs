//! The build phase: the staged binaries (built beside the phases from
//! preflight on), each context measured against its budget and fingerprinted,
//! and `compose build` of only the services whose inputs changed.

use std::collections::{BTreeMap, BTreeSet};

use compose::Project;

use super::{Beside, Options, PhaseResult, Progress, Work};
use crate::error::{Error, Result};
use crate::fingerprint::{self, BuildKey, Store};
use crate::report::ContextSize;
use crate::report::Phase;
use crate::sources::Snapshot;

/// What each context sends now (after staging: exactly what the build will
/// get), checked against `context.budget` before the build starts; and the
/// key of each service's build inputs (none when they could not be read:
/// then it builds).
/// `only`: just these services' (a watch cycle's; the others build nothing).
fn measure_contexts(
    opts: &Options,
    project: &Project,
    store: &mut Store,
    image_ids: &BTreeMap<String, String>,
    only: Option<&BTreeSet<String>>,
) -> Result<(Vec<ContextSize>, BTreeMap<String, BuildKey>), Error> {
    let budget = opts.config.budget();
    let mut sizes = Vec::new();
    let mut keys = BTreeMap::new();
    let contexts = project.stack.build_contexts().into_iter();
    for (service, root, dockerfile) in
        contexts.filter(|(s, ..)| only.is_none_or(|o| o.contains(*s)))
    {
        let ctx = build_context::Context::open(root, Some(&dockerfile))
            .map_err(|e| Error::BadInput(e.to_string()))?;
        let walk = ctx
            .walk(build_context::WalkOptions {
                sizes: true,
                into_pruned: false,
            })
            .map_err(|e| Error::BadInput(e.to_string()))?;
        let build_config = &project.stack.service_config(service)["build"];
        let inputs = build_context::dockerfile::BuildInputs::from_compose(build_config);
        let r = build_context::analyze(&ctx, &walk, &inputs, budget);
        if let Ok(key) = store.build_key(&ctx, &walk, &r.transfer.order, build_config, image_ids) {
            keys.insert(service.to_owned(), key);
        }
        if let Some(over) = r.over_budget_message() {
            return Err(Error::OverBudget(format!(
                "the context of {service} {over} (`{} clean-context` suggests ignore lines)",
                opts.tool
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

/// What the build phase hands on.
#[derive(Debug)]
pub(crate) struct Built {
    pub contexts: Vec<ContextSize>,
    pub images: Vec<compose::ImageBuild>,
    /// The engine's image IDs after the build, by [`compose::image_key`].
    pub image_ids: BTreeMap<String, String>,
    /// The services whose image the build changed (a new image ID).
    pub changed: Vec<String>,
    /// The staged binaries whose bytes changed.
    pub staged: Vec<camino::Utf8PathBuf>,
}

/// The staged binaries, built from the start of preflight on (they need
/// nothing preflight checks, and build in their own target folder): the
/// build phase joins it.
#[derive(Debug)]
pub(crate) struct Staging {
    /// `None`: nothing to build (see [`Staging::skip`]).
    work: Option<Beside<Result<Vec<camino::Utf8PathBuf>>>>,
    count: usize,
    /// The key of the sources the build started from, to record with its outputs.
    sources: Option<String>,
    /// Nothing built: the sources and the staged files are as the last build left them.
    unchanged: bool,
    /// A shard's: the build job's binaries put back (or why they could not be).
    restored: Option<Result<usize>>,
}

impl Staging {
    /// A run's staging: none at all when the sources and the staged files
    /// are as the last build left them (cargo is not even asked), else the
    /// build, started now.
    pub(crate) fn for_run(opts: &Options, store: &Store, now: Option<&Snapshot>) -> Staging {
        let sources = now
            .filter(|_| !opts.rebuild && !opts.config.stage.is_empty())
            .map(|s| stage_key(opts, s));
        let unchanged = store.state.stage.as_ref().is_some_and(|last| {
            Some(&last.sources) == sources.as_ref()
                && last.outputs == crate::sources::outputs(&stage_outputs(opts))
        });
        if unchanged {
            return Staging {
                unchanged,
                ..Staging::skip(opts)
            };
        }
        Staging {
            sources,
            ..Staging::start(opts)
        }
    }

    /// Records what the build started from and what it left, once it
    /// passed; not when a source changed while it ran (cargo may have read
    /// either version: the next run asks it).
    fn record(&self, opts: &Options, store: &mut Store) {
        let Some(before) = &self.sources else { return };
        let outside = &store.state.outside;
        let after = Snapshot::take(&opts.workspace, &stage_outputs(opts), outside);
        store.state.stage =
            (after.map(|s| stage_key(opts, &s)).as_ref() == Some(before)).then(|| {
                fingerprint::CargoBuilt {
                    sources: before.clone(),
                    outputs: crate::sources::outputs(&stage_outputs(opts)),
                    dir: None,
                }
            });
    }

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
            work: Some(Beside::spawn(move |board| {
                let progress = std::sync::Arc::new(move |p: process::CargoProgress| {
                    board.post(Work::cargo("staged binaries", &p));
                });
                crate::stage::stage(&root, &target, &stages, progress)
            })),
            count,
            sources: None,
            unchanged: false,
            restored: None,
        }
    }

    /// A shard's staging: the build job's staged binaries put where staging
    /// puts them; cargo is not asked.
    pub(crate) fn restored(opts: &Options, from: &camino::Utf8Path) -> Staging {
        let restored = crate::shard::Manifest::read(from)
            .and_then(|m| crate::shard::restore_staged(opts, from, &m));
        Staging {
            restored: Some(restored),
            ..Staging::skip(opts)
        }
    }

    /// Staging that builds nothing: no staged binary's sources changed (a
    /// watch cycle's), so none of their bytes did.
    pub(crate) fn skip(opts: &Options) -> Staging {
        Staging {
            work: None,
            count: opts.config.stage.len(),
            sources: None,
            unchanged: false,
            restored: None,
        }
    }

    /// The staged binaries that changed; shows how the build goes meanwhile.
    fn finish(&mut self, progress: &mut dyn Progress) -> Result<Vec<camino::Utf8PathBuf>> {
        self.work
            .take()
            .map_or(Ok(Vec::new()), |w| w.join(Phase::Build, progress))
    }
}

/// The key of what the staged binaries build from: their packages,
/// profiles and folders, and the workspace's sources.
fn stage_key(opts: &Options, sources: &Snapshot) -> String {
    sources.key(&format!("stage {:?}", opts.config.stage))
}

/// The staged binaries, where the build copies them.
pub(crate) fn stage_outputs(opts: &Options) -> Vec<camino::Utf8PathBuf> {
    opts.config
        .stage
        .iter()
        .map(|s| opts.config.resolve(&s.to).join(&s.package))
        .collect()
}

/// What a watch cycle's changes ask the build phase for; the other
/// services' changes, if any, reached their containers without an image
/// (`develop.watch`, a bind mount): their images catch up at the next build
/// their own changes ask for, or the next run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    pub services: BTreeSet<String>,
    /// The services to build when a staged binary's bytes change (those
    /// that send it and no develop rule syncs it into).
    pub by_staged: BTreeMap<camino::Utf8PathBuf, BTreeSet<String>>,
}

/// `asked`: a watch cycle's (`None`: every service whose inputs changed).
pub(crate) fn build_phase(
    opts: &Options,
    project: &Project,
    store: &mut Store,
    mut staging: Staging,
    asked: Option<&Asked>,
    progress: &mut dyn Progress,
) -> PhaseResult<Built> {
    let stages = staging.count;
    // The engine's images are listed while cargo stages: they are independent.
    let (staged, image_ids) = std::thread::scope(|s| {
        let ids = s.spawn(|| compose::image_ids(&project.spec.dir));
        let staged = staging.finish(progress);
        (staged, ids.join().expect("listing images does not panic"))
    });
    let staged = staged?;
    let restored = staging.restored.take().transpose()?;
    staging.record(opts, store);
    let only: Option<BTreeSet<String>> = asked.map(|a| {
        let by_staged = staged.iter().filter_map(|o| a.by_staged.get(o));
        a.services
            .iter()
            .chain(by_staged.flatten())
            .cloned()
            .collect()
    });
    let only = only.as_ref();
    let mut image_ids = image_ids?;
    let (contexts, keys) = measure_contexts(opts, project, store, &image_ids, only)?;
    // A shard: the build job's image wherever this checkout's inputs are its.
    let imported = match &opts.shard {
        Some(crate::shard::Shard::Run { from, .. }) => {
            crate::shard::import(project, store, from, &keys, &mut image_ids)?
        }
        _ => crate::shard::Imported::default(),
    };
    // A service whose inputs, recorded image and engine's image all match
    // the last build is not built again.
    // (service, image name) pairs.
    let (unchanged, to_build): (Vec<_>, Vec<_>) =
        project.images().into_iter().partition(|(service, image)| {
            let record = store.state.builds.get(service);
            let asked = only.is_none_or(|o| o.contains(service));
            !asked
                || (!opts.rebuild
                    && record.is_some_and(|r| {
                        keys.get(service).map(|k| &k.inputs) == Some(&r.inputs)
                            && image_ids.get(&compose::image_key(image)) == Some(&r.image_id)
                    }))
        });
    // Why each is built: the first input that changed since the last build.
    let why: BTreeMap<String, String> = to_build
        .iter()
        .map(|(service, image)| {
            let record = store.state.builds.get(service);
            let held = record
                .is_some_and(|r| image_ids.get(&compose::image_key(image)) == Some(&r.image_id));
            let why = match keys.get(service) {
                Some(key) => key.why(record, held),
                None => "its inputs could not be read".to_owned(),
            };
            (service.clone(), why)
        })
        .collect();
    let mut images: Vec<compose::ImageBuild> = unchanged
        .iter()
        .map(|(service, image)| compose::ImageBuild {
            service: service.clone(),
            image: image.clone(),
            built: false,
            unchanged: true,
            steps_named: false,
            span: None,
            why: Some(if only.is_none_or(|o| o.contains(service)) {
                "every input as the last build: the files it sends, the Dockerfile, \
                 the build config, the base images' IDs; its image on the engine"
                    .into()
            } else {
                "not asked by this cycle's changes".into()
            }),
        })
        .collect();
    let mut changed = Vec::new();
    if !to_build.is_empty() {
        let services: Vec<String> = to_build.iter().map(|(s, _)| s.clone()).collect();
        let mut on_step = |service: &str, step: &str| {
            // A long RUN line is its start.
            let line = match step.char_indices().nth(100) {
                Some((cut, _)) => format!("{}...", &step[..cut]),
                None => step.to_owned(),
            };
            let work = Work {
                what: format!("image {service}"),
                line,
                done: None,
            };
            progress.work(Phase::Build, &work);
        };
        let mut built = project.build(
            &opts.run_dir.join("build.log"),
            Some(&services),
            &mut on_step,
        )?;
        for b in &mut built {
            b.why = why.get(&b.service).cloned();
        }
        images.extend(built);
        let before = std::mem::replace(&mut image_ids, compose::image_ids(&project.spec.dir)?);
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
                        inputs: key.inputs.clone(),
                        image_id: id.clone(),
                    },
                ),
                _ => store.state.builds.remove(service),
            };
        }
    }
    // Losing the record costs only the next run's skip.
    let _ = store.save();
    images.sort_by(|a, b| a.service.cmp(&b.service));
    let shown: Vec<String> = images
        .iter()
        .map(|i| {
            let how = match (i.unchanged, i.built) {
                (true, _) if only.is_some_and(|o| !o.contains(&i.service)) => "not asked",
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
    // Why the others were built, each reason once, with whom it concerns.
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for i in images.iter().filter(|i| !i.unchanged) {
        let why = i.why.as_deref().unwrap_or("its inputs changed");
        match reasons.iter_mut().find(|(w, _)| *w == why) {
            Some((_, who)) => who.push(&i.service),
            None => reasons.push((why, vec![&i.service])),
        }
    }
    if !reasons.is_empty() {
        let said: Vec<String> = reasons
            .iter()
            .map(|(why, who)| format!("{why} ({})", who.join(", ")))
            .collect();
        parts.push(format!("why: {}", said.join("; ")));
    }
    if !sizes.is_empty() {
        parts.push(format!("contexts sent: {}", sizes.join(", ")));
    }
    if let Some(n) = restored {
        parts.push(format!(
            "staged binaries: {n} restored from the shard build (cargo not asked)"
        ));
    } else if staging.unchanged {
        parts.push(format!(
            "staged binaries: 0 of {stages} changed (their sources as the last build left them: cargo not asked)"
        ));
    } else if stages > 0 {
        parts.push(format!(
            "staged binaries: {} of {stages} changed",
            staged.len()
        ));
    }
    if !imported.loaded.is_empty() {
        parts.push(format!(
            "loaded from the shard build (its inputs are this checkout's): {}",
            imported.loaded.join(", ")
        ));
    }
    for (service, why) in &imported.refused {
        parts.push(format!("{service} not taken from the shard build: {why}"));
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
            staged,
        },
        note,
    ))
}
