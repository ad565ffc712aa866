//! One Compose project: its containers as Compose lists them, its images and
//! how BuildKit built them, and the helpers the other parts of a run share.
//! Up and readiness live in `up.rs`, ports in `ports.rs`, teardown in `teardown.rs`.

use std::collections::{BTreeMap, BTreeSet};

use camino::Utf8Path;
use serde::{Deserialize, Serialize};

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
        let p =
            self.publishers.iter().flatten().find(|p| {
                p.target_port == target && p.published_port != 0 && p.protocol != "udp"
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

/// Whether a service's image changed in a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageBuild {
    pub service: String,
    pub image: String,
    /// `false` when BuildKit's cache gave the same image as before.
    pub built: bool,
    /// Not built at all: nothing it is built from changed since the last run.
    #[serde(default)]
    pub unchanged: bool,
    /// Whether the build log named any instruction step after this service.
    /// bake runs a step that several targets share once, under one target's
    /// name: a service with no step of its own is judged by its image ID.
    #[serde(skip)]
    pub steps_named: bool,
    /// When its first and last steps started (seconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span: Option<(f64, f64)>,
    /// Why it was built: the first of its inputs that changed since the
    /// last build (`api/src/main.rs`, the Dockerfile, build argument `X`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
}

/// Now, in seconds since the epoch.
pub(crate) fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
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

    /// Builds the images of `services` (every service that builds, when
    /// `None`) with BuildKit, writing the whole log to `log`; `on_step`
    /// hears each instruction step as it starts (service, `[2/3] COPY ...`).
    /// On failure the error holds the log's tail, where the failing step is.
    pub fn build(
        &self,
        log: &Utf8Path,
        services: Option<&[String]>,
        on_step: &mut dyn FnMut(&str, &str),
    ) -> Result<Vec<ImageBuild>> {
        let only = services.unwrap_or_default();
        let cmd = self.compose(
            ["--progress", "plain", "build"]
                .map(str::to_owned)
                .into_iter()
                .chain(only.iter().cloned()),
        );
        let building: Vec<(String, String)> = self
            .images()
            .into_iter()
            .filter(|(service, _)| services.is_none() || only.contains(service))
            .collect();
        let names: Vec<&str> = building.iter().map(|(s, _)| s.as_str()).collect();
        let one = match names.as_slice() {
            [one] => Some(*one),
            _ => None,
        };
        // Lines come on the reading thread; steps are told from here.
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let mut group =
            cmd.start_group_streaming(&self.spec.dir, true, process::Stream::Stderr, move |l| {
                let _ = tx.send(l.to_owned());
            })?;
        let mut spans: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        let mut tell = |lines: Vec<String>| {
            for line in lines {
                if let Some(step) = step_line(&line, &names, one) {
                    let now = unix_now();
                    let span = spans.entry(step.service.to_owned()).or_insert((now, now));
                    span.1 = now;
                    on_step(step.service, step.label);
                }
            }
        };
        let out = loop {
            tell(rx.try_iter().collect());
            if let Some(out) = group.try_wait()? {
                tell(rx.try_iter().collect());
                break out;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        interrupted_check(&out)?;
        let text = format!("{}{}", out.stdout, out.stderr);
        write_file(log, &text)?;
        if !out.success() {
            if let Some(detail) = crate::error::engine_gone(&text) {
                return Err(Error::EngineGone {
                    command: cmd.to_string(),
                    detail,
                });
            }
            let lacks = crate::error::engine_capability(&text)
                .map(|fix| format!("\nthe engine, not the Dockerfile: {fix}"))
                .unwrap_or_default();
            return Err(Error::Failed {
                command: cmd.to_string(),
                status: status(&out),
                stderr: format!("{}\n(whole log: {log}){lacks}", tail(&text, 40)),
            });
        }
        // The classic builder (Podman) prints `STEP k/n` lines of parallel
        // builds interleaved and unnamed: no step is anyone's, and each
        // image is judged by its ID.
        let classic = text.lines().any(|l| l.starts_with("STEP 1/"));
        let steps = if classic {
            Steps::default()
        } else {
            steps_of(&text, &names)
        };
        Ok(building
            .into_iter()
            .map(|(service, image)| ImageBuild {
                built: steps.ran.contains(&service),
                steps_named: steps.named.contains(&service),
                unchanged: false,
                span: spans.get(&service).copied(),
                why: None,
                service,
                image,
            })
            .collect())
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

/// What a build log says of each service's Dockerfile instructions.
#[derive(Debug, Default, PartialEq, Eq)]
struct Steps {
    /// Services for which BuildKit ran at least one instruction.
    ran: BTreeSet<String>,
    /// Services that at least one instruction step is named after.
    named: BTreeSet<String>,
}

/// Read from `--progress plain`: `#4 [backend 1/2] COPY ...` names step 4 and
/// its service, and `#4 CACHED` says the cache answered it. Image IDs cannot
/// tell this: two projects building one tag at once can each miss the cache,
/// and later hits may return either of the two equal images. bake names no
/// target when it builds one (`#4 [1/2] COPY ...`): such a step is the one
/// service's in `building`.
fn steps_of(log: &str, building: &[&str]) -> Steps {
    let mut service_of: BTreeMap<&str, &str> = BTreeMap::new();
    let mut cached: BTreeSet<&str> = BTreeSet::new();
    let only = match building {
        [one] => Some(*one),
        _ => None,
    };
    for line in log.lines() {
        let Some((step, rest)) = line.strip_prefix('#').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        if rest == "CACHED" {
            cached.insert(step);
            continue;
        }
        if let Some(s) = step_line(line, building, only) {
            service_of.insert(s.id, s.service);
        }
    }
    Steps {
        named: service_of.values().map(|s| (*s).to_owned()).collect(),
        ran: service_of
            .iter()
            .filter(|(step, _)| !cached.contains(*step))
            .map(|(_, s)| (*s).to_owned())
            .collect(),
    }
}

/// One instruction step of `--progress plain`: `#4 [backend 2/3] COPY ...`.
#[derive(Debug, PartialEq, Eq)]
struct StepLine<'a> {
    id: &'a str,
    service: &'a str,
    /// `[2/3] COPY bin/x /x`, as the user reads it.
    label: &'a str,
}

/// The step a line starts, and whose: `[service k/n]`, `[service stage k/n]`,
/// bake's lone `[k/n]` or `[stage k/n]` (the one service building, when
/// there is one). `[service internal]` is no instruction, and FROM resolves
/// a base image: it runs nothing.
fn step_line<'a>(
    line: &'a str,
    building: &[&'a str],
    only: Option<&'a str>,
) -> Option<StepLine<'a>> {
    let (id, rest) = line.strip_prefix('#')?.split_once(' ')?;
    let (label, instruction) = rest.strip_prefix('[')?.split_once("] ")?;
    let words: Vec<&str> = label.split(' ').collect();
    if !words.last().is_some_and(|k| k.contains('/')) || instruction.starts_with("FROM ") {
        return None;
    }
    let service = match (words.first(), only) {
        (Some(first), _) if building.contains(first) => *first,
        (_, Some(one)) => one,
        (Some(first), None) => *first,
        (None, None) => return None,
    };
    Some(StepLine {
        id,
        service,
        label: rest,
    })
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
            let got = parse_ps(&recorded(&format!("{engine}/ps.json"))).unwrap();
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

    #[test]
    fn buildkit_progress_tells_which_services_ran_steps() {
        // Trimmed from real `docker compose --progress plain build` output.
        let log = "\
#3 [backend internal] load build context
#3 transferring context: 4.04MB 0.0s done
#3 DONE 0.0s

#4 [backend 1/1] COPY bin/demo-backend /demo-backend
#4 CACHED

#5 [backend] exporting to image
#5 DONE 0.0s

#9 [gateway 1/1] COPY bin/demo-gateway /demo-gateway
#9 DONE 0.1s

#11 [api builder 1/3] FROM docker.io/library/rust:1.95
#11 DONE 0.0s

#12 [api builder 2/3] RUN cargo build
#12 CACHED

#13 [api stage-1 3/3] COPY --from=builder /app /app
#13 CACHED
";
        let steps = steps_of(log, &["backend", "gateway", "api"]);
        assert_eq!(steps.ran.into_iter().collect::<Vec<_>>(), ["gateway"]);
        assert_eq!(
            steps.named.into_iter().collect::<Vec<_>>(),
            ["api", "backend", "gateway"]
        );
        assert_eq!(steps_of("", &["api"]), Steps::default());
    }

    fn recorded(name: &str) -> String {
        let path = format!("{}/tests/recorded/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn ran(log: &str, building: &[&str]) -> Vec<String> {
        steps_of(log, building).ran.into_iter().collect()
    }

    #[test]
    fn bake_progress_on_engine_28_tells_which_services_ran_steps() {
        // Recorded: Compose 2.40.3 through buildx 0.29.1 bake on Engine 28,
        // two services from one Dockerfile and context (`web` has an unused
        // build argument), then one of them alone.
        let both = ["api", "web"];
        let built = recorded("engine-28/bake-two-built.log");
        // bake ran the shared steps once, under api's name: web has no step
        // of its own, so the build phase judges it by its image ID.
        assert_eq!(ran(&built, &both), ["api"]);
        assert!(!steps_of(&built, &both).named.contains("web"));
        let cached = recorded("engine-28/bake-two-cached.log");
        assert!(ran(&cached, &both).is_empty());
        // One target: bake names no service (`#7 [2/3] COPY a.txt /a.txt`).
        let one = recorded("engine-28/bake-one-built.log");
        assert!(one.contains("] COPY a.txt") && !one.contains("[web 2/3]"));
        assert_eq!(ran(&one, &["web"]), ["web"]);
        assert!(ran(&recorded("engine-28/bake-one-cached.log"), &["web"]).is_empty());
    }

    #[test]
    fn embedded_builder_progress_on_engine_20_10_tells_which_services_ran_steps() {
        // Recorded: Compose 2.40.3's own BuildKit client on Engine 20.10.
        // Its BuildKit shares the steps of two equal targets too.
        let both = ["api", "web"];
        let built = recorded("engine-20.10/build-two-built.log");
        assert_eq!(ran(&built, &both), ["api"]);
        assert!(!steps_of(&built, &both).named.contains("web"));
        assert!(ran(&recorded("engine-20.10/build-two-cached.log"), &both).is_empty());
        assert_eq!(
            ran(&recorded("engine-20.10/build-one-built.log"), &["web"]),
            ["web"]
        );
    }
}
