//! The stack as Compose itself resolves it (`docker compose config --format
//! json`), so interpolation, several files, profiles and `extends` are Compose's own.

use std::collections::BTreeMap;
#[cfg(test)]
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Which files and profiles make the project.
#[derive(Debug, Clone, Default, serde::Serialize, Deserialize)]
pub struct ProjectSpec {
    /// Folder the compose files are relative to.
    pub dir: Utf8PathBuf,
    pub files: Vec<Utf8PathBuf>,
    pub project: Option<String>,
    pub profiles: Vec<String>,
    /// Variables every `docker compose` call sees (interpolation, e.g. ports, paths).
    pub env: Vec<(String, String)>,
    /// Where published ports answer from here, when the config says
    /// (`compose.publish_host`); see [`ProjectSpec::publish_host`].
    #[serde(default)]
    pub publish_host: Option<String>,
}

impl ProjectSpec {
    /// Where published ports answer from here: the configured host, else the
    /// remote engine's, else this machine's loopback.
    pub fn publish_host(&self) -> String {
        crate::Engine::publish_host(self.publish_host.as_deref())
    }

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
    /// Top-level networks and volumes: their resolved names, and whether
    /// they are `external` (made by someone else, shared by all).
    #[serde(default)]
    pub networks: BTreeMap<String, Named>,
    #[serde(default)]
    pub volumes: BTreeMap<String, Named>,
    /// The whole resolved model as Compose printed it: what a change to the
    /// stack's config is judged by.
    #[serde(skip)]
    pub config: serde_json::Value,
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
    #[serde(default)]
    pub volumes: Vec<Volume>,
    /// `container_name:`, which Compose's log lines are prefixed with.
    #[serde(default)]
    pub container_name: Option<String>,
    /// `develop.watch`: what a watch does with a change.
    #[serde(default)]
    pub develop: Option<crate::develop::Develop>,
}

/// A top-level network or volume as `compose config` resolves it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Named {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub external: bool,
}

/// A mount as `compose config` resolves it (`type`, absolute `source`).
#[derive(Debug, Clone, Deserialize)]
pub struct Volume {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
}

