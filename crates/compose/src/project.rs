//! One Compose project: its containers as Compose lists them, its images and
//! how BuildKit built them, and the helpers the other parts of a run share.
//! Up and readiness live in `up.rs`, ports in `ports.rs`, teardown in `teardown.rs`.

use std::collections::BTreeMap;

use camino::Utf8Path;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{ProjectSpec, Stack};
use process::{Cmd, GroupOutput};

/// One container as `docker compose ps --all --format json` describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Container {
    #[serde(rename = "ID")]
    pub id: String,
    pub name: String,
    pub service: String,
    pub state: String,
    #[serde(default)]
    pub health: String,
    #[serde(default)]
    pub exit_code: i32,
    #[serde(default)]
    pub publishers: Option<Vec<Publisher>>,
    /// Compose's labels: `k=v,k=v` as `ps --format json` prints them (an
    /// object in some versions).
    #[serde(default)]
    pub labels: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Publisher {
    #[serde(default, rename = "URL")]
    pub url: String,
    #[serde(default)]
    pub target_port: u16,
    /// 0 when the port is exposed but not published.
    #[serde(default)]
    pub published_port: u16,
    #[serde(default)]
    pub protocol: String,
}

impl Container {
    /// One of its labels.
    pub fn label(&self, key: &str) -> Option<&str> {
        match &self.labels {
            serde_json::Value::String(all) => all.split(',').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == key).then_some(v)
            }),
            serde_json::Value::Object(map) => map.get(key)?.as_str(),
            _ => None,
        }
    }

    /// Its state as a run leaves it: `running`, or `exited 0` for a one-shot
    /// that completed: what a later run compares to know it is untouched.
    pub fn condition(&self) -> String {
        match self.state.as_str() {
            "running" => "running".to_owned(),
            state => format!("{state} {}", self.exit_code),
        }
    }

    /// `HOST:PORT` where the engine publishes this container's TCP `target`
    /// port, as the engine reports it (so ports the engine picked are found
    /// too); one published on every address is reached at `host`.
    pub fn published(&self, target: u16, host: &str) -> Option<String> {
        self.published_as(target, "tcp", host)
    }

    /// Where its `target` port of `protocol` (`tcp`, `udp`) is published.
    pub fn published_as(&self, target: u16, protocol: &str, host: &str) -> Option<String> {
        let p = self.publishers.iter().flatten().find(|p| {
            let proto = if p.protocol.is_empty() {
                "tcp"
            } else {
                p.protocol.as_str()
            };
            p.target_port == target && p.published_port != 0 && proto == protocol
        })?;
        // Published on every address of the engine's machine: reach it at
        // that machine's (this one's loopback for a local engine).
        let host = match p.url.as_str() {
            "" | "0.0.0.0" | "::" => host,
            ip => ip,
        };
        Some(if host.contains(':') {
            format!("[{host}]:{}", p.published_port)
        } else {
            format!("{host}:{}", p.published_port)
        })
    }
}

const NO_DEFAULT_ATTESTATIONS: &str = "BUILDX_NO_DEFAULT_ATTESTATIONS";

/// A loaded project.
#[derive(Debug, Clone)]
pub struct Project {
    pub spec: ProjectSpec,
    pub stack: Stack,
}

impl Project {
    pub fn load(spec: ProjectSpec) -> Result<Project> {
        let stack = Stack::load(&spec)?;
        Ok(Project { spec, stack })
    }

    pub fn name(&self) -> &str {
        &self.stack.name
    }

