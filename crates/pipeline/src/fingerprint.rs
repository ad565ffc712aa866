//! Doing nothing when nothing changed. A fingerprint of what each image is
//! built from (the exact files its build sends, its Dockerfile, its build
//! config, the IDs of its base images) is recorded with the image it
//! produced; one of what the containers are made from (the resolved stack,
//! every service's image ID) with the containers `up` left. When a
//! fingerprint, its image and its containers all match, the build or the
//! `up` is skipped. The record lives in `<target>/e2e/state/<project>.json`;
//! a missing or unreadable one only means "build and start as usual".

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;

use build_context::{Context, EntryKind, Walk};
use camino::{Utf8Path, Utf8PathBuf};
use ring::digest::{Context as Hasher, SHA256};
use serde::{Deserialize, Serialize};

/// Bumped when what goes into a key changes: old records then match nothing
/// (2: an image's record is its inputs, part by part).
const VERSION: u32 = 2;

/// What the last successful build and `up` of a project left.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct State {
    version: u32,
    /// Per service that builds: the key of its inputs and the image ID they gave.
    pub builds: BTreeMap<String, Built>,
    /// The key of the stack and the containers `up` left ready for it.
    pub stack: Option<Started>,
    /// The staged binaries' last cargo build: what it started from, what it left.
    #[serde(default)]
    pub stage: Option<CargoBuilt>,
    /// The test binaries' last cargo build, and the run folder holding their lists.
    #[serde(default)]
    pub tests: Option<CargoBuilt>,
    /// The local packages' folders outside the workspace root, as the last
    /// test build's metadata named them: walked for both keys.
    #[serde(default)]
    pub outside: Vec<Utf8PathBuf>,
    /// Content hashes by absolute path, reused while a file's size, mtime,
    /// ctime and inode stay the same (git's index does the same).
    files: BTreeMap<String, Stamp>,
    /// When `files` was written (ns since the epoch): a stamp taken in the
    /// same instant as a write cannot tell that write ("racy" in git's terms),
    /// so such files are hashed again.
    written_ns: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Built {
    /// What it was built from, part by part (to say which changed).
    pub inputs: Inputs,
    pub image_id: String,
}

/// What one image is built from, part by part.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Inputs {
    /// The files the build sends: paths, kinds, modes, contents, links.
    pub files: String,
    pub dockerfile: String,
    /// The service's `build` config, key by key (`args.NOTE`, `target`).
    pub build: BTreeMap<String, String>,
    /// Base image to its ID (`?` where the engine holds none).
    pub bases: BTreeMap<String, String>,
}

/// One image's inputs, and the first file the build sends that the last
/// run saw otherwise (`(path, new)`).
#[derive(Debug, Clone)]
pub(crate) struct BuildKey {
    pub inputs: Inputs,
    pub first_changed: Option<(String, bool)>,
}

impl BuildKey {
    /// Why an image with these inputs is built, against the `last` build
    /// (its record) and whether the engine still holds what that made.
    pub(crate) fn why(&self, last: Option<&Built>, image_held: bool) -> String {
        let Some(last) = last else {
            return "no earlier build of it on record".into();
        };
        if last.inputs == self.inputs {
            return if image_held {
                "asked to (--rebuild)".into()
            } else {
                "the image the last build made is gone (removed or replaced)".into()
            };
        }
        let (before, now) = (&last.inputs, &self.inputs);
        if before.dockerfile != now.dockerfile {
            return "its Dockerfile changed".into();
        }
        let keys: BTreeSet<&String> = before.build.keys().chain(now.build.keys()).collect();
        for k in keys {
            if before.build.get(k) != now.build.get(k) {
                return match k.strip_prefix("args.") {
                    Some(arg) => format!("build argument {arg} changed"),
                    None => format!("build setting {k} changed"),
                };
            }
        }
        for (base, id) in &now.bases {
            match before.bases.get(base) {
                Some(old) if old != id => return format!("base image {base} has a new ID"),
                None => return format!("a new base image, {base}"),
                Some(_) => {}
            }
        }
        match &self.first_changed {
            Some((path, true)) => format!("{path} is new"),
            Some((path, false)) => format!("{path} changed"),
            None if before.files != now.files => {
                "a file it sent before is gone, or a mode or link changed".into()
            }
            None => "its inputs changed".into(),
        }
    }
}

