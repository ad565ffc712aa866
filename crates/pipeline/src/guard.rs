//! The folders the tool writes in are its user's alone: nothing it makes is
//! writable by group or others whatever the umask it was started with (a CI
//! container's is often 000), and a folder of its own that turns out to be a
//! symlink (to elsewhere, swapped in by someone) is refused, not followed:
//! a run's report, state or lock would otherwise land where that points.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

use camino::Utf8Path;

use crate::error::{Error, Result};

/// Keeps group and others from writing anything this process (and what it
/// starts) creates: the umask gains `022`.
pub fn harden_umask() {
    use nix::sys::stat::{Mode, umask};
    let old = umask(Mode::from_bits_truncate(0o022));
    umask(old | Mode::from_bits_truncate(0o022));
}

/// `path` must not be a symlink (when it exists); one of ours that group or
/// others may write loses that (an old run's, made under a looser umask).
fn checked(path: &Utf8Path) -> Result<()> {
    let Ok(meta) = path.symlink_metadata() else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        let to = path
            .read_link_utf8()
            .map_or_else(|_| "?".to_owned(), |t| t.to_string());
        return Err(Error::BadInput(format!(
            "{path} is a symlink (to {to}): the tool does not follow it, since what it writes \
             there would land elsewhere; remove the link and run again"
        )));
    }
    if meta.uid() == nix::unistd::getuid().as_raw() && meta.mode() & 0o022 != 0 {
        let mode = meta.mode() & 0o7777 & !0o022;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(Error::io(path))?;
    }
    Ok(())
}

/// The folders a run writes in the target folder: `e2e/`, its runs, state
/// and cache, and this run's own.
pub fn run_paths(target_dir: &Utf8Path, run_dir: &Utf8Path) -> Result<()> {
    let e2e = target_dir.join("e2e");
    for p in [
        e2e.clone(),
        e2e.join("runs"),
        e2e.join("state"),
        e2e.join("cache"),
        run_dir.to_owned(),
    ] {
        checked(&p)?;
    }
    Ok(())
}

/// A folder for this user's locks (in a shared temp folder, possibly): made
/// for its owner alone where missing, and refused when it is a symlink or
/// another user's.
pub(crate) fn own_dir(dir: &Utf8Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    if dir.symlink_metadata().is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(Error::io(dir))?;
    }
    checked(dir)?;
    let meta = dir.symlink_metadata().map_err(Error::io(dir))?;
    if meta.uid() != nix::unistd::getuid().as_raw() {
        return Err(Error::Stack(format!(
            "{dir} belongs to another user (uid {}): it cannot hold this user's locks; \
             set XDG_RUNTIME_DIR to a folder of your own",
            meta.uid()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_refused_and_a_loose_folder_of_ours_tightened() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(tmp.path()).unwrap();
        let target = root.join("target");
        std::fs::create_dir_all(target.join("e2e")).unwrap();
        std::fs::set_permissions(target.join("e2e"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        let elsewhere = root.join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, target.join("e2e/runs")).unwrap();
        let run = target.join("e2e/runs/1-2-p");
        let err = run_paths(&target, &run).unwrap_err().to_string();
        assert!(err.contains("e2e/runs is a symlink (to "), "{err}");
        assert!(err.contains("remove the link"), "{err}");
        let mode = target.join("e2e").metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o755, "group and others lost write");
        std::fs::remove_file(target.join("e2e/runs")).unwrap();
        run_paths(&target, &run).unwrap();

        let locks = root.join("cargo-e2e-1/locks");
        own_dir(&locks).unwrap();
        let mode = locks.metadata().unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let linked = root.join("linked-locks");
        std::os::unix::fs::symlink(&elsewhere, &linked).unwrap();
        assert!(
            own_dir(&linked)
                .unwrap_err()
                .to_string()
                .contains("is a symlink")
        );
    }
}
