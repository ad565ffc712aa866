//! Building a project's images: `compose build` with BuildKit's plain
//! progress read as it comes (each instruction step told to the caller as
//! it starts), and read again at the end to tell which services ran a step
//! (built) and which the cache answered whole.

use std::collections::{BTreeMap, BTreeSet};

use camino::Utf8Path;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::project::{Project, interrupted_check, status, tail, write_file};

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

impl Project {
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
        let group =
            // Compose's own builder writes its progress to stderr, bake to stdout.
            cmd.start_group_streaming(&self.spec.dir, true, process::Stream::Both, move |l| {
                let _ = tx.send(l.to_owned());
            })?;
        let mut spans: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        // The reading thread hangs up at the end of the output: then it has exited.
        for line in rx {
            if let Some(step) = step_line(&line, &names, one) {
                let now = unix_now();
                let span = spans.entry(step.service.to_owned()).or_insert((now, now));
                span.1 = now;
                on_step(step.service, step.label);
            }
        }
        let out = group.wait()?;
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
            if let Some(sign) = crate::error::disk_full(&text) {
                return Err(Error::DiskFull {
                    command: cmd.to_string(),
                    sign,
                    log: log.to_string(),
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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

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

    pub(crate) fn recorded(name: &str) -> String {
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
