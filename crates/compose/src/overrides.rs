//! Override files the tool adds to a user's compose files for one run,
//! serialised as YAML (a value is quoted as YAML needs, whatever it holds):
//! owner labels, host ports the engine picks, the certificates volume of a
//! remote engine. Compose merges them over the user's files.

use std::collections::BTreeMap;

use camino::Utf8Path;
use serde::Serialize;
use serde_yaml::value::{Tag, TaggedValue};

use crate::error::{Error, Result};
use crate::model::BindMount;
use crate::project::Project;

#[derive(Debug, Serialize)]
struct Override<S: Serialize> {
    services: BTreeMap<String, S>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    volumes: BTreeMap<String, BTreeMap<String, String>>,
}

impl<S: Serialize> Override<S> {
    /// Writes it to `file` under a comment that says what it is.
    fn write(&self, file: &Utf8Path, comment: &str) -> Result<()> {
        let yaml = serde_yaml::to_string(self).map_err(|e| Error::Parse {
            command: format!("the override file {file}"),
            detail: e.to_string(),
        })?;
        let io = |source| Error::Io {
            path: file.to_string(),
            source,
        };
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        std::fs::write(
            file,
            format!("# Written by cargo e2e for this run: {comment}\n{yaml}"),
        )
        .map_err(io)
    }
}

#[derive(Debug, Serialize)]
struct Labels<'a> {
    labels: BTreeMap<&'a str, &'a str>,
}

/// Adds `labels` to every service's containers.
pub fn write_labels(project: &Project, labels: &[(&str, String)], file: &Utf8Path) -> Result<()> {
    let labels: BTreeMap<&str, &str> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let services = project
        .stack
        .services
        .keys()
        .map(|name| {
            (
                name.clone(),
                Labels {
                    labels: labels.clone(),
                },
            )
        })
        .collect();
    Override {
        services,
        volumes: BTreeMap::new(),
    }
    .write(file, "whose containers these are")
}

#[derive(Debug, Serialize)]
struct Ports {
    /// `!override` replaces the list (Compose 2.24.4+) instead of adding to it.
    ports: TaggedValue,
}

#[derive(Debug, Serialize)]
struct EphemeralPort<'a> {
    target: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    host_ip: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    protocol: Option<&'a str>,
}

/// Publishes every published port again on a host port the engine picks,
/// keeping its host address and protocol; the user's files stay as they are.
pub fn write_ephemeral_ports(project: &Project, file: &Utf8Path) -> Result<()> {
    let mut services = BTreeMap::new();
    for (name, s) in &project.stack.services {
        if s.ports.iter().all(|p| p.published.is_none()) {
            continue;
        }
        let ports: Vec<EphemeralPort> = s
            .ports
            .iter()
            .map(|p| EphemeralPort {
                target: p.target,
                host_ip: p.host_ip.as_deref().filter(|i| !i.is_empty()),
                protocol: p.protocol.as_deref(),
            })
            .collect();
        let value = serde_yaml::to_value(ports).map_err(|e| Error::Parse {
            command: format!("the override file {file}"),
            detail: e.to_string(),
        })?;
        let ports = TaggedValue {
            tag: Tag::new("override"),
            value,
        };
        services.insert(name.clone(), Ports { ports });
    }
    Override {
        services,
        volumes: BTreeMap::new(),
    }
    .write(file, "ports the engine picks (--ephemeral-ports)")
}

#[derive(Debug, Serialize)]
struct Volumes<'a> {
    volumes: Vec<VolumeMount<'a>>,
}

#[derive(Debug, Serialize)]
struct VolumeMount<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    source: &'a str,
    target: &'a str,
    read_only: bool,
}

/// Mounts the project volume `volume` where each of `mounts` (a bind mount
/// of the certificate folder) is: Compose merges a service's mounts by
/// target, so it replaces the bind mount a remote engine cannot serve.
pub fn write_volume_for(mounts: &[BindMount], volume: &str, file: &Utf8Path) -> Result<()> {
    let mut services: BTreeMap<String, Volumes> = BTreeMap::new();
    for m in mounts {
        services
            .entry(m.service.clone())
            .or_insert_with(|| Volumes {
                volumes: Vec::new(),
            })
            .volumes
            .push(VolumeMount {
                kind: "volume",
                source: volume,
                target: &m.target,
                read_only: m.read_only,
            });
    }
    Override {
        services,
        volumes: BTreeMap::from([(volume.to_owned(), BTreeMap::new())]),
    }
    .write(
        file,
        "the engine is remote, so the certificates go in a volume",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(file: &Utf8Path) -> serde_yaml::Value {
        serde_yaml::from_str(&std::fs::read_to_string(file).unwrap()).unwrap()
    }

    #[test]
    fn values_are_quoted_as_yaml_needs_whatever_they_hold() {
        let tmp = tempfile::tempdir().unwrap();
        let file = Utf8Path::from_path(tmp.path()).unwrap().join("o.yaml");
        let mounts = [BindMount {
            service: "gateway".into(),
            source: "/certs".into(),
            // Rust's {:?} would write \u{1f600}-style escapes YAML reads otherwise.
            target: "/etc/certs: \"x\" #1 \u{e9}".into(),
            read_only: true,
        }];
        write_volume_for(&mounts, "e2e-certs", &file).unwrap();
        let v = read(&file);
        let mount = &v["services"]["gateway"]["volumes"][0];
        assert_eq!(mount["target"], "/etc/certs: \"x\" #1 \u{e9}");
        assert_eq!(mount["source"], "e2e-certs");
        assert_eq!(mount["read_only"], true);
        assert!(v["volumes"]["e2e-certs"].is_mapping());
    }
}
