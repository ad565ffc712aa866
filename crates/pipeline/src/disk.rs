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
pub fn check_floor(server: &Facts, config: &DiskConfig, file: &Utf8Path) -> crate::Result<()> {
    let Some(free) = server.free_bytes() else {
        return Ok(());
    };
    let floor = config.min_free.0;
    if free >= floor {
        return Ok(());
    }
    Err(crate::Error::Stack(format!(
        "the engine's data folder {} has {} free, under disk.min_free ({}, {file}); \
         free space with `docker builder prune` (BuildKit's cache) and `docker image prune` \
         (untagged images), or set disk.build_cache / disk.images budgets so runs keep it down",
        server.root_dir,
        build_context::human(free),
        build_context::human(floor)
    )))
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

/// BuildKit's cache down to `budget`.
fn prune_build_cache(budget: u64) -> Result<String, compose::Error> {
    let pruned = compose::prune_build_cache(budget)?;
    Ok(format!(
        "build cache kept under {} ({}): reclaimed {}",
        build_context::human(budget),
        pruned.flag,
        pruned.reclaimed.as_deref().unwrap_or("nothing")
    ))
}

/// The images of `projects`, oldest first, removed until the rest fit in
/// `budget`; an image a container uses stays (the engine refuses it).
fn prune_images(budget: u64, projects: &[String]) -> Result<String, compose::Error> {
    let images = compose::project_images(projects)?;
    let mut total: u64 = images.iter().map(|i| i.bytes).sum();
    let before = total;
    let mut removed = 0;
    for image in &images {
        if total <= budget {
            break;
        }
        if compose::remove_image(&image.id).is_ok() {
            total = total.saturating_sub(image.bytes);
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
        let e = check_floor(&server, &config, Utf8Path::new("e2e.yaml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("under disk.min_free (1.0 PiB, e2e.yaml)"), "{e}");
        assert!(e.contains("docker builder prune"), "{e}");
        assert!(check_floor(&server, &DiskConfig::default(), Utf8Path::new("e2e.yaml")).is_ok());
    }
}
