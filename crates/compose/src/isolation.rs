//! What defeats `-p` isolation, so that two runs of one stack cannot share an
//! engine (docker/compose#13553: `container_name` ignores the project name):
//! a fixed `container_name`, a fixed host port, a network or volume with a
//! fixed `name:`, an `external` one. Each is found in the model Compose
//! resolves, with the line of the compose file that sets it. The isolation
//! mode (`--ephemeral-ports`) rewrites what it can in an override file (the
//! names `!reset`, so Compose scopes them to the project again; ports the
//! engine picks), never in the user's file; an `external` network or volume
//! is shared by definition and cannot be rewritten.

use std::collections::BTreeMap;

use camino::Utf8Path;
use serde::Serialize;
use serde_yaml::value::{Tag, TaggedValue};

use crate::error::{Error, Result};
use crate::project::Project;

/// What kind of thing defeats isolation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ContainerName,
    HostPort,
    NetworkName,
    VolumeName,
    ExternalNetwork,
    ExternalVolume,
}

/// One thing that defeats isolation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hazard {
    pub kind: Kind,
    /// The service, network or volume (its key in the compose file).
    pub owner: String,
    /// The fixed name or port.
    pub value: String,
    /// `file:line` where the compose files set it, when found.
    pub at: Option<String>,
}

impl Hazard {
    /// Whether the isolation mode can rewrite it.
    pub fn rewritable(&self) -> bool {
        !matches!(self.kind, Kind::ExternalNetwork | Kind::ExternalVolume)
    }
}

impl std::fmt::Display for Hazard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (owner, value) = (&self.owner, &self.value);
        match self.kind {
            Kind::ContainerName => write!(f, "service {owner}'s container_name {value}"),
            Kind::HostPort => write!(f, "service {owner}'s host port {value}"),
            Kind::NetworkName => write!(f, "network {owner}'s fixed name {value}"),
            Kind::VolumeName => write!(f, "volume {owner}'s fixed name {value}"),
            Kind::ExternalNetwork => write!(f, "external network {value}"),
            Kind::ExternalVolume => write!(f, "external volume {value}"),
        }?;
        match &self.at {
            Some(at) => write!(f, " ({at})"),
            None => Ok(()),
        }
    }
}

impl Project {
    /// Everything in the stack that two projects on one engine would share.
    pub fn hazards(&self) -> Vec<Hazard> {
        let project = self.name();
        let texts: Vec<(String, String)> = self
            .spec
            .files
            .iter()
            .filter_map(|f| {
                let path = self.spec.dir.join(f);
                let text = std::fs::read_to_string(&path).ok()?;
                Some((f.to_string(), text))
            })
            .collect();
        let find = |after: Option<&str>, line: &dyn Fn(&str) -> bool| -> Option<String> {
            texts.iter().find_map(|(file, text)| {
                let lines: Vec<&str> = text.lines().collect();
                let start = match after {
                    Some(key) => lines
                        .iter()
                        .position(|l| l.trim_start().starts_with(&format!("{key}:")))?,
                    None => 0,
                };
                let i = lines[start..].iter().position(|l| line(l))?;
                Some(format!("{file}:{}", start + i + 1))
            })
        };
        let mut out = Vec::new();
        for (name, s) in &self.stack.services {
            if let Some(c) = &s.container_name {
                let at = find(Some(name), &|l| {
                    l.trim_start().starts_with("container_name:")
                });
                out.push(hazard(Kind::ContainerName, name, c, at));
            }
            for p in &s.ports {
                let Some(published) = p.published.as_deref().filter(|p| !p.is_empty()) else {
                    continue;
                };
                let shown = match p.protocol.as_deref() {
                    Some("udp") => format!("{published}/udp"),
                    _ => published.to_owned(),
                };
                // `- "8080:80"`, `- "${PORT:-8080}:80"`, `published: 8080`.
                let at = find(Some(name), &|l| l.contains(published) && l.contains(':'));
                out.push(hazard(Kind::HostPort, name, &shown, at));
            }
        }
        let scoped = |key: &str| format!("{project}_{key}");
        let tops = [
            (
                &self.stack.networks,
                Kind::ExternalNetwork,
                Kind::NetworkName,
            ),
            (&self.stack.volumes, Kind::ExternalVolume, Kind::VolumeName),
        ];
        for (named, external, fixed) in tops {
            for (key, n) in named {
                let name = n.name.clone().unwrap_or_else(|| scoped(key));
                if n.external {
                    let at = find(Some(key), &|l| l.trim_start().starts_with("external:"));
                    out.push(hazard(external, key, &name, at));
                } else if name != scoped(key) {
                    let at = find(Some(key), &|l| l.trim_start().starts_with("name:"));
                    out.push(hazard(fixed, key, &name, at));
                }
            }
        }
        out
    }
}

fn hazard(kind: Kind, owner: &str, value: &str, at: Option<String>) -> Hazard {
    Hazard {
        kind,
        owner: owner.to_owned(),
        value: value.to_owned(),
        at,
    }
}

#[derive(Debug, Default, Serialize)]
struct Names {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    services: BTreeMap<String, BTreeMap<&'static str, TaggedValue>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    networks: BTreeMap<String, BTreeMap<&'static str, TaggedValue>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<String, BTreeMap<&'static str, TaggedValue>>,
}

/// Writes the override that scopes the fixed names among `hazards` to the
/// project again (`!reset`, Compose 2.24+); `false` when there is none.
pub fn write_isolation(hazards: &[Hazard], file: &Utf8Path) -> Result<bool> {
    let reset = || TaggedValue {
        tag: Tag::new("reset"),
        value: serde_yaml::Value::Null,
    };
    let mut names = Names::default();
    for h in hazards {
        let (map, key) = match h.kind {
            Kind::ContainerName => (&mut names.services, "container_name"),
            Kind::NetworkName => (&mut names.networks, "name"),
            Kind::VolumeName => (&mut names.volumes, "name"),
            _ => continue,
        };
        map.entry(h.owner.clone()).or_default().insert(key, reset());
    }
    if names.services.is_empty() && names.networks.is_empty() && names.volumes.is_empty() {
        return Ok(false);
    }
    let yaml = serde_yaml::to_string(&names).map_err(|e| Error::Parse {
        command: format!("the override file {file}"),
        detail: e.to_string(),
    })?;
    let text = format!(
        "# Written by cargo e2e for this run: names scoped to the project again (--ephemeral-ports)\n{yaml}"
    );
    let io = |source| Error::Io {
        path: file.to_string(),
        source,
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    std::fs::write(file, text).map_err(|source| Error::Io {
        path: file.to_string(),
        source,
    })?;
    Ok(true)
}
