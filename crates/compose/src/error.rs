//! The one error type of this crate.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "`{command}` could not start: {source}; is the docker CLI installed and on PATH? (Docker Engine or Desktop: https://docs.docker.com/engine/install/)"
    )]
    Spawn {
        command: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error(
        "the Docker daemon does not answer (`docker info` failed: {detail}); start it (`sudo systemctl start docker`, or Docker Desktop), or point DOCKER_HOST at one that runs"
    )]
    NoDaemon { detail: String },
    #[error("{}", crate::versions::api_refusal_fix(.client, .min))]
    ClientTooOld { client: String, min: String },
    #[error(
        "Docker Compose v2 is missing: `docker compose version` failed{v1}; install the compose plugin (https://docs.docker.com/compose/install/linux/)"
    )]
    NoCompose { v1: String },
    #[error("cannot read or write {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed: {first}{detail}")]
    UpFailed {
        command: String,
        first: String,
        detail: String,
    },
    #[error("service {service} failed: {detail}")]
    ServiceFailed { service: String, detail: String },
    #[error("not ready after {seconds} s, still waiting for: {waiting}")]
    NotReady { waiting: String, seconds: u64 },
    #[error(
        "host port {port} (published by service {service}) is taken by {holder}; free it or change the port"
    )]
    PortTaken {
        port: u16,
        service: String,
        holder: String,
    },
    #[error(
        "the Docker engine went away during `{command}` ({detail}); check it with `docker info`, \
         then run again: the next run takes over what this one left"
    )]
    EngineGone { command: String, detail: String },
    /// Compose refused the project's files (a schema error, an undefined
    /// secret, a required variable unset): the user's to fix. Its error
    /// first, naming the files; its warnings after, each once.
    #[error("{files}: {first}{}", folded(.warnings))]
    Refused {
        files: String,
        first: String,
        warnings: Vec<(String, usize)>,
    },
    /// The engine's disk filled up while it worked (a build's layers, a
    /// pull): nothing of the Dockerfile's or the stack's doing.
    #[error(
        "the engine's disk is full: `{sign}` during `{command}`; free space where the engine \
         keeps its data (`docker builder prune`, `docker image prune`, or the config's \
         disk.build_cache and disk.images budgets), then run again (whole log: {log})"
    )]
    DiskFull {
        command: String,
        sign: String,
        log: String,
    },
    #[error("interrupted")]
    Interrupted,
    #[error("unexpected output from `{command}`: {detail}")]
    Parse { command: String, detail: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A process error in Docker's words: a docker CLI that cannot start gets the
/// hint that installs it.
impl From<process::Error> for Error {
    fn from(e: process::Error) -> Error {
        match e {
            process::Error::Spawn {
                command, source, ..
            } => Error::Spawn { command, source },
            process::Error::Failed {
                command, stderr, ..
            } if engine_gone(&stderr).is_some() => Error::EngineGone {
                command,
                detail: engine_gone(&stderr).unwrap_or_default(),
            },
            process::Error::Failed {
                command,
                status,
                stderr,
            } => Error::Failed {
                command,
                status,
                stderr,
            },
        }
    }
}

/// The line of a docker command's output that says the daemon cannot be
/// reached (it stopped, restarted, or its socket went), if one does.
pub fn engine_gone(output: &str) -> Option<String> {
    const SIGNS: [&str; 4] = [
        "Cannot connect to the Docker daemon",
        "Is the docker daemon running",
        "error during connect",
        "connection reset by peer",
    ];
    output
        .lines()
        .find(|l| SIGNS.iter().any(|s| l.contains(s)))
        .map(|l| l.trim().to_owned())
}

/// The line of a command's output that says the engine's disk is full.
pub fn disk_full(output: &str) -> Option<String> {
    output
        .lines()
        .find(|l| l.to_ascii_lowercase().contains("no space left on device"))
        .map(|l| l.trim().to_owned())
}

/// What the engine lacks, said with the fix, when a build's log shows a
/// failure of the engine's own making rather than of the Dockerfile's.
pub fn engine_capability(log: &str) -> Option<&'static str> {
    const KNOWN: [(&str, &str); 2] = [
        (
            "error setting rlimit type 7: operation not permitted",
            "the engine cannot give RUN steps the open-file limit its builder asks for (Podman's \
             buildah asks 1048576 for root): raise the engine's hard limit (LimitNOFILE=1048576 in \
             podman.service, or `ulimit -Hn 1048576` before `podman system service`)",
        ),
        (
            "moby/buildkit",
            "Compose tried to start a BuildKit container (a pull of moby/buildkit): the engine serves \
             no BuildKit of its own (Podman); build with COMPOSE_BAKE=false DOCKER_BUILDKIT=0, which \
             the e2e run does by itself on Podman",
        ),
    ];
    KNOWN
        .iter()
        .find(|(sign, _)| log.contains(sign))
        .map(|(_, fix)| *fix)
}

