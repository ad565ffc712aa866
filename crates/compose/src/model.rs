//! The stack as Compose itself resolves it (`docker compose config --format
//! json`), so interpolation, several files, profiles and `extends` are Compose's own.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;

use crate::error::{Error, Result};

/// Which files and profiles make the project.
#[derive(Debug, Clone, Default)]
pub struct ProjectSpec {
    /// Folder the compose files are relative to.
    pub dir: Utf8PathBuf,
    pub files: Vec<Utf8PathBuf>,
    pub project: Option<String>,
    pub profiles: Vec<String>,
    /// Variables every `docker compose` call sees (interpolation, e.g. ports, paths).
    pub env: Vec<(String, String)>,
}

impl ProjectSpec {
    /// The leading `docker compose` arguments selecting this project.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec!["compose".to_owned()];
        for f in &self.files {
            args.extend(["-f".to_owned(), f.to_string()]);
        }
        if let Some(p) = &self.project {
            args.extend(["-p".to_owned(), p.clone()]);
        }
        for p in &self.profiles {
            args.extend(["--profile".to_owned(), p.clone()]);
        }
        args
    }
}

/// The resolved stack.
#[derive(Debug, Clone, Deserialize)]
pub struct Stack {
    pub name: String,
    pub services: BTreeMap<String, Service>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Service {
    pub build: Option<Build>,
    pub image: Option<String>,
    #[serde(default)]
    pub ports: Vec<Port>,
    pub healthcheck: Option<serde_json::Value>,
    #[serde(default)]
    pub depends_on: BTreeMap<String, serde_json::Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    pub context: Utf8PathBuf,
    pub dockerfile: Option<Utf8PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Port {
    pub target: u16,
    pub published: Option<String>,
    pub host_ip: Option<String>,
    pub protocol: Option<String>,
}

impl Service {
    /// Whether Docker runs a healthcheck for it (`disable: true` is none).
    pub fn has_healthcheck(&self) -> bool {
        self.healthcheck
            .as_ref()
            .is_some_and(|h| h.get("disable") != Some(&serde_json::Value::Bool(true)))
    }

    /// The container ports it publishes over TCP.
    pub fn published_tcp(&self) -> Vec<u16> {
        self.ports
            .iter()
            .filter(|p| p.published.is_some() && p.protocol.as_deref() != Some("udp"))
            .map(|p| p.target)
            .collect()
    }
}

impl Build {
    /// The Dockerfile's path; Compose leaves it relative to the context.
    pub fn dockerfile_path(&self) -> Utf8PathBuf {
        let df = self
            .dockerfile
            .clone()
            .unwrap_or_else(|| "Dockerfile".into());
        if df.is_absolute() {
            df
        } else {
            self.context.join(df)
        }
    }
}

impl Stack {
    /// Asks Compose for the resolved model; needs the CLI and the plugin, not a daemon.
    pub fn load(spec: &ProjectSpec) -> Result<Stack> {
        let mut args = spec.args();
        args.extend(["config".into(), "--format".into(), "json".into()]);
        let cmd = crate::docker(args).envs(&spec.env);
        let json = cmd.output(&spec.dir)?;
        serde_json::from_slice(&json).map_err(|e| Error::Parse {
            command: cmd.to_string(),
            detail: e.to_string(),
        })
    }

    /// `(service, context, dockerfile)` for every service that builds.
    pub fn build_contexts(&self) -> Vec<(&str, &Utf8Path, Utf8PathBuf)> {
        self.services
            .iter()
            .filter_map(|(name, s)| {
                s.build
                    .as_ref()
                    .map(|b| (name.as_str(), b.context.as_path(), b.dockerfile_path()))
            })
            .collect()
    }
}