    pub(crate) fn compose<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let mut all = self.spec.args();
        // The model names the project; use it even when the spec left it to Compose.
        if self.spec.project.is_none() {
            all.extend(["-p".to_owned(), self.stack.name.clone()]);
        }
        all.extend(args.into_iter().map(Into::into));
        let cmd = crate::docker(all)
            .envs(&self.spec.env)
            // Older tools build with BuildKit only when asked; Compose v2 always does.
            .env("DOCKER_BUILDKIT", "1")
            .env("COMPOSE_DOCKER_CLI_BUILD", "1");
        // buildx attaches a provenance attestation, with the build's times, to
        // every image it exports to the containerd image store: a build that
        // the cache answered whole still gets a new image ID, and Compose then
        // recreates containers nothing changed in (measured on Engine 28's
        // containerd store: two cached builds, two IDs; with this, one). A
        // compose file's own `provenance:` still asks for one.
        if std::env::var_os(NO_DEFAULT_ATTESTATIONS).is_none() {
            cmd.env(NO_DEFAULT_ATTESTATIONS, "1")
        } else {
            cmd
        }
    }

    /// `(service, image name)` for every service that builds; Compose names an
    /// image without `image:` after the project and the service.
    pub fn images(&self) -> Vec<(String, String)> {
        self.stack
            .services
            .iter()
            .filter(|(_, s)| s.build.is_some())
            .filter_map(|(name, _)| Some((name.clone(), self.image_of(name)?)))
            .collect()
    }

    /// Writes `images` to `file` (one `docker save`: the layers they share,
    /// a base image's, once), for another engine.
    pub fn save_images(&self, images: &[String], file: &Utf8Path) -> Result<()> {
        let args = ["save", "-o", file.as_str()]
            .map(str::to_owned)
            .into_iter()
            .chain(images.iter().cloned());
        crate::docker(args).output(&self.spec.dir)?;
        Ok(())
    }

    /// Loads what [`Project::save_images`] wrote.
    pub fn load_images(&self, file: &Utf8Path) -> Result<()> {
        crate::docker(["load", "-q", "-i", file.as_str()]).output(&self.spec.dir)?;
        Ok(())
    }

    /// Names image `id` as `image`.
    pub fn tag_image(&self, id: &str, image: &str) -> Result<()> {
        crate::docker(["tag", id, image]).output(&self.spec.dir)?;
        Ok(())
    }

    /// The image `service` runs: its `image:`, or for a service that builds
    /// without one, the name Compose gives it (`<project>-<service>`).
    pub fn image_of(&self, service: &str) -> Option<String> {
        let s = self.stack.services.get(service)?;
        s.image.clone().or_else(|| {
            s.build
                .as_ref()
                .map(|_| format!("{}-{service}", self.name()))
        })
    }
}

/// Every tagged image of the engine: reference (as [`image_key`] writes it)
/// to full image ID. One `docker image ls`, however many images.
pub fn image_ids(dir: &Utf8Path) -> Result<BTreeMap<String, String>> {
    let cmd = crate::docker([
        "image",
        "ls",
        "--no-trunc",
        "--format",
        "{{.Repository}}:{{.Tag}} {{.ID}}",
    ]);
    let text = cmd.text(dir)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(name, _)| !name.contains("<none>"))
        .map(|(name, id)| (image_key(name), id.to_owned()))
        .collect())
}

/// A reference as `docker image ls` shows it: Docker Hub's prefixes dropped,
/// `:latest` when no tag is given (`postgres` and
/// `docker.io/library/postgres:latest` are one image).
pub fn image_key(reference: &str) -> String {
    let short = reference
        .strip_prefix("docker.io/library/")
        .or_else(|| reference.strip_prefix("docker.io/"))
        .or_else(|| reference.strip_prefix("index.docker.io/library/"))
        .unwrap_or(reference);
    let last = short.rsplit('/').next().unwrap_or(short);
    if last.contains(':') || last.contains('@') {
        short.to_owned()
    } else {
        format!("{short}:latest")
    }
}

impl Project {
    /// The project's containers, stopped ones included.
    pub fn ps(&self) -> Result<Vec<Container>> {
        let cmd = self.compose(["ps", "--all", "--format", "json"]);
        let text = cmd.text(&self.spec.dir)?;
        let parse_error = |e: serde_json::Error| Error::Parse {
            command: cmd.to_string(),
            detail: e.to_string(),
        };
        parse_ps(&text).map_err(parse_error)
    }
}

