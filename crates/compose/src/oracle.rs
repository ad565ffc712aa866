//! The engine as the judge of what a context sends: build `FROM scratch` +
//! `COPY . /ctx/` with BuildKit, export a container of the image, and list
//! what landed under `ctx/`. Tests compare `build-context` against this.

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::{Error, Result};

/// The Dockerfile text every oracle build uses.
pub const DOCKERFILE: &str = "FROM scratch\nCOPY . /ctx/\n";

/// One context to list: its folder and a Dockerfile containing [`DOCKERFILE`].
#[derive(Debug, Clone)]
pub struct Case {
    pub context: Utf8PathBuf,
    pub dockerfile: Utf8PathBuf,
}

/// Builds every case in one `docker compose build` and returns, per case, the
/// files and symlinks placed under `/ctx/`, sorted bytewise.
pub fn list_contexts(cases: &[Case]) -> Result<Vec<Vec<Box<[u8]>>>> {
    let work = tempfile::tempdir().map_err(|source| Error::Io {
        path: "temporary folder".into(),
        source,
    })?;
    let work_dir = Utf8Path::from_path(work.path()).expect("temporary folders have UTF-8 names");
    let project = format!("oracle{}", std::process::id());
    let mut yaml = String::from("services:\n");
    for (i, case) in cases.iter().enumerate() {
        yaml.push_str(&format!(
            "  c{i}:\n    image: {project}-c{i}:latest\n    build:\n      context: {}\n      dockerfile: {}\n",
            serde_json::to_string(case.context.as_str()).expect("string"),
            serde_json::to_string(case.dockerfile.as_str()).expect("string"),
        ));
    }
    let file = work_dir.join("compose.yaml");
    std::fs::write(&file, yaml).map_err(|source| Error::Io {
        path: file.to_string(),
        source,
    })?;
    let compose = |args: &[&str]| {
        let mut all = vec!["compose", "-f", file.as_str(), "-p", &project];
        all.extend_from_slice(args);
        crate::docker(all.iter().map(|s| s.to_string()))
    };
    compose(&["build", "--progress", "plain"]).output(work_dir)?;
    let result = (0..cases.len())
        .map(|i| export_listing(work_dir, &format!("{project}-c{i}:latest")))
        .collect();
    let images: Vec<String> = (0..cases.len())
        .map(|i| format!("{project}-c{i}:latest"))
        .collect();
    let mut rmi = vec!["rmi".to_owned(), "--force".to_owned()];
    rmi.extend(images);
    // Cleanup failure must not hide the listing; the images are tiny.
    let _ = crate::docker(rmi).output(work_dir);
    result
}

fn export_listing(dir: &Utf8Path, image: &str) -> Result<Vec<Box<[u8]>>> {
    // A scratch image has no command; `create` needs one, and it never runs.
    let id = crate::docker(["create", image, "/never-run"]).text(dir)?;
    let tar = crate::docker(["export", &id]).output(dir);
    let _ = crate::docker(["rm", "--force", &id]).output(dir);
    let tar = tar?;
    let mut names = Vec::new();
    let mut archive = tar::Archive::new(&tar[..]);
    let entries = archive.entries().map_err(|e| parse_error(image, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| parse_error(image, e))?;
        if entry.header().entry_type().is_dir() {
            continue;
        }
        let path = entry.path_bytes().into_owned();
        if let Some(rel) = path.strip_prefix(b"ctx/") {
            names.push(rel.to_vec().into_boxed_slice());
        }
    }
    names.sort_unstable();
    Ok(names)
}

fn parse_error(image: &str, e: std::io::Error) -> Error {
    Error::Parse {
        command: format!("docker export (of {image})"),
        detail: e.to_string(),
    }
}
