//! What a build really transfers. BuildKit's Dockerfile frontend asks the
//! client only for the paths its instructions name (`dockerfile::context_use`);
//! the client follows the symlinks on those paths (fsutil's `FollowLinks`),
//! then sends what matches them and passes the ignore file, each folder
//! before what it holds. The engine counts the protocol's packets as they
//! arrive; [`wire_bytes`] computes that count from the same entries.

use std::collections::HashSet;

use foldhash::{HashMap, HashMapExt};
use std::os::unix::ffi::OsStrExt;

use camino::Utf8Path;

use crate::dockerfile::ContextUse;
use crate::matcher::{BadPattern, Matcher};
use crate::walk::{EntryKind, Walk};

/// The include patterns the client applies: `None` sends everything the
/// ignore file lets through.
pub fn include_patterns(root: &Utf8Path, usage: &ContextUse) -> Option<Vec<String>> {
    match usage {
        ContextUse::Paths { paths } => {
            let mut asked: Vec<String> = paths.iter().map(|p| p.path.clone()).collect();
            asked.sort();
            asked.dedup();
            follow_links(root, &asked)
        }
        ContextUse::Whole { .. } | ContextUse::Unsure { .. } => None,
    }
}

/// fsutil's `FollowLinks`: each path, and for every symlink met on the way
/// (a wildcard component matches names in its folder), the link and its
/// target inside the context. `None` when the root itself is named.
pub fn follow_links(root: &Utf8Path, paths: &[String]) -> Option<Vec<String>> {
    let mut resolved: HashSet<String> = HashSet::new();
    for p in paths {
        resolve(root, p, &mut resolved, 0);
    }
    let mut out: Vec<String> = resolved.into_iter().collect();
    out.sort();
    dedupe(out)
}

/// Symlink chains deeper than this are cut, as the kernel's ELOOP would.
const MAX_LINK_DEPTH: usize = 40;

fn resolve(root: &Utf8Path, path: &str, resolved: &mut HashSet<String>, depth: usize) {
    let mut rest = crate::goclean::clean(path.trim_start_matches('/'));
    let mut current = String::from(".");
    loop {
        let (first, tail) = match rest.split_once('/') {
            Some((f, t)) => (f.to_owned(), t.to_owned()),
            None => (rest.clone(), String::new()),
        };
        current = join(&current, &first);
        let targets = link_targets(root, &current);
        if (tail.is_empty() || targets.is_some()) && resolved.contains(&current) {
            return;
        }
        if let Some(targets) = targets {
            resolved.insert(current.clone());
            if depth < MAX_LINK_DEPTH {
                for target in targets {
                    resolve(root, &join(&target, &tail), resolved, depth + 1);
                }
            }
            return;
        }
        if tail.is_empty() {
            resolved.insert(current);
            return;
        }
        rest = tail;
    }
}

fn join(a: &str, b: &str) -> String {
    let joined = crate::goclean::clean(&format!("{a}/{b}"));
    joined.trim_start_matches('/').to_owned()
}

/// The targets of the symlinks `path` names, relative to the root; `None`
/// when it names none (or nothing).
fn link_targets(root: &Utf8Path, path: &str) -> Option<Vec<String>> {
    let (dir, base) = path.rsplit_once('/').unwrap_or((".", path));
    if base.contains(['*', '?', '[']) {
        let m = Matcher::from_patterns(&[base]).ok()?;
        let mut names: Vec<String> = std::fs::read_dir(root.join(dir))
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| m.decide_stateless(n.as_bytes()).is_ok_and(|d| d.excluded))
            .collect();
        names.sort();
        let out: Vec<String> = names
            .iter()
            .filter_map(|n| link_targets(root, &join(dir, n)))
            .flatten()
            .collect();
        return (!out.is_empty()).then_some(out);
    }
    let link = std::fs::read_link(root.join(path)).ok()?;
    let link = link.to_str()?;
    let cleaned = crate::goclean::clean(link);
    if cleaned.starts_with('/') {
        return Some(vec![cleaned.trim_start_matches('/').to_owned()]);
    }
    // Relative to the link's folder, never above the root.
    let target = crate::goclean::clean(&format!("/{dir}/{cleaned}"));
    Some(vec![target.trim_start_matches('/').to_owned()])
}