impl Project {
    /// The containers `ids` name, as `ps` would list them, from one `docker
    /// inspect` (the docker CLI starts faster than Compose's); `None` when
    /// one is gone or not this project's, for the caller to list the
    /// project instead.
    pub fn inspect(&self, ids: &[String]) -> Option<Vec<Container>> {
        if ids.is_empty() {
            return None;
        }
        let cmd = crate::docker(
            ["inspect".to_owned()]
                .into_iter()
                .chain(ids.iter().cloned()),
        );
        let text = cmd.text(&self.spec.dir).ok()?;
        from_inspect(self.name(), ids, &text)
    }
}

/// The containers `docker inspect IDS` printed, as `ps` would list them;
/// `None` when one is missing or not `project`'s.
fn from_inspect(project: &str, ids: &[String], text: &str) -> Option<Vec<Container>> {
    let mut inspected: Vec<Inspected> = serde_json::from_str(text).ok()?;
    ids.iter()
        .map(|id| {
            // `ps` names a container by its short ID; inspect gives the whole.
            let at = inspected
                .iter()
                .position(|i| i.id.starts_with(id.as_str()))?;
            let i = inspected.swap_remove(at);
            let labels = i.config.labels.unwrap_or_default();
            let label = |k: &str| labels.get(k).cloned();
            (label("com.docker.compose.project").as_deref() == Some(project)).then_some(())?;
            let publishers = i
                .network_settings
                .ports
                .iter()
                .flatten()
                .flat_map(|(port, bound)| {
                    let (target, protocol) = port.split_once('/').unwrap_or((port, "tcp"));
                    let target: u16 = target.parse().unwrap_or(0);
                    bound.iter().flatten().map(move |b| Publisher {
                        url: b.host_ip.clone(),
                        target_port: target,
                        published_port: b.host_port.parse().unwrap_or(0),
                        protocol: protocol.to_owned(),
                    })
                })
                .collect();
            Some(Container {
                id: id.clone(),
                name: i.name.trim_start_matches('/').to_owned(),
                service: label("com.docker.compose.service")?,
                state: i.state.status,
                health: i.state.health.map(|h| h.status).unwrap_or_default(),
                exit_code: i.state.exit_code,
                publishers: Some(publishers),
                labels: serde_json::to_value(&labels).unwrap_or_default(),
            })
        })
        .collect()
}

/// What `docker inspect` says of a container, the fields `ps` gives.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Inspected {
    id: String,
    name: String,
    state: InspectedState,
    config: InspectedConfig,
    network_settings: InspectedNetwork,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedState {
    status: String,
    exit_code: i32,
    health: Option<InspectedHealth>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedHealth {
    status: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedConfig {
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InspectedNetwork {
    #[serde(default)]
    ports: Option<BTreeMap<String, Option<Vec<Bound>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Bound {
    #[serde(default)]
    host_ip: String,
    #[serde(default)]
    host_port: String,
}

/// `compose ps --format json`: Compose up to 2.20 prints one array, later
/// versions (5.x too) one object per line.
fn parse_ps(text: &str) -> Result<Vec<Container>, serde_json::Error> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text);
    }
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect()
}

pub(crate) fn write_file(path: &Utf8Path, text: &str) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_string(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| Error::Io {
        path: path.to_string(),
        source,
    })
}

