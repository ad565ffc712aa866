//! The engine's disk as this tool uses it: BuildKit's cache pruned down to a
//! size, and the images Compose built for projects, listed and removed one by
//! one. The budgets themselves (what to keep) are the pipeline's.

use camino::Utf8Path;

use crate::error::{Error, Result};

/// An image Compose built for a project (it labels them with the project).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectImage {
    pub id: String,
    /// As `docker image ls` prints it (`2026-11-23 18:45:04 +0000 UTC`): it sorts as text.
    pub created: String,
    pub bytes: u64,
}

/// The images of `projects`, each once, oldest first.
pub fn project_images(projects: &[String]) -> Result<Vec<ProjectImage>> {
    let here = Utf8Path::new(".");
    let mut listed: Vec<(String, String)> = Vec::new();
    for p in projects {
        let filter = format!("label=com.docker.compose.project={p}");
        let text = crate::docker([
            "image",
            "ls",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            "{{.ID}}\t{{.CreatedAt}}",
        ])
        .text(here)?;
        for (id, created) in text.lines().filter_map(|l| l.split_once('\t')) {
            if !listed.iter().any(|(i, _)| i == id) {
                listed.push((id.to_owned(), created.to_owned()));
            }
        }
    }
    if listed.is_empty() {
        return Ok(Vec::new());
    }
    // Exact sizes in bytes (`image ls` prints them rounded, as text).
    let cmd = crate::docker(
        ["image", "inspect", "--format", "{{.Id}}\t{{.Size}}"]
            .map(str::to_owned)
            .into_iter()
            .chain(listed.iter().map(|(id, _)| id.clone())),
    );
    let sizes = cmd.text(here)?;
    let mut images: Vec<ProjectImage> = Vec::new();
    for line in sizes.lines() {
        let parsed = line
            .split_once('\t')
            .and_then(|(id, size)| Some((id, size.trim().parse::<u64>().ok()?)));
        let Some((id, bytes)) = parsed else {
            return Err(Error::Parse {
                command: cmd.to_string(),
                detail: format!("not `ID\\tSIZE`: {line}"),
            });
        };
        if let Some((_, created)) = listed.iter().find(|(i, _)| i == id) {
            images.push(ProjectImage {
                id: id.to_owned(),
                created: created.clone(),
                bytes,
            });
        }
    }
    images.sort_by(|a, b| a.created.cmp(&b.created));
    Ok(images)
}

/// Removes an image; the engine refuses one a container uses.
pub fn remove_image(id: &str) -> Result<()> {
    crate::docker(["image", "rm", id]).output(Utf8Path::new("."))?;
    Ok(())
}

/// What pruning BuildKit's cache did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrunedCache {
    /// The flag that kept the budget (the installed CLI's).
    pub flag: &'static str,
    /// What the engine says it reclaimed, as it says it (`1.2GB`).
    pub reclaimed: Option<String>,
}

/// `docker builder prune --force` keeping `keep` bytes, with the flag the
/// installed CLI has: `--keep-storage`, which newer ones renamed
/// `--reserved-space` (their deprecation message names a flag that never
/// shipped, so the help text decides).
pub fn prune_build_cache(keep: u64) -> Result<PrunedCache> {
    let here = Utf8Path::new(".");
    let help = crate::docker(["builder", "prune", "--help"]).text(here)?;
    let flag = keep_flag(&help);
    let out = crate::docker([
        "builder".to_owned(),
        "prune".into(),
        "--force".into(),
        flag.into(),
        keep.to_string(),
    ])
    .text(here)?;
    let reclaimed = out
        .lines()
        .find_map(|l| l.strip_prefix("Total:"))
        .map(|t| t.trim().to_owned());
    Ok(PrunedCache { flag, reclaimed })
}

fn keep_flag(help: &str) -> &'static str {
    if help.contains("--reserved-space") {
        "--reserved-space"
    } else {
        "--keep-storage"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prune_flag_is_the_one_the_cli_has() {
        let old = "Options:\n  -a, --all\n      --filter filter\n  -f, --force\n      --keep-storage bytes   Amount of disk space to keep for cache\n";
        let new = "Options:\n  -a, --all\n      --keep-storage bytes   Amount of disk space to keep for cache (deprecated)\n      --max-used-space bytes\n      --reserved-space bytes\n";
        assert_eq!(keep_flag(old), "--keep-storage");
        assert_eq!(keep_flag(new), "--reserved-space");
    }
}