/// fsutil's `dedupePaths` on sorted paths: a path under an earlier one goes.
fn dedupe(sorted: Vec<String>) -> Option<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for s in sorted {
        if s == "." || s.is_empty() {
            return None;
        }
        if let Some(last) = out.last()
            && s.starts_with(&format!("{last}/"))
        {
            continue;
        }
        out.push(s);
    }
    Some(out)
}

/// The entries the client sends, as indexes into `walk.entries`, in the
/// order it sends them (depth first, each folder's names sorted): what
/// passes the ignore file and matches `include`, and the folders above it.
/// Also, for every entry, whether `include` takes it (the ignore file aside).
pub fn sent_entries(
    walk: &Walk,
    include: Option<&[String]>,
) -> Result<(Vec<usize>, Vec<bool>), BadPattern> {
    let matcher = include.map(Matcher::from_patterns).transpose()?;
    let by_path: HashMap<&[u8], usize> = walk
        .entries
        .iter()
        .enumerate()
        .map(|(i, e)| (&*e.path, i))
        .collect();
    let mut infos: HashMap<&[u8], Vec<bool>> = HashMap::new();
    let mut keep = vec![false; walk.entries.len()];
    let mut taken = vec![false; walk.entries.len()];
    // Bytewise order puts every folder before what it holds.
    for (i, e) in walk.entries.iter().enumerate() {
        let included = match &matcher {
            None => true,
            Some(m) => {
                let parent = parent_of(&e.path).and_then(|p| infos.get(p));
                let (d, info) = m.decide(&e.path, parent.map(Vec::as_slice))?;
                if e.kind == EntryKind::Dir {
                    infos.insert(&e.path, info);
                }
                d.excluded
            }
        };
        taken[i] = included;
        if included && !e.excluded && !e.pruned && !keep[i] {
            keep[i] = true;
            let mut path: &[u8] = &e.path;
            while let Some(parent) = parent_of(path) {
                match by_path.get(parent) {
                    Some(&p) if !keep[p] => keep[p] = true,
                    _ => break,
                }
                path = parent;
            }
        }
    }
    let mut out: Vec<usize> = (0..walk.entries.len()).filter(|&i| keep[i]).collect();
    out.sort_by(|&a, &b| {
        walk.entries[a]
            .path
            .split(|&c| c == b'/')
            .cmp(walk.entries[b].path.split(|&c| c == b'/'))
    });
    Ok((out, taken))
}

fn parent_of(path: &[u8]) -> Option<&[u8]> {
    path.iter().rposition(|&b| b == b'/').map(|i| &path[..i])
}

