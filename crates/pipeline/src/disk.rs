//! The engine's disk: a floor checked before anything is built, and budgets
//! kept after a run (BuildKit's cache; the images of this workspace's
//! projects). "Docker ran out of space during the build" is one of the
//! problems this tool exists for: a morning of runs here left 1.5 GB of
//! build cache and 5.7 GB of images, most of it reclaimable.

use camino::Utf8Path;
use compose::Facts;

use crate::config::DiskConfig;

/// Fails when the engine's data folder has less free space than the floor;
/// says nothing for a remote engine (its free space cannot be read from here).
pub fn check_floor(server: &Facts, config: &DiskConfig, file: &Utf8Path) -> Result<(), String> {
    let Some(free) = server.free_bytes() else {
        return Ok(());
    };
    let floor = config.min_free.0;
    if free >= floor {
        return Ok(());
    }
    Err(format!(
        "the engine's data folder {} has {} free, under disk.min_free ({}, {file}); \
         free space with `docker builder prune` (BuildKit's cache) and `docker image prune` \
         (untagged images), or set disk.build_cache / disk.images budgets so runs keep it down",
        server.root_dir,
        build_context::human(free),
        build_context::human(floor)
    ))
}

/// After a run: BuildKit's cache down to its budget, then this workspace's
/// projects' images (`projects` is asked only then). Returns one line per
/// action, for the report.
pub fn keep_budgets(config: &DiskConfig, projects: impl FnOnce() -> Vec<String>) -> Vec<String> {
    let mut notes = Vec::new();
    if let Some(budget) = config.build_cache {
        notes.push(match prune_build_cache(budget.0) {
            Ok(line) => line,
            Err(e) => format!("build cache not pruned: {e}"),
        });
    }
    if let Some(budget) = config.images {
        notes.push(match prune_images(budget.0, &projects()) {
            Ok(line) => line,
            Err(e) => format!("images not pruned: {e}"),
        });
    }
    notes
}

/// `docker builder prune --force` keeping `budget` bytes, with the flag the
/// installed CLI has: `--keep-storage`, which newer ones renamed
/// `--reserved-space` (their deprecation message names a flag that never
/// shipped, so the help text decides).
fn prune_build_cache(budget: u64) -> Result<String, String> {
    let here = Utf8Path::new(".");
    let help = compose::docker(["builder", "prune", "--help"])
        .text(here)
        .map_err(|e| e.to_string())?;
    let flag = keep_flag(&help);
    let out = compose::docker([
        "builder".to_owned(),
        "prune".into(),
        "--force".into(),
        flag.into(),
        budget.to_string(),
    ])
    .text(here)
    .map_err(|e| e.to_string())?;
    let reclaimed = out
        .lines()
        .find_map(|l| l.strip_prefix("Total:"))
        .map_or_else(|| "nothing".to_owned(), |t| t.trim().to_owned());
    Ok(format!(
        "build cache kept under {} ({flag}): reclaimed {reclaimed}",
        build_context::human(budget)
    ))
}

fn keep_flag(help: &str) -> &'static str {
    if help.contains("--reserved-space") {
        "--reserved-space"
    } else {
        "--keep-storage"
    }
}

/// The images of `projects` (Compose labels what it builds with the
/// project), oldest first, removed until the rest fit in `budget`; an image
/// a container uses stays (plain `image rm` refuses it).
fn prune_images(budget: u64, projects: &[String]) -> Result<String, String> {
    let here = Utf8Path::new(".");
    let mut images: Vec<(String, String, u64)> = Vec::new();
    for p in projects {
        let filter = format!("label=com.docker.compose.project={p}");
        let text = compose::docker([
            "image",
            "ls",
            "--no-trunc",
            "--filter",
            &filter,
            "--format",
            "{{.ID}}\t{{.CreatedAt}}\t{{.Size}}",
        ])
        .text(here)
        .map_err(|e| e.to_string())?;
        for line in text.lines() {
            let mut f = line.split('\t');
            let (Some(id), Some(created), Some(size)) = (f.next(), f.next(), f.next()) else {
                continue;
            };
            let bytes = build_context::parse_size(size).unwrap_or(0);
            if !images.iter().any(|(i, _, _)| i == id) {
                images.push((id.to_owned(), created.to_owned(), bytes));
            }
        }
    }
    // `CreatedAt` reads `2026-11-23 18:45:04 +0000 UTC`: it sorts as text.
    images.sort_by(|a, b| a.1.cmp(&b.1));
    let mut total: u64 = images.iter().map(|i| i.2).sum();
    let before = total;
    let mut removed = 0;
    for (id, _, size) in &images {
        if total <= budget {
            break;
        }
        if compose::docker(["image", "rm", id.as_str()])
            .output(here)
            .is_ok()
        {
            total = total.saturating_sub(*size);
            removed += 1;
        }
    }
    Ok(format!(
        "images of this workspace's projects: {} before, {removed} removed, {} now (budget {})",
        build_context::human(before),
        build_context::human(total),
        build_context::human(budget)
    ))
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

    #[test]
    fn a_floor_above_the_free_space_fails_with_the_numbers_and_the_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let info = serde_json::json!({"ServerVersion": "27.0", "DockerRootDir": tmp.path()});
        let server = Facts::parse(&info.to_string(), None).unwrap();
        // No test machine has 1 PiB free.
        let config = DiskConfig {
            min_free: build_context::Size(1 << 50),
            ..DiskConfig::default()
        };
        if server.free_bytes().is_none() {
            eprintln!("skipped: DOCKER_HOST or the docker context names a remote engine");
            return;
        }
        let e = check_floor(&server, &config, Utf8Path::new("e2e.yaml")).unwrap_err();
        assert!(e.contains("under disk.min_free (1.0 PiB, e2e.yaml)"), "{e}");
        assert!(e.contains("docker builder prune"), "{e}");
        assert!(check_floor(&server, &DiskConfig::default(), Utf8Path::new("e2e.yaml")).is_ok());
    }
}
