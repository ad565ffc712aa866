//! Projects found by a label on their containers, and their removal by
//! Compose's labels alone (no compose file needed): what the sweep of
//! projects left by dead runs (`reap`) works with.

use std::collections::BTreeMap;

use camino::Utf8Path;

use crate::error::Result;
use crate::leftovers::leftovers;

const PROJECT_LABEL: &str = "com.docker.compose.project";

/// A project some of whose containers carry a label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labelled {
    pub project: String,
    /// The values of the labels asked for, from one of its containers.
    pub labels: BTreeMap<String, String>,
    pub containers: usize,
}

/// Every project with a container labelled `key`, with the values of
/// `read` (labels) from its containers. One `docker ps`.
pub fn labelled_projects(key: &str, read: &[&str]) -> Result<Vec<Labelled>> {
    let mut format = format!("{{{{.Label \"{PROJECT_LABEL}\"}}}}");
    for r in read {
        format.push_str(&format!("\t{{{{.Label \"{r}\"}}}}"));
    }
    let filter = format!("label={key}");
    let text = crate::docker(["ps", "--all", "--filter", &filter, "--format", &format])
        .text(Utf8Path::new("."))?;
    let mut out: BTreeMap<String, Labelled> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let mut fields = line.split('\t');
        let project = fields.next().unwrap_or_default().to_owned();
        if project.is_empty() {
            continue;
        }
        let labels = read
            .iter()
            .zip(fields)
            .map(|(k, v)| ((*k).to_owned(), v.to_owned()))
            .collect();
        out.entry(project.clone())
            .or_insert(Labelled {
                project,
                labels,
                containers: 0,
            })
            .containers += 1;
    }
    Ok(out.into_values().collect())
}

/// Removes everything the engine holds for `project` by Compose's labels:
/// containers, networks, volumes, the images named after it and the
/// dangling ones labelled with it. Returns what is left afterwards.
pub fn remove_project(project: &str) -> Result<crate::Leftovers> {
    let here = Utf8Path::new(".");
    let left = leftovers(project)?;
    let run = |args: Vec<String>| -> Result<()> {
        crate::docker(args).output(here)?;
        Ok(())
    };
    let with = |verb: &[&str], names: &[String]| -> Vec<String> {
        verb.iter()
            .map(|v| (*v).to_owned())
            .chain(names.iter().cloned())
            .collect()
    };
    let containers: Vec<String> = left.containers.iter().map(|c| c.name.clone()).collect();
    if !containers.is_empty() {
        run(with(&["rm", "--force", "--volumes"], &containers))?;
    }
    if !left.networks.is_empty() {
        run(with(&["network", "rm"], &left.networks))?;
    }
    if !left.volumes.is_empty() {
        run(with(&["volume", "rm", "--force"], &left.volumes))?;
    }
    let images: Vec<String> = left
        .images
        .iter()
        .chain(&left.dangling_images)
        .cloned()
        .collect();
    if !images.is_empty() {
        run(with(&["image", "rm", "--force"], &images))?;
    }
    leftovers(project)
}