/// The engine's "transferring context" count for a first transfer of
/// `sent` (later builds of an unchanged folder send only what changed):
/// every entry's stat packet, each regular file's data in 32 KiB packets and
/// the empty packet that ends it, and the closing packet. Owners count as 0
/// (Compose's client resets them). Needs a walk made with sizes.
pub fn wire_bytes(root: &Utf8Path, walk: &Walk, sent: &[usize]) -> std::io::Result<u64> {
    let mut total: u64 = FIN_PACKET;
    let mut first_path_of: HashMap<u64, &[u8]> = HashMap::new();
    for (id, &i) in sent.iter().enumerate() {
        let e = &walk.entries[i];
        let Some(st) = e.stat else {
            return Err(std::io::Error::other(format!(
                "{}: not measured (the walk ran without sizes)",
                e.display()
            )));
        };
        let full = root
            .as_std_path()
            .join(std::ffi::OsStr::from_bytes(&e.path));
        let mode = go_mode(st.mode);
        let (size, mut linkname) = match e.kind {
            EntryKind::Dir => (0, Vec::new()),
            EntryKind::Symlink => {
                let target = std::fs::read_link(&full)?;
                let bytes = target.as_os_str().as_bytes().to_vec();
                (bytes.len() as u64, bytes)
            }
            _ => (e.size, Vec::new()),
        };
        // A second name of an inode goes as a link to the first; its data is not asked for.
        if e.kind != EntryKind::Dir && st.nlink > 1 {
            match first_path_of.get(&st.ino) {
                Some(first) => linkname = first.to_vec(),
                None => {
                    first_path_of.insert(st.ino, &e.path);
                }
            }
        }
        let stat = field_bytes(e.path.len() as u64)
            + varint_field(u64::from(mode))
            + varint_field(size)
            + varint_field(st.mtime_ns as u64)
            + if linkname.is_empty() {
                0
            } else {
                field_bytes(linkname.len() as u64)
            }
            + st.xattr_bytes;
        total += 1 + varint_len(stat) + stat;
        if e.kind == EntryKind::File && linkname.is_empty() {
            total += data_bytes(id as u64, e.size);
        }
    }
    Ok(total)
}

/// The `PACKET_FIN` that closes a transfer: its type field.
const FIN_PACKET: u64 = 2;
/// fsutil copies files through a 32 KiB buffer, one packet per read.
const CHUNK: u64 = 32 * 1024;

fn data_bytes(id: u64, size: u64) -> u64 {
    // Type field, then the ID field unless it is 0 (proto3 omits zeros).
    let head = 2 + if id == 0 { 0 } else { 1 + varint_len(id) };
    let chunk = |n: u64| head + 1 + varint_len(n) + n;
    let full = size / CHUNK;
    let rest = size % CHUNK;
    full * chunk(CHUNK) + if rest > 0 { chunk(rest) } else { 0 } + head
}

/// What `path`'s extended attributes add to its stat packet (fsutil skips
/// macOS's `com.apple.*`).
pub(crate) fn xattr_bytes(path: &std::path::Path) -> std::io::Result<u64> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        Err(e) if e.raw_os_error() == Some(95) => return Ok(0), // ENOTSUP
        Err(e) => return Err(e),
    };
    let mut total = 0;
    for name in names {
        let key = name.as_bytes();
        if key.starts_with(b"com.apple.") {
            continue;
        }
        let Some(value) = xattr::get(path, &name)? else {
            continue;
        };
        let entry = field_bytes(key.len() as u64) + field_bytes(value.len() as u64);
        total += field_bytes(entry);
    }
    Ok(total)
}

/// Go's `os.FileMode` for a Unix `st_mode`, as fsutil sends it (the socket
/// bit cleared).
pub fn go_mode(st_mode: u32) -> u32 {
    let mut mode = st_mode & 0o777;
    if st_mode & 0o4000 != 0 {
        mode |= 1 << 23;
    }
    if st_mode & 0o2000 != 0 {
        mode |= 1 << 22;
    }
    if st_mode & 0o1000 != 0 {
        mode |= 1 << 20;
    }
    mode |= match st_mode & 0o170000 {
        0o040000 => 1 << 31,
        0o120000 => 1 << 27,
        0o010000 => 1 << 25,
        0o060000 => 1 << 26,
        0o020000 => (1 << 26) | (1 << 21),
        _ => 0,
    };
    mode
}

