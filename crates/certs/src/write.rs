//! Atomic writes with the right permissions, and the lock that serialises runs.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use camino::{Utf8Path, Utf8PathBuf};

use crate::{Error, Result};

pub(crate) fn err(path: &Utf8Path) -> impl FnOnce(std::io::Error) -> Error {
    let path: Utf8PathBuf = path.to_owned();
    move |source| Error::Write { path, source }
}

/// Writes to a temporary file in the same folder, syncs, then renames over
/// `path`: a crash leaves the old file or the new one, never half of either.
/// The mode is set before any byte is written, so a key is never readable by others.
pub(crate) fn atomic(path: &Utf8Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().expect("certificate paths have a folder");
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(err(path))?;
    tmp.write_all(bytes).map_err(err(path))?;
    tmp.as_file().sync_all().map_err(err(path))?;
    tmp.persist(path).map_err(|e| Error::Write {
        path: path.to_owned(),
        source: e.error,
    })?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(err(dir))?;
    Ok(())
}

/// The CA key's folder is for its owner only.
pub(crate) fn restrict_dir(dir: &Utf8Path) -> Result<()> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err(dir))
}

/// An exclusive lock held until the returned file is dropped.
pub(crate) fn lock(path: &Utf8Path) -> Result<std::fs::File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| Error::Lock {
            path: path.to_owned(),
            source,
        })?;
    file.lock().map_err(|source| Error::Lock {
        path: path.to_owned(),
        source,
    })?;
    Ok(file)
}