/// Compose's warnings, after its error: each once, with how often it came.
fn folded(warnings: &[(String, usize)]) -> String {
    if warnings.is_empty() {
        return String::new();
    }
    let said: Vec<String> = warnings
        .iter()
        .map(|(w, n)| match n {
            1 => w.clone(),
            n => format!("{w} ({n} times)"),
        })
        .collect();
    format!("\n  Compose also warned: {}", said.join("; "))
}

/// Compose's stderr when it refused a project's files: its error (the lines
/// that are not warnings) and its warnings (`level=warning msg="..."`),
/// each once with its count, in the order they came.
pub(crate) fn refusal(stderr: &str) -> (String, Vec<(String, usize)>) {
    let mut warnings: Vec<(String, usize)> = Vec::new();
    let mut errors = Vec::new();
    for line in stderr.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once("level=warning msg=") {
            Some((_, msg)) => {
                let msg = msg.trim_matches('"').replace("\\\"", "\"");
                match warnings.iter_mut().find(|(w, _)| *w == msg) {
                    Some((_, n)) => *n += 1,
                    None => warnings.push((msg, 1)),
                }
            }
            None => errors.push(line),
        }
    }
    let first = if errors.is_empty() {
        "Compose refused it without saying why".to_owned()
    } else {
        errors.join("\n  ")
    };
    (first, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_engine_that_lacks_a_capability_is_named_with_the_fix() {
        // Recorded: Podman 5.8.6's classic build on a machine whose hard
        // RLIMIT_NOFILE is 20000.
        let log = "error running container: from /usr/bin/runc creating container for [/bin/sh -c cat /a.txt > /b.txt]: time=\"2026-12-02T06:59:55Z\" level=error msg=\"runc create failed: unable to start container process: error during container init: error setting rlimits for ready process: error setting rlimit type 7: operation not permitted\"";
        assert!(
            engine_capability(log)
                .unwrap()
                .contains("LimitNOFILE=1048576")
        );
        assert_eq!(
            engine_capability(
                "#8 ERROR: process \"/bin/sh -c false\" did not complete successfully"
            ),
            None
        );
    }

    #[test]
    fn a_daemon_that_went_away_is_told_apart_from_a_failing_command() {
        let gone = process::Error::Failed {
            command: "docker compose ps".into(),
            status: "exit status: 1".into(),
            stderr: "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?".into(),
        };
        let e = Error::from(gone);
        assert!(matches!(e, Error::EngineGone { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("went away during `docker compose ps`"),
            "{e}"
        );
        let failed = process::Error::Failed {
            command: "docker compose up".into(),
            status: "exit status: 1".into(),
            stderr: "Error response from daemon: pull access denied".into(),
        };
        assert!(matches!(Error::from(failed), Error::Failed { .. }));
    }

    #[test]
    fn a_refusal_reads_as_its_error_first_and_its_warnings_once() {
        // Recorded: Compose 2.40.3 refusing a file with an undefined secret.
        let stderr = r#"time="2026-12-07T17:51:08Z" level=warning msg="The \"FERNET_KEY\" variable is not set. Defaulting to a blank string."
time="2026-12-07T17:51:08Z" level=warning msg="The \"OTHER\" variable is not set. Defaulting to a blank string."
time="2026-12-07T17:51:08Z" level=warning msg="The \"FERNET_KEY\" variable is not set. Defaulting to a blank string."
service "a" refers to undefined secret nosuch: invalid compose project
"#;
        let (first, warnings) = refusal(stderr);
        let e = Error::Refused {
            files: "compose.yaml".into(),
            first,
            warnings,
        };
        let shown = e.to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines,
            [
                r#"compose.yaml: service "a" refers to undefined secret nosuch: invalid compose project"#,
                r#"  Compose also warned: The "FERNET_KEY" variable is not set. Defaulting to a blank string. (2 times); The "OTHER" variable is not set. Defaulting to a blank string."#,
            ]
        );
    }
}