fn varint_len(mut v: u64) -> u64 {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// A varint field with a one-byte tag; proto3 leaves out zeros.
fn varint_field(v: u64) -> u64 {
    if v == 0 { 0 } else { 1 + varint_len(v) }
}

/// A length-delimited field (string, bytes, message) with a one-byte tag.
fn field_bytes(len: u64) -> u64 {
    1 + varint_len(len) + len
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_tree as tree;
    use crate::walk::{WalkOptions, walk};

    fn sent(root: &Utf8Path, ignore: &[&str], include: Option<&[String]>) -> Vec<String> {
        let w = walk(
            root,
            &Matcher::from_patterns(ignore).unwrap(),
            WalkOptions::default(),
        )
        .unwrap();
        sent_entries(&w, include)
            .unwrap()
            .0
            .into_iter()
            .map(|i| w.entries[i].display().into_owned())
            .collect()
    }

    #[test]
    fn includes_send_the_named_paths_and_the_folders_above_them() {
        let (_d, root) = tree(&[
            "a/x.go",
            "a/b/y.go",
            "a/b/z.txt",
            "a-b/q",
            "c/k.go",
            "top.go",
        ]);
        let inc = |p: &[&str]| p.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // Folders go before what they hold, each folder's names sorted: `a/` before `a-b`.
        assert_eq!(
            sent(&root, &[], Some(&inc(&["a/b", "a-b"]))),
            ["a", "a/b", "a/b/y.go", "a/b/z.txt", "a-b", "a-b/q"]
        );
        assert_eq!(
            sent(&root, &["**/*.txt"], Some(&inc(&["a/b"]))),
            ["a", "a/b", "a/b/y.go"]
        );
        // A wildcard matches in one folder; a matched folder sends everything in it.
        assert_eq!(sent(&root, &[], Some(&inc(&["*.go"]))), ["top.go"]);
        assert_eq!(
            sent(&root, &[], Some(&inc(&["*/*.go"]))),
            ["a", "a/x.go", "c", "c/k.go"]
        );
        assert_eq!(sent(&root, &[], None).len(), 10);
    }

    #[test]
    fn links_on_named_paths_are_followed_inside_the_context() {
        let (_d, root) = tree(&["real/f", "other/g", "deep/dir/h"]);
        std::os::unix::fs::symlink("real", root.join("link")).unwrap();
        std::os::unix::fs::symlink("/deep/dir", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../other", root.join("real/up")).unwrap();
        let follow =
            |p: &[&str]| follow_links(&root, &p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(follow(&["link/f"]).unwrap(), ["link", "real/f"]);
        assert_eq!(follow(&["abs"]).unwrap(), ["abs", "deep/dir"]);
        assert_eq!(follow(&["real/up/g"]).unwrap(), ["other/g", "real/up"]);
        assert_eq!(follow(&["l*"]).unwrap(), ["l*", "real"]);
        assert_eq!(
            follow(&["real", "real/f", "missing"]).unwrap(),
            ["missing", "real"]
        );
        assert!(follow(&["link/.."]).is_none());
    }

    #[test]
    fn wire_size_counts_packets_as_the_engine_does() {
        // Measured on Docker 20.10 with Compose 2.40: a folder `a` holding a
        // 100,000-byte file `one` arrives as 100,084 bytes.
        let (_d, root) = tree(&[]);
        std::fs::create_dir(root.join("a")).unwrap();
        std::fs::write(root.join("a/one"), vec![7u8; 100_000]).unwrap();
        // Fix the times so the varints have the measured lengths (2026 in ns: 9 bytes).
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1_795_474_142_195_554_470);
        for p in ["a/one", "a"] {
            std::fs::File::options()
                .write(p == "a/one")
                .read(true)
                .open(root.join(p))
                .unwrap()
                .set_modified(t)
                .unwrap();
        }
        let w = walk(
            &root,
            &Matcher::default(),
            WalkOptions {
                sizes: true,
                into_pruned: false,
            },
        )
        .unwrap();
        let (sent, _) = sent_entries(&w, Some(&["a".to_owned()])).unwrap();
        assert_eq!(wire_bytes(&root, &w, &sent).unwrap(), 100_084);
        assert_eq!(go_mode(0o040755), 2_147_484_141);
        assert_eq!(go_mode(0o100644), 420);
    }
}