/// A cargo build as [`crate::sources`] keys it: the sources before it
/// started (an edit during the build is not in them) and its outputs after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CargoBuilt {
    pub sources: String,
    pub outputs: String,
    /// Where its lists are (the test binaries': a run folder).
    #[serde(default)]
    pub dir: Option<Utf8PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Started {
    pub key: String,
    /// Container ID to its condition (`running`, `exited 0`).
    pub containers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stamp {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    sha256: String,
}

/// The state file of a project, loaded once per run and written after the
/// phases that change it.
#[derive(Debug)]
pub(crate) struct Store {
    path: Utf8PathBuf,
    pub state: State,
    /// The stamps seen in this run: only these are written back, so files
    /// that left the contexts leave the record too.
    seen: BTreeMap<String, Stamp>,
    /// The file's bytes as last read or written: a state that did not
    /// change is not written again (a kept, unchanged run changes nothing).
    on_disk: Vec<u8>,
}

impl Store {
    pub(crate) fn open(target_dir: &Utf8Path, project: &str) -> Store {
        let path = target_dir.join("e2e/state").join(format!("{project}.json"));
        let on_disk = std::fs::read(&path).unwrap_or_default();
        let state = serde_json::from_slice::<State>(&on_disk)
            .ok()
            .filter(|s| s.version == VERSION)
            .unwrap_or_default();
        Store {
            path,
            state,
            seen: BTreeMap::new(),
            on_disk,
        }
    }

    /// Writes the state atomically, when it changed; a failure costs only
    /// the next run's skip.
    pub(crate) fn save(&mut self) -> crate::Result<()> {
        self.state.version = VERSION;
        let seen = std::mem::take(&mut self.seen);
        // Stamps as recorded keep their date: files stamped since then are
        // hashed again as racy, which an older date only makes more of.
        if !seen.is_empty() && seen != self.state.files {
            self.state.files = seen;
            self.state.written_ns = now_ns();
        }
        let json = serde_json::to_vec(&self.state).expect("the state serialises");
        if json == self.on_disk {
            return Ok(());
        }
        let dir = self.path.parent().expect("the state file has a folder");
        std::fs::create_dir_all(dir)
            .and_then(|()| crate::write_whole(&self.path, &json))
            .map_err(crate::Error::io(&self.path))?;
        self.on_disk = json;
        Ok(())
    }

    /// The key of one image's inputs: every entry the context sends (path,
    /// kind, permissions, content or link target), the Dockerfile's bytes
    /// (sent even when ignored or outside the context), the service's
    /// `build` config (args, target, ...) and its base images' IDs (`?` for
    /// one the engine does not hold: then only its name counts).
    pub(crate) fn build_key(
        &mut self,
        ctx: &Context,
        walk: &Walk,
        sent: &[usize],
        build_config: &serde_json::Value,
        image_ids: &BTreeMap<String, String>,
    ) -> std::io::Result<BuildKey> {
        // The files: each field with its length, so no two lists read alike.
        let mut files = Hasher::new(&SHA256);
        let mut field = |bytes: &[u8]| {
            files.update(&(bytes.len() as u64).to_le_bytes());
            files.update(bytes);
        };
        let mut first_changed = None;
        // Only what the build transfers: a file its Dockerfile never names
        // cannot change the image.
        for e in sent.iter().map(|&i| &walk.entries[i]) {
            let path = ctx
                .root
                .as_std_path()
                .join(std::ffi::OsStr::from_bytes(&e.path));
            let meta = std::fs::symlink_metadata(&path)?;
            field(&e.path);
            field(&[e.kind as u8]);
            field(&(meta.mode() & 0o7777).to_le_bytes());
            match e.kind {
                EntryKind::File => {
                    let before = self
                        .state
                        .files
                        .get(path.to_string_lossy().as_ref())
                        .map(|s| s.sha256.clone());
                    let hash = self.content_hash(&path, &meta)?;
                    if first_changed.is_none() && before.as_ref() != Some(&hash) {
                        let shown = String::from_utf8_lossy(&e.path).into_owned();
                        first_changed = Some((shown, before.is_none()));
                    }
                    field(hash.as_bytes());
                }
                EntryKind::Symlink => field(std::fs::read_link(&path)?.as_os_str().as_bytes()),
                EntryKind::Dir | EntryKind::Other => {}
            }
        }
        let dockerfile = ctx
            .dockerfile
            .clone()
            .unwrap_or_else(|| ctx.root.join("Dockerfile"));
        let text = std::fs::read(&dockerfile)?;
        let mut bases = BTreeMap::new();
        for base in build_context::dockerfile::base_images(&String::from_utf8_lossy(&text)) {
            let id = image_ids.get(&compose::image_key(&base));
            bases.insert(base, id.cloned().unwrap_or_else(|| "?".into()));
        }
        let mut build = BTreeMap::new();
        if let Some(config) = build_config.as_object() {
            for (k, v) in config {
                match v.as_object() {
                    Some(inner) if k == "args" => {
                        for (arg, value) in inner {
                            build.insert(format!("args.{arg}"), value.to_string());
                        }
                    }
                    // Where the checkout is (an absolute path) makes no image
                    // differ, and differs from machine to machine (the shards
                    // of a CI): what the context sends is in `files`.
                    _ if k == "context" => {}
                    _ => {
                        build.insert(k.clone(), v.to_string());
                    }
                }
            }
        }
        let inputs = Inputs {
            files: hex(files.finish().as_ref()),
            dockerfile: sha256_hex(&text),
            build,
            bases,
        };
        Ok(BuildKey {
            inputs,
            first_changed,
        })
    }

    /// A file's SHA-256, from the record when its metadata did not change.
    fn content_hash(
        &mut self,
        path: &std::path::Path,
        meta: &std::fs::Metadata,
    ) -> std::io::Result<String> {
        let key = path.to_string_lossy().into_owned();
        let stamp = |sha256: String| Stamp {
            size: meta.size(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            sha256,
        };
        let now = stamp(String::new());
        if let Some(old) = self.state.files.get(&key)
            && (old.size, old.mtime_ns, old.ctime_ns, old.ino)
                == (now.size, now.mtime_ns, now.ctime_ns, now.ino)
            && now.mtime_ns.max(now.ctime_ns) < self.state.written_ns - 1_000_000_000
        {
            let hash = old.sha256.clone();
            self.seen.insert(key, old.clone());
            return Ok(hash);
        }
        let mut h = Hasher::new(&SHA256);
        let mut file = std::fs::File::open(path)?;
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = std::io::Read::read(&mut file, &mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let hash = hex(h.finish().as_ref());
        self.seen.insert(key, stamp(hash.clone()));
        Ok(hash)
    }
}

/// The key of what the containers are made from: the resolved stack, how
/// its ports are published, and the image ID each service's image name
/// resolves to now. `None` when one has no image on the engine (`up` would
/// build or pull it).
pub(crate) fn stack_key(
    project: &compose::Project,
    ephemeral_ports: bool,
    image_ids: &BTreeMap<String, String>,
) -> Option<String> {
    let mut h = Hasher::new(&SHA256);
    h.update(project.stack.config.to_string().as_bytes());
    h.update(&[u8::from(ephemeral_ports)]);
    let built: BTreeMap<String, String> = project.images().into_iter().collect();
    let services: BTreeSet<&String> = project.stack.services.keys().collect();
    for name in services {
        let s = &project.stack.services[name];
        let image = built.get(name).or(s.image.as_ref())?;
        let id = image_ids.get(&compose::image_key(image))?;
        h.update(name.as_bytes());
        h.update(id.as_bytes());
    }
    Some(hex(h.finish().as_ref()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The SHA-256 of `bytes`, in hex: every key the state files keep.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&SHA256, bytes).as_ref())
}

fn now_ns() -> i128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i128)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(store: &mut Store, root: &Utf8Path, build: &serde_json::Value) -> String {
        let ctx = Context::open(root, Some(&root.join("Dockerfile"))).unwrap();
        let walk = ctx.walk(build_context::WalkOptions::default()).unwrap();
        let usage = ctx.usage(&Default::default()).unwrap();
        let include = build_context::sent::include_patterns(&ctx.root, &usage);
        let (sent, _) = build_context::sent::sent_entries(&walk, include.as_deref()).unwrap();
        store
            .build_key(&ctx, &walk, &sent, build, &BTreeMap::new())
            .map(|k| serde_json::to_string(&k.inputs).unwrap())
            .unwrap()
    }

    #[test]
    fn the_build_key_follows_every_input_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap().to_owned();
        std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /\n").unwrap();
        std::fs::write(root.join(".dockerignore"), "*.log\n").unwrap();
        std::fs::write(root.join("app.txt"), "one").unwrap();
        let mut store = Store::open(&root.join("target"), "p");
        let build = serde_json::json!({"context": ".", "args": {"A": "1"}});
        let first = key_of(&mut store, &root, &build);
        assert_eq!(key_of(&mut store, &root, &build), first, "nothing changed");

        std::fs::write(root.join("debug.log"), "ignored").unwrap();
        assert_eq!(
            key_of(&mut store, &root, &build),
            first,
            "an ignored file is not sent"
        );

        let mut keys = BTreeSet::from([first.clone()]);
        std::fs::write(root.join("app.txt"), "two").unwrap();
        assert!(keys.insert(key_of(&mut store, &root, &build)), "content");
        std::fs::set_permissions(
            root.join("app.txt"),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        assert!(keys.insert(key_of(&mut store, &root, &build)), "mode");
        std::os::unix::fs::symlink("app.txt", root.join("link")).unwrap();
        assert!(
            keys.insert(key_of(&mut store, &root, &build)),
            "new symlink"
        );
        std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY app.txt /\n").unwrap();
        let named = key_of(&mut store, &root, &build);
        assert!(keys.insert(named.clone()), "Dockerfile");
        std::fs::write(root.join("other.txt"), "never copied").unwrap();
        assert_eq!(
            key_of(&mut store, &root, &build),
            named,
            "a file the Dockerfile never names is not transferred"
        );
        let other = serde_json::json!({"context": ".", "args": {"A": "2"}});
        assert!(keys.insert(key_of(&mut store, &root, &other)), "build arg");
    }

    #[test]
    fn a_recorded_hash_is_reused_only_while_the_file_is_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap().join("ctx");
        std::fs::create_dir(&root).unwrap();
        // Outside the context: the record is no file the build sends.
        let target = root.with_file_name("target");
        std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY big.bin /\n").unwrap();
        let file = root.join("big.bin");
        std::fs::write(&file, vec![7u8; 1 << 20]).unwrap();
        let build = serde_json::json!({});
        let state = target.join("e2e/state/p.json");
        let mut store = Store::open(&target, "p");
        let first = key_of(&mut store, &root, &build);
        store.save().unwrap();
        // Written just now: too recent to trust, so it is hashed again.
        let forged = std::fs::read_to_string(&state).unwrap();
        let sha = forged.split("\"sha256\":\"").nth(1).unwrap()[..64].to_owned();
        let forged = forged.replace(&sha, &"0".repeat(64));
        std::fs::write(&state, &forged).unwrap();
        let mut store = Store::open(&target, "p");
        assert_eq!(
            key_of(&mut store, &root, &build),
            first,
            "a racy stamp is not trusted"
        );
        // Once the stamp is older than the record, the record is believed
        // (here, the forged hash shows it was used instead of the file).
        let later = forged.replace("\"written_ns\":", "\"written_ns\":1");
        std::fs::write(&state, later).unwrap();
        let mut store = Store::open(&target, "p");
        assert_ne!(
            key_of(&mut store, &root, &build),
            first,
            "the record is used"
        );
        // A changed file (new ctime, mtime, maybe size) is read again.
        std::fs::write(&file, vec![8u8; 1 << 20]).unwrap();
        let mut store = Store::open(&target, "p");
        let changed = key_of(&mut store, &root, &build);
        assert_ne!(changed, first);
    }

    #[test]
    fn a_state_that_did_not_change_is_not_written_again() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap().join("ctx");
        std::fs::create_dir(&root).unwrap();
        let target = root.with_file_name("target");
        std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY a /\n").unwrap();
        std::fs::write(root.join("a"), "a").unwrap();
        let state = target.join("e2e/state/p.json");
        let build = serde_json::json!({});
        let mut store = Store::open(&target, "p");
        key_of(&mut store, &root, &build);
        store.save().unwrap();
        let written = std::fs::metadata(&state).unwrap().ino();
        // The same files seen again, nothing else changed: the file stays
        // (written whole, a new write would be a new inode).
        let mut store = Store::open(&target, "p");
        key_of(&mut store, &root, &build);
        store.save().unwrap();
        assert_eq!(std::fs::metadata(&state).unwrap().ino(), written);
        store.state.stack = Some(Started {
            key: "k".into(),
            containers: BTreeMap::new(),
        });
        store.save().unwrap();
        assert_ne!(std::fs::metadata(&state).unwrap().ino(), written, "changed");
    }
}
