//! Build once, test on N machines. `shard build` (a CI build job) makes once
//! what every shard needs and writes it to a folder the CI system hands on
//! as an artifact: the services' images (one `docker save`, so the layers
//! they share, a base image's, travel once), the staged
//! binaries, the test binaries as a nextest archive, and a manifest with each
//! image's build record (what it was made from, part by part). `shard run
//! K/N` on a fresh machine restores the staged binaries, loads an image only
//! where its own checkout's inputs equal the record (else it builds it, and
//! says why), and runs its slice of the tests from the archive, compiling
//! nothing. `report merge` then makes one report of the shards'.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::e2e::Options;
use crate::error::{Error, Result};
use crate::fingerprint::{Built, Store};

/// The manifest's name in the folder.
pub const MANIFEST: &str = "shard.json";
/// The test binaries' archive in the folder.
pub const TESTS: &str = "tests.tar.zst";
const VERSION: u32 = 1;

/// The role a run plays in a sharded CI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shard {
    /// Build everything once and write it to `out`; start nothing, run no test.
    Build { out: Utf8PathBuf },
    /// Take what a build wrote to `from` and run slice `k` of `n` of the tests.
    Run { from: Utf8PathBuf, k: u32, n: u32 },
}

impl Shard {
    /// `K/N` with 1 <= K <= N, as nextest's `--partition slice:K/N` takes it.
    pub fn parse_part(text: &str) -> std::result::Result<(u32, u32), String> {
        let bad = || format!("`{text}` is not a shard: write K/N, e.g. 2/3 (1 <= K <= N)");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let (k, n): (u32, u32) = (k.parse().map_err(|_| bad())?, n.parse().map_err(|_| bad())?);
        (1..=n).contains(&k).then_some((k, n)).ok_or_else(bad)
    }
}

/// What `shard build` wrote: the records and files a shard takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Manifest {
    version: u32,
    /// The tool that wrote it (a shard of another version builds instead).
    tool: String,
    /// Service to its image's record and file.
    pub images: BTreeMap<String, Exported>,
    /// The staged binaries: where they go (relative to the workspace root)
    /// and their file in the folder.
    pub staged: Vec<StagedFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Exported {
    pub built: Built,
    pub file: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StagedFile {
    pub to: Utf8PathBuf,
    pub file: String,
    /// Its mode: part of the image's inputs, and lost by CI artifact stores
    /// that zip (GitHub's drops the executable bit).
    pub mode: u32,
}

impl Manifest {
    /// The manifest in `dir`, refused with the fix when missing or of
    /// another version.
    pub(crate) fn read(dir: &Utf8Path) -> Result<Manifest> {
        let path = dir.join(MANIFEST);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            Error::BadInput(format!(
                "{path}: {e}; give --from the folder `shard build --out` wrote (the build job's artifact)"
            ))
        })?;
        let m: Manifest =
            serde_json::from_str(&text).map_err(|e| Error::BadInput(format!("{path}: {e}")))?;
        if m.version != VERSION || m.tool != env!("CARGO_PKG_VERSION") {
            return Err(Error::BadInput(format!(
                "{path} was written by cargo-e2e {} (format {}); this is {} (format {VERSION}): \
                 build and shards must run the same version",
                m.tool,
                m.version,
                env!("CARGO_PKG_VERSION")
            )));
        }
        Ok(m)
    }
}

/// Writes the images the build phase recorded and the staged binaries to
/// `out`, with the manifest; returns what the build note says of it.
pub(crate) fn export(
    opts: &Options,
    project: &compose::Project,
    store: &Store,
    out: &Utf8Path,
    progress: &mut dyn crate::e2e::Progress,
) -> Result<String> {
    let io = |path: &Utf8Path| {
        let path = path.to_owned();
        move |e: std::io::Error| Error::Stack(format!("writing {path}: {e}"))
    };
    let images_dir = out.join("images");
    std::fs::create_dir_all(&images_dir).map_err(io(&images_dir))?;
    let mut manifest = Manifest {
        version: VERSION,
        tool: env!("CARGO_PKG_VERSION").to_owned(),
        images: BTreeMap::new(),
        staged: Vec::new(),
    };
    // One file for all: the layers images share (a base image's) go once;
    // a shard's stack starts every service, so it loads them all anyway.
    let file = "images/images.tar".to_owned();
    let mut saved = Vec::new();
    for (service, image) in project.images() {
        let Some(built) = store.state.builds.get(&service) else {
            continue;
        };
        saved.push(image);
        manifest.images.insert(
            service,
            Exported {
                built: built.clone(),
                file: file.clone(),
            },
        );
    }
    let mut bytes = 0;
    if !saved.is_empty() {
        // `docker save` of large images takes a while: said first.
        progress.note(
            crate::Phase::Build,
            &format!("saving {} images for the shards", saved.len()),
        );
        let path = out.join(&file);
        project.save_images(&saved, &path)?;
        bytes = path.metadata().map_or(0, |m| m.len());
    }
    let stage_dir = out.join("stage");
    for s in &opts.config.stage {
        let from = opts.config.resolve(&s.to).join(&s.package);
        let to = from
            .strip_prefix(&opts.workspace.root)
            .map_err(|_| {
                Error::BadInput(format!(
                    "stage.to of {} ({from}) is outside the workspace: a shard could not put it back",
                    s.package
                ))
            })?
            .to_owned();
        std::fs::create_dir_all(&stage_dir).map_err(io(&stage_dir))?;
        let file = format!("stage/{}", s.package);
        std::fs::copy(&from, out.join(&file)).map_err(io(&from))?;
        use std::os::unix::fs::PermissionsExt as _;
        let mode = from.metadata().map_err(io(&from))?.permissions().mode() & 0o7777;
        manifest.staged.push(StagedFile { to, file, mode });
    }
    let path = out.join(MANIFEST);
    let json = serde_json::to_string_pretty(&manifest).expect("the manifest serializes");
    std::fs::write(&path, json).map_err(io(&path))?;
    Ok(format!(
        "exported to {out}: {} images ({}), {} staged binaries",
        manifest.images.len(),
        build_context::human(bytes),
        manifest.staged.len()
    ))
}

