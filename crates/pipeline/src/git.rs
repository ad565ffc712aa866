//! What git tracks: the line between a source file and an artifact, so the
//! clean phase never deletes a tracked file.

use build_context::clean::Tracked;
use camino::{Utf8Path, Utf8PathBuf};
use process::Cmd;

/// The repository root above `dir` and the files git tracks there, or `None`
/// when `dir` is not in a git work tree.
pub fn tracked(dir: &Utf8Path) -> Result<Option<(Utf8PathBuf, Tracked)>, process::Error> {
    let Ok(top) = Cmd::new("git", ["rev-parse", "--show-toplevel"]).text(dir) else {
        return Ok(None);
    };
    let root = Utf8PathBuf::from(top);
    let listed = Cmd::new("git", ["ls-files", "-z"]).output(&root)?;
    Ok(Some((root, Tracked::from_ls_files_z(&listed))))
}