pub(crate) fn interrupted_check(out: &GroupOutput) -> Result<()> {
    if process::interrupt::is_requested() && !out.success() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

pub(crate) fn status(out: &GroupOutput) -> String {
    out.code.map_or_else(
        || "killed by a signal".to_owned(),
        |c| format!("exit status {c}"),
    )
}

pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inspected_containers_read_as_ps_lists_them() {
        // Recorded on Engine 20.10 from one project (`rec`): a running,
        // healthy service publishing 8080, and a one-shot that exited 3;
        // `compose ps --format json` and `docker inspect` of the same IDs.
        for engine in ["engine-20.10"] {
            let listed = parse_ps(&crate::build::tests::recorded(&format!(
                "{engine}/ps-inspected.json"
            )))
            .unwrap();
            let ids: Vec<String> = listed.iter().map(|c| c.id.clone()).collect();
            let text = crate::build::tests::recorded(&format!("{engine}/inspect.json"));
            let inspected = from_inspect("rec", &ids, &text).unwrap();
            for (l, i) in listed.iter().zip(&inspected) {
                assert_eq!(
                    (&l.id, &l.name, &l.service, &l.state, &l.health, l.exit_code),
                    (&i.id, &i.name, &i.service, &i.state, &i.health, i.exit_code),
                    "{engine}"
                );
                assert_eq!(
                    l.published(8080, "127.0.0.1"),
                    i.published(8080, "127.0.0.1")
                );
                assert_eq!(
                    l.label("com.docker.compose.service"),
                    i.label("com.docker.compose.service")
                );
            }
            // Not this project's, or one missing: the caller lists the project.
            assert!(from_inspect("other", &ids, &text).is_none());
            let gone = [ids[0].clone(), "0123456789ab".to_owned()];
            assert!(from_inspect("rec", &gone, &text).is_none());
        }
    }

    #[test]
    fn image_references_are_keyed_as_the_engine_lists_them() {
        let table = [
            ("postgres", "postgres:latest"),
            ("postgres:16", "postgres:16"),
            ("docker.io/library/postgres:16", "postgres:16"),
            ("docker.io/bitnami/redis", "bitnami/redis:latest"),
            ("registry:5000/team/app", "registry:5000/team/app:latest"),
            ("registry:5000/team/app:v1", "registry:5000/team/app:v1"),
            ("e2e-main-backend", "e2e-main-backend:latest"),
        ];
        for (reference, key) in table {
            assert_eq!(image_key(reference), key, "{reference}");
        }
    }

    #[test]
    fn ps_output_recorded_on_each_engine() {
        // Recorded: `docker compose ps --all --format json` (Compose 2.40.3)
        // of a running service publishing 8080 on 127.0.0.1 and a one-shot
        // that exited 3, on each engine of the matrix.
        for engine in ["engine-20.10", "engine-28", "podman-5"] {
            let got =
                parse_ps(&crate::build::tests::recorded(&format!("{engine}/ps.json"))).unwrap();
            assert_eq!(got.len(), 2, "{engine}");
            let job = got.iter().find(|c| c.service == "job").unwrap();
            assert_eq!(job.condition(), "exited 3", "{engine}");
            let web = got.iter().find(|c| c.service == "web").unwrap();
            assert_eq!(web.state, "running", "{engine}");
            let published = web.published(8080, "127.0.0.1").unwrap_or_default();
            assert!(published.starts_with("127.0.0.1:"), "{engine}: {published}");
        }
    }

    #[test]
    fn ps_output_of_old_and_new_compose() {
        // Not recorded (neither runs here): Compose 5.x prints one object per
        // line as 2.40 does, with more fields, which are ignored; Compose up
        // to 2.20 printed one array. Written from their documented formats.
        let lines = r#"{"Command":"\"/demo-backend\"","CreatedAt":"2026-11-23 10:00:00 +0000 UTC","ExitCode":0,"Health":"healthy","ID":"0f1e","Image":"e2e-main-backend","Labels":"com.docker.compose.project=e2e-main","Name":"e2e-main-backend-1","Project":"e2e-main","Publishers":[],"Service":"backend","State":"running","Status":"Up 2 seconds (healthy)"}
{"ExitCode":0,"Health":"","ID":"9a8b","Name":"e2e-main-gateway-1","Project":"e2e-main","Publishers":[{"URL":"127.0.0.1","TargetPort":8443,"PublishedPort":18443,"Protocol":"tcp"},{"URL":"::1","TargetPort":8443,"PublishedPort":18443,"Protocol":"tcp"}],"Service":"gateway","State":"running"}
"#;
        let got = parse_ps(lines).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[1].published(8443, "127.0.0.1").as_deref(),
            Some("127.0.0.1:18443")
        );
        assert_eq!(got[0].health, "healthy");
        // Compose up to 2.20: one array; `Publishers` may be null.
        let array = r#"[{"ID":"0f1e","Name":"x-db-1","Service":"db","State":"exited","ExitCode":3,"Publishers":null}]"#;
        let got = parse_ps(array).unwrap();
        assert_eq!(got[0].condition(), "exited 3");
        assert!(parse_ps("").unwrap().is_empty());
    }
}