/// Puts the build's staged binaries where staging would (only where the
/// bytes differ); returns how many.
pub(crate) fn restore_staged(opts: &Options, from: &Utf8Path, m: &Manifest) -> Result<usize> {
    for s in &m.staged {
        let to = opts.workspace.root.join(&s.to);
        let src = from.join(&s.file);
        let same = std::fs::read(&to).ok() == std::fs::read(&src).ok();
        if !same {
            if let Some(dir) = to.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| Error::Stack(format!("creating {dir}: {e}")))?;
            }
            std::fs::copy(&src, &to)
                .map_err(|e| Error::Stack(format!("restoring {to} from {src}: {e}")))?;
        }
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(s.mode))
            .map_err(|e| Error::Stack(format!("restoring the mode of {to}: {e}")))?;
    }
    Ok(m.staged.len())
}

/// The build job's test phase: the test binaries (built beside the other
/// phases) into a nextest archive at `file`, for the shards; none run.
pub(crate) fn archive_tests(
    opts: &Options,
    prebuild: crate::phases::Prebuild,
    file: &Utf8Path,
    progress: &mut dyn crate::e2e::Progress,
) -> Result<((), String)> {
    prebuild.finish(opts, progress)?;
    let inv = crate::phases::invocation(opts, Vec::new(), Vec::new())?;
    let cmd = inv.archive_command(file);
    progress.note(
        crate::Phase::Test,
        &format!("archiving the test binaries: {cmd}"),
    );
    let out = cmd.run_group(
        &opts.workspace.root,
        process::GroupOptions {
            capture: true,
            interruptible: true,
        },
    )?;
    if !out.success() {
        return Err(Error::Stack(format!(
            "`{cmd}` failed:\n{}",
            crate::stage::without_progress(&out.stderr, 30)
        )));
    }
    let size = file.metadata().map_or(0, |m| m.len());
    Ok((
        (),
        format!(
            "test binaries archived for the shards: {file} ({}); none run here",
            build_context::human(size)
        ),
    ))
}

/// What a shard took from the build job.
#[derive(Debug, Default)]
pub(crate) struct Imported {
    /// Services whose image was loaded (or already on the engine).
    pub loaded: Vec<String>,
    /// Services whose inputs differ from the build job's, and which first.
    pub refused: Vec<(String, String)>,
}

/// For each service of this shard's stack whose inputs now (`keys`) equal
/// the build job's record: its image loaded under this project's name and
/// recorded as built, so the build phase finds it unchanged. The images'
/// file is loaded once, when the first of them is taken.
pub(crate) fn import(
    project: &compose::Project,
    store: &mut Store,
    from: &Utf8Path,
    keys: &BTreeMap<String, crate::fingerprint::BuildKey>,
    image_ids: &mut BTreeMap<String, String>,
) -> Result<Imported> {
    let manifest = Manifest::read(from)?;
    let mut out = Imported::default();
    let mut loaded_files: Vec<String> = Vec::new();
    for (service, image) in project.images() {
        let (Some(e), Some(key)) = (manifest.images.get(&service), keys.get(&service)) else {
            continue;
        };
        if key.inputs != e.built.inputs {
            out.refused.push((
                service,
                key.why(Some(&e.built), true)
                    .replace("asked to (--rebuild)", "?"),
            ));
            continue;
        }
        let name = compose::image_key(&image);
        if image_ids.get(&name) != Some(&e.built.image_id) {
            if !loaded_files.contains(&e.file) {
                project.load_images(&from.join(&e.file))?;
                loaded_files.push(e.file.clone());
            }
            project.tag_image(&e.built.image_id, &image)?;
            image_ids.insert(name, e.built.image_id.clone());
        }
        store.state.builds.insert(service.clone(), e.built.clone());
        out.loaded.push(service);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_is_k_of_n() {
        assert_eq!(Shard::parse_part("2/3"), Ok((2, 3)));
        assert_eq!(Shard::parse_part("1/1"), Ok((1, 1)));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0", "-1/2"] {
            let e = Shard::parse_part(bad).unwrap_err();
            assert!(e.contains("write K/N"), "{bad}: {e}");
        }
    }
}