/// A host folder or file a service mounts: it exists only on the machine
/// the engine runs on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindMount {
    pub service: String,
    pub source: String,
    pub target: String,
    pub read_only: bool,
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

    /// Its healthcheck as a command to run in the container (`docker exec`
    /// argv), and that check's timeout; `None` without a healthcheck one can
    /// run from outside (none, `disable`, `NONE`).
    pub fn health_command(&self) -> Option<(Vec<String>, std::time::Duration)> {
        if !self.has_healthcheck() {
            return None;
        }
        let h = self.healthcheck.as_ref()?;
        let test: Vec<String> = match h.get("test")? {
            serde_json::Value::String(s) => vec!["CMD-SHELL".into(), s.clone()],
            serde_json::Value::Array(a) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => return None,
        };
        let argv = match test.split_first()? {
            (kind, rest) if kind == "CMD" && !rest.is_empty() => rest.to_vec(),
            (kind, [cmd]) if kind == "CMD-SHELL" => {
                vec!["/bin/sh".into(), "-c".into(), cmd.clone()]
            }
            _ => return None,
        };
        let timeout = h
            .get("timeout")
            .and_then(|t| t.as_str())
            .and_then(go_duration)
            .unwrap_or(std::time::Duration::from_secs(30));
        Some((argv, timeout))
    }

    /// When Docker runs its healthcheck: `None` without one.
    pub fn health_timing(&self) -> Option<HealthTiming> {
        if !self.has_healthcheck() {
            return None;
        }
        let h = self.healthcheck.as_ref()?;
        let get = |key: &str| h.get(key).and_then(|v| v.as_str()).and_then(go_duration);
        Some(HealthTiming {
            // Docker's defaults.
            interval: get("interval").unwrap_or(std::time::Duration::from_secs(30)),
            start_period: get("start_period"),
            start_interval: get("start_interval"),
        })
    }

    /// Each service it depends on, with the condition (`service_started`,
    /// `service_healthy`, `service_completed_successfully`).
    pub fn dependencies(&self) -> Vec<(String, String)> {
        self.depends_on
            .iter()
            .map(|(name, v)| {
                let condition = v
                    .get("condition")
                    .and_then(|c| c.as_str())
                    .unwrap_or("service_started");
                (name.clone(), condition.to_owned())
            })
            .collect()
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

/// When Docker runs a service's healthcheck.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthTiming {
    /// Between checks, and before the first one.
    pub interval: std::time::Duration,
    pub start_period: Option<std::time::Duration>,
    /// Between checks during `start_period` (engine API 1.44, Docker 25, and later).
    pub start_interval: Option<std::time::Duration>,
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
        let json = match cmd.output(&spec.dir) {
            Ok(json) => json,
            // `compose config` needs no engine: a failure is the files', but
            // for a docker without Compose v2 (said by the caller's check).
            Err(process::Error::Failed { stderr, .. })
                if !stderr.contains("is not a docker command")
                    && !stderr.contains("unknown command") =>
            {
                let (first, warnings) = crate::error::refusal(&stderr);
                let files: Vec<String> = spec.files.iter().map(|f| f.to_string()).collect();
                return Err(Error::Refused {
                    files: if files.is_empty() {
                        "the compose file".to_owned()
                    } else {
                        files.join(", ")
                    },
                    first,
                    warnings,
                });
            }
            Err(e) => return Err(e.into()),
        };
        let parse_error = |e: serde_json::Error| Error::Parse {
            command: cmd.to_string(),
            detail: e.to_string(),
        };
        let config: serde_json::Value = serde_json::from_slice(&json).map_err(parse_error)?;
        Stack::from_config(config).map_err(|e| Error::Parse {
            command: cmd.to_string(),
            detail: e.to_string(),
        })
    }

    /// The stack of a model `compose config --format json` printed before.
    pub fn from_config(config: serde_json::Value) -> Result<Stack, serde_json::Error> {
        let mut stack: Stack = serde_json::from_value(config.clone())?;
        stack.config = config;
        Ok(stack)
    }

    /// One service's resolved config (`null` for a service the stack lacks).
    pub fn service_config(&self, service: &str) -> &serde_json::Value {
        &self.config["services"][service]
    }

    /// The services in start order, level by level: a level depends only on
    /// the levels before it. `None` for a dependency cycle (Compose refuses
    /// those anyway).
    pub fn levels(&self) -> Option<Vec<Vec<String>>> {
        let mut level: BTreeMap<&str, usize> = BTreeMap::new();
        // Each pass places every service whose dependencies are placed.
        while level.len() < self.services.len() {
            let before = level.len();
            for (name, s) in &self.services {
                if level.contains_key(name.as_str()) {
                    continue;
                }
                let deps: Vec<&str> = s
                    .depends_on
                    .keys()
                    .map(String::as_str)
                    .filter(|d| self.services.contains_key(*d))
                    .collect();
                if deps.iter().all(|d| level.contains_key(d)) {
                    let l = deps.iter().map(|d| level[d] + 1).max().unwrap_or(0);
                    level.insert(name, l);
                }
            }
            if level.len() == before {
                return None;
            }
        }
        let depth = level.values().max().map_or(0, |m| m + 1);
        let mut out = vec![Vec::new(); depth];
        for (name, l) in level {
            out[l].push(name.to_owned());
        }
        Some(out)
    }

    /// Every host bind mount, by service: what a remote engine cannot see.
    pub fn bind_mounts(&self) -> Vec<BindMount> {
        self.services
            .iter()
            .flat_map(|(name, s)| {
                s.volumes
                    .iter()
                    .filter(|v| v.kind == "bind")
                    .map(move |v| BindMount {
                        service: name.clone(),
                        source: v.source.clone().unwrap_or_default(),
                        target: v.target.clone(),
                        read_only: v.read_only,
                    })
            })
            .collect()
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

/// A Go duration as Compose writes it (`1m30s`, `500ms`, `3s`).
pub fn go_duration(text: &str) -> Option<std::time::Duration> {
    let mut total = 0f64;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stack(json: serde_json::Value) -> Stack {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn health_commands_as_docker_runs_them() {
        let s = stack(serde_json::json!({"name": "p", "services": {
            "db": {"healthcheck": {"test": ["CMD-SHELL", "pg_isready -U postgres"], "timeout": "3s"}},
            "api": {"healthcheck": {"test": ["CMD", "/api", "probe"], "timeout": "1m30s"}},
            "off": {"healthcheck": {"test": ["CMD", "x"], "disable": true}},
            "none": {"healthcheck": {"test": ["NONE"]}},
            "plain": {}
        }}));
        let cmd = |n: &str| s.services[n].health_command();
        assert_eq!(
            cmd("db"),
            Some((
                vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    "pg_isready -U postgres".into()
                ],
                Duration::from_secs(3)
            ))
        );
        assert_eq!(
            cmd("api"),
            Some((vec!["/api".into(), "probe".into()], Duration::from_secs(90)))
        );
        assert_eq!((cmd("off"), cmd("none"), cmd("plain")), (None, None, None));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("soon"), None);
    }

    #[test]
    fn services_start_level_by_level() {
        let s = stack(serde_json::json!({"name": "p", "services": {
            "db": {},
            "migrate": {"depends_on": {"db": {"condition": "service_healthy"}}},
            "api": {"depends_on": {"migrate": {"condition": "service_completed_successfully"}, "db": {}}},
            "proxy": {"depends_on": {"api": {"condition": "service_started"}}},
            "alone": {}
        }}));
        assert_eq!(
            s.levels().unwrap(),
            [
                vec!["alone", "db"],
                vec!["migrate"],
                vec!["api"],
                vec!["proxy"]
            ]
        );
        assert_eq!(
            s.services["api"].dependencies(),
            [
                ("db".to_owned(), "service_started".to_owned()),
                (
                    "migrate".to_owned(),
                    "service_completed_successfully".to_owned()
                )
            ]
        );
        let cycle = stack(serde_json::json!({"name": "p", "services": {
            "a": {"depends_on": {"b": {}}}, "b": {"depends_on": {"a": {}}}
        }}));
        assert_eq!(cycle.levels(), None);
    }
}
