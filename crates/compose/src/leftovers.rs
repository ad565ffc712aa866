//! What the engine holds of a project after a run, found by Compose's
//! labels, and whether that keeps the teardown policy's promise.

use camino::Utf8Path;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::project::Project;
use crate::teardown::Policy;

/// What is left of a project on the engine.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leftovers {
    pub containers: Vec<LeftContainer>,
    pub networks: Vec<String>,
    pub volumes: Vec<String>,
    /// Images Compose built and named after the project (`<project>-<service>`).
    pub images: Vec<String>,
    /// Untagged images labelled with the project: what each rebuild leaves
    /// behind when it replaces the tag (by ID).
    pub dangling_images: Vec<String>,
}

/// A container left behind, and its state (`running`, `exited`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeftContainer {
    pub name: String,
    pub state: String,
}

impl Leftovers {
    pub fn is_empty(&self) -> bool {
        self.containers.is_empty()
            && self.networks.is_empty()
            && self.volumes.is_empty()
            && self.images.is_empty()
            && self.dangling_images.is_empty()
    }

    /// What the engine holds that `policy` said it would not, in words.
    pub fn broken_promise(&self, policy: Policy) -> Option<String> {
        let running: Vec<&str> = self
            .containers
            .iter()
            .filter(|c| c.state == "running")
            .map(|c| c.name.as_str())
            .collect();
        let names: Vec<&str> = self.containers.iter().map(|c| c.name.as_str()).collect();
        match policy {
            Policy::Keep => None,
            Policy::Stop if !running.is_empty() => Some(format!("still running: {running:?}")),
            Policy::Stop => None,
            Policy::Down if !names.is_empty() || !self.networks.is_empty() => Some(format!(
                "left behind: containers {names:?}, networks {:?}",
                self.networks
            )),
            Policy::Down => None,
            Policy::Purge if !self.is_empty() => Some(format!("left behind: {self}")),
            Policy::Purge => None,
        }
    }
}

impl std::fmt::Display for Leftovers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("nothing");
        }
        let containers: Vec<String> = self
            .containers
            .iter()
            .map(|c| format!("{} ({})", c.name, c.state))
            .collect();
        let parts = [
            ("containers", containers),
            ("networks", self.networks.clone()),
            ("volumes", self.volumes.clone()),
            ("images", self.images.clone()),
            ("dangling images", self.dangling_images.clone()),
        ];
        let shown: Vec<String> = parts
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(what, v)| format!("{what} {}", v.join(", ")))
            .collect();
        f.write_str(&shown.join("; "))
    }
}

impl Project {
    /// What the engine still holds for this project.
    pub fn leftovers(&self) -> Result<Leftovers> {
        leftovers(self.name())
    }
}

/// What the engine holds for a project name, found by Compose's labels (the
/// five listings at once: this runs after every teardown).
pub fn leftovers(project: &str) -> Result<Leftovers> {
    let here = Utf8Path::new(".");
    let label = format!("label=com.docker.compose.project={project}");
    let lines = |args: &[&str]| -> Result<Vec<String>> {
        let text = crate::docker(args.iter().copied()).text(here)?;
        Ok(text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect())
    };
    std::thread::scope(|s| {
        let containers = s.spawn(|| {
            lines(&[
                "ps",
                "--all",
                "--filter",
                &label,
                "--format",
                "{{.Names}}\t{{.State}}",
            ])
        });
        let networks =
            s.spawn(|| lines(&["network", "ls", "--filter", &label, "--format", "{{.Name}}"]));
        let volumes =
            s.spawn(|| lines(&["volume", "ls", "--filter", &label, "--format", "{{.Name}}"]));
        let images = s.spawn(|| {
            lines(&[
                "image",
                "ls",
                "--filter",
                &label,
                "--format",
                "{{.Repository}}",
            ])
        });
        let dangling = s.spawn(|| {
            lines(&[
                "image",
                "ls",
                "--quiet",
                "--no-trunc",
                "--filter",
                "dangling=true",
                "--filter",
                &label,
            ])
        });
        let joined = |h: std::thread::ScopedJoinHandle<'_, Result<Vec<String>>>| {
            h.join().expect("listing does not panic")
        };
        Ok(Leftovers {
            containers: joined(containers)?
                .into_iter()
                .map(|line| {
                    let (name, state) = line.split_once('\t').unwrap_or((&line, ""));
                    LeftContainer {
                        name: name.to_owned(),
                        state: state.to_owned(),
                    }
                })
                .collect(),
            networks: joined(networks)?,
            volumes: joined(volumes)?,
            images: joined(images)?
                .into_iter()
                .filter(|name| name.starts_with(&format!("{project}-")))
                .collect(),
            dangling_images: joined(dangling)?,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_policy_promises_what_it_leaves() {
        let c = |name: &str, state: &str| LeftContainer {
            name: name.into(),
            state: state.into(),
        };
        let stopped = Leftovers {
            containers: vec![c("p-api-1", "exited")],
            networks: vec!["p_default".into()],
            volumes: vec!["p_data".into()],
            images: vec!["p-api".into()],
            dangling_images: vec![],
        };
        let running = Leftovers {
            containers: vec![c("p-api-1", "running")],
            ..stopped.clone()
        };
        let volumes_only = Leftovers {
            volumes: vec!["p_data".into()],
            ..Leftovers::default()
        };
        let dangling = Leftovers {
            dangling_images: vec!["sha256:ab".into()],
            ..Leftovers::default()
        };
        let kept = |l: &Leftovers, p| l.broken_promise(p).is_none();
        assert!(kept(&running, Policy::Keep));
        assert!(kept(&stopped, Policy::Stop) && !kept(&running, Policy::Stop));
        assert!(kept(&volumes_only, Policy::Down) && !kept(&stopped, Policy::Down));
        assert!(kept(&Leftovers::default(), Policy::Purge));
        assert!(!kept(&volumes_only, Policy::Purge));
        assert_eq!(
            dangling.broken_promise(Policy::Purge).as_deref(),
            Some("left behind: dangling images sha256:ab")
        );
        assert_eq!(
            running.to_string(),
            "containers p-api-1 (running); networks p_default; volumes p_data; images p-api"
        );
    }
}
