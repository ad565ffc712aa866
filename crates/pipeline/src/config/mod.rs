//! The e2e config (`e2e.yaml`): every key optional, unknown keys and wrong
//! types refused with their line. Values are parsed once, here, into the types
//! the phases use (a policy, a size, a probe), never re-read as strings.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use compose::{Policy, Probe};
use serde::{Deserialize, Deserializer};

use crate::workspace::Workspace;

mod certs;

/// The whole config; paths inside it are relative to the file's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub compose: ComposeConfig,
    pub context: ContextConfig,
    /// `None` when the file has no `certs:` section: the stack uses no
    /// certificates, and the certs phase is skipped.
    #[serde(deserialize_with = "present_means_some")]
    pub certs: Option<CertsConfig>,
    /// Host-built static binaries copied into build contexts before the build.
    pub stage: Vec<StageConfig>,
    pub readiness: ReadinessConfig,
    pub tests: TestsConfig,
    pub teardown: TeardownConfig,
    /// How many run folders (`<target>/e2e/runs/`) are kept, and how long.
    pub runs: RunsConfig,
    /// The engine's disk: a floor checked before a run, budgets kept after.
    pub disk: DiskConfig,
    /// The folder the file lives in (not a key).
    #[serde(skip)]
    pub base: Utf8PathBuf,
    /// The file itself, for messages (not a key).
    #[serde(skip)]
    pub path: Utf8PathBuf,
    /// The workspace the file belongs to (not a key): default folders live there.
    #[serde(skip)]
    pub workspace: Option<Workspace>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComposeConfig {
    /// Compose files, in order, as `docker compose -f` takes them.
    pub files: Vec<Utf8PathBuf>,
    /// Project name; default: `e2e-<workspace folder>`, unique per run under CI.
    pub project: Option<String>,
    pub profiles: Vec<String>,
    /// Variables for Compose's interpolation (ports, tags), over the environment's.
    pub env: BTreeMap<String, String>,
    /// Publish every port on a host port the engine picks (an override file
    /// the tool writes; the compose file stays as it is), so runs of one
    /// stack can share an engine. `{service:port}` follows the engine.
    pub ephemeral_ports: bool,
    /// Where published ports answer from here; default: the remote engine's
    /// host (`DOCKER_HOST`, the docker context), else 127.0.0.1.
    pub publish_host: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextConfig {
    /// Artifact patterns in `.dockerignore` syntax, relative to each context.
    pub artifacts: Vec<String>,
    /// Fail when a context sends more than this (`50MB`, `1GiB`).
    pub budget: Option<build_context::Size>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertsConfig {
    /// Where `ca.crt` and the server (and client) certificate live: mountable.
    /// Default: `<target dir>/e2e/certs`.
    pub dir: Option<Utf8PathBuf>,
    /// Where the CA's private key lives: never mounted, never in a context.
    /// Default: `<target dir>/e2e/ca`.
    pub ca_key_dir: Option<Utf8PathBuf>,
    /// Names and addresses the server certificate must cover, besides the
    /// defaults (localhost, 127.0.0.1 and every compose service name).
    pub hosts: Vec<String>,
    pub validity_days: u32,
    /// Renew a certificate that expires within this many days.
    pub renew_within_days: u32,
    /// Also issue a client certificate for mutual TLS.
    pub client: bool,
}

/// One binary to build for the host's Linux target, statically, and copy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// The workspace package whose binary (of the same name) is staged.
    pub package: String,
    /// The folder to copy it into, relative to this file.
    pub to: Utf8PathBuf,
    /// The cargo profile to build it with.
    #[serde(default = "release")]
    pub profile: String,
}

fn release() -> String {
    "release".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadinessConfig {
    /// How long services may take to become ready, in seconds.
    pub timeout_s: u64,
    /// How a service is judged ready, when not by the default: its
    /// healthcheck; else, with published ports, a TCP connection that stays
    /// open on each; else running (or exited 0 for a one-shot).
    pub services: BTreeMap<String, Probe>,
    /// Show each service's log lines while the stack starts, until it is
    /// ready (`--no-logs` turns them off for a run). They are kept in the
    /// run folder's `logs/` either way.
    pub logs: bool,
}

impl Default for ReadinessConfig {
    fn default() -> ReadinessConfig {
        ReadinessConfig {
            timeout_s: 120,
            services: BTreeMap::new(),
            logs: true,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestsConfig {
    /// The nextest profile of the E2E tests; supplied by the tool when the
    /// workspace's `.config/nextest.toml` does not define it.
    pub profile: String,
    /// A filterset (`-E`) used when the command line gives none.
    pub filterset: Option<String>,
    /// The packages nextest builds and lists (`-p`); empty means the workspace.
    pub packages: Vec<String>,
    /// Variables for the tests; `{service:port}` becomes the published `HOST:PORT`.
    pub env: BTreeMap<String, String>,
}

impl Default for TestsConfig {
    fn default() -> TestsConfig {
        TestsConfig {
            profile: "e2e".into(),
            filterset: None,
            packages: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeardownConfig {
    /// keep, stop, down or purge; default: stop, or purge when CI is set.
    pub policy: Option<Policy>,
    /// Seconds each container gets after SIGTERM before it is killed.
    pub grace_s: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskConfig {
    /// Preflight fails when the engine's data folder has less free space
    /// (a local engine; a remote one cannot be asked).
    pub min_free: build_context::Size,
    /// After a run, BuildKit's cache is pruned down to this (oldest first).
    pub build_cache: Option<build_context::Size>,
    /// After a run, the images of this workspace's projects beyond this go,
    /// oldest first (never one a container uses).
    pub images: Option<build_context::Size>,
}

impl Default for DiskConfig {
    fn default() -> DiskConfig {
        DiskConfig {
            min_free: build_context::Size(1 << 30),
            build_cache: None,
            images: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunsConfig {
    /// The newest run folders kept (the current run's always is).
    pub keep: usize,
    /// Older run folders go whatever their number.
    pub max_age_days: u64,
}

impl Default for RunsConfig {
    fn default() -> RunsConfig {
        RunsConfig {
            keep: 20,
            max_age_days: 14,
        }
    }
}

impl Default for TeardownConfig {
    fn default() -> TeardownConfig {
        TeardownConfig {
            policy: None,
            grace_s: 2,
        }
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            compose: ComposeConfig::default(),
            context: ContextConfig::default(),
            certs: None,
            stage: Vec::new(),
            readiness: ReadinessConfig::default(),
            tests: TestsConfig::default(),
            teardown: TeardownConfig::default(),
            runs: RunsConfig::default(),
            disk: DiskConfig::default(),
            base: Utf8PathBuf::from("."),
            path: Utf8PathBuf::from("e2e.yaml"),
            workspace: None,
        }
    }
}

impl Default for ComposeConfig {
    fn default() -> ComposeConfig {
        ComposeConfig {
            files: vec!["compose.yaml".into()],
            project: None,
            profiles: Vec::new(),
            env: BTreeMap::new(),
            ephemeral_ports: false,
            publish_host: None,
        }
    }
}

impl Default for ContextConfig {
    fn default() -> ContextConfig {
        ContextConfig {
            artifacts: build_context::artifacts::default_patterns(),
            budget: None,
        }
    }
}

impl Default for CertsConfig {
    fn default() -> CertsConfig {
        CertsConfig {
            dir: None,
            ca_key_dir: None,
            hosts: Vec::new(),
            validity_days: 90,
            renew_within_days: 14,
            client: false,
        }
    }
}

/// A section that is present, even empty (`certs:`), is `Some`, with defaults.
fn present_means_some<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Some(Option::<T>::deserialize(d)?.unwrap_or_default()))
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}; pass an existing file with --config")]
    Read {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Invalid {
        path: Utf8PathBuf,
        line: usize,
        message: String,
    },
    #[error("{path}: {message}")]
    Mismatch { path: Utf8PathBuf, message: String },
}

impl Config {
    /// Reads and checks a config file of `workspace`.
    pub fn load(path: &Utf8Path, workspace: &Workspace) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config = Config::parse(path, &text)?;
        let dir = path
            .parent()
            .filter(|p| !p.as_str().is_empty())
            .unwrap_or(Utf8Path::new("."));
        config.base = dir.canonicalize_utf8().unwrap_or_else(|_| dir.to_owned());
        config.workspace = Some(workspace.clone());
        // Where ports answer is the engine's business, asked by every command
        // (readiness, tests, doctor, the certificate's names): set it once here.
        Ok(config)
    }

    /// Parses config text; `path` names the file in errors and messages.
    pub fn parse(path: &Utf8Path, text: &str) -> Result<Config, ConfigError> {
        let invalid = |line, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            line,
            message,
        };
        // An empty file (or one of comments only) is all defaults.
        let mut config: Config = match serde_yaml::from_str::<Option<Config>>(text) {
            Ok(c) => c.unwrap_or_default(),
            Err(e) => {
                let line = e.location().map_or(1, |l| l.line());
                return Err(invalid(line, e.to_string()));
            }
        };
        config.path = path.to_owned();
        if let Some(c) = &config.certs
            && c.renew_within_days >= c.validity_days
        {
            return Err(ConfigError::Mismatch {
                path: path.to_owned(),
                message: format!(
                    "certs.renew_within_days ({}) must be below certs.validity_days ({}), or every run would renew",
                    c.renew_within_days, c.validity_days
                ),
            });
        }
        Ok(config)
    }

    /// A path from the config, resolved against the config's folder.
    pub fn resolve(&self, p: &Utf8Path) -> Utf8PathBuf {
        normalize(&self.base.join(p))
    }

    /// Where cargo builds: the workspace's target folder.
    pub fn target_dir(&self) -> Utf8PathBuf {
        self.workspace
            .as_ref()
            .map_or_else(|| self.base.join("target"), |w| w.target_dir.clone())
    }

    /// The project name: the flag, else the config's, else the workspace's
    /// stable one (so a stack can be reused); made unique per run under CI.
    pub fn project_name(&self, flag: Option<&str>, ci: bool) -> String {
        if let Some(name) = flag {
            return name.to_owned();
        }
        let base = self.compose.project.clone().unwrap_or_else(|| {
            self.workspace
                .as_ref()
                .map_or_else(|| "e2e-stack".into(), Workspace::default_project)
        });
        if ci {
            format!("{base}-{}-{}", std::process::id(), unix_time() % 100_000)
        } else {
            base
        }
    }

    /// The teardown policy when no flag chose one: the config's, else `purge`
    /// under CI and `stop` elsewhere.
    pub fn default_policy(&self, ci: bool) -> Policy {
        self.teardown
            .policy
            .unwrap_or(if ci { Policy::Purge } else { Policy::Stop })
    }

    /// The compose project this config describes. Its commands run in the
    /// workspace root with the files named from there, so every command the
    /// tool prints pastes into a shell there. With certificates,
    /// `E2E_CERTS_DIR` is set for interpolation, so a compose file can mount
    /// the certs phase's folder.
    pub fn project_spec(&self, project: Option<String>) -> compose::ProjectSpec {
        let (dir, files) = match &self.workspace {
            Some(ws) => (
                ws.root.clone(),
                self.compose
                    .files
                    .iter()
                    .map(|f| ws.shown(&self.resolve(f)))
                    .collect(),
            ),
            None => (self.base.clone(), self.compose.files.clone()),
        };
        compose::ProjectSpec {
            dir,
            files,
            project: project.or_else(|| self.compose.project.clone()),
            profiles: self.compose.profiles.clone(),
            publish_host: self.compose.publish_host.clone(),
            env: self
                .certs_dir()
                .map(|d| ("E2E_CERTS_DIR".to_owned(), d.to_string()))
                .into_iter()
                .chain(self.compose.env.clone())
                .collect(),
        }
    }

    pub fn budget(&self) -> Option<u64> {
        self.context.budget.map(|b| b.0)
    }
}

/// `a/b/../c` as `a/c`, lexically, so `docker/../.e2e` reads `.e2e` in every message.
fn normalize(joined: &Utf8Path) -> Utf8PathBuf {
    let mut out = Utf8PathBuf::new();
    for c in joined.components() {
        match c {
            camino::Utf8Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            camino::Utf8Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Seconds since the epoch (run folders, CI project names).
pub fn unix_time() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(Utf8Path::new("e2e.yaml"), text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_means_defaults() {
        let c = parse("# nothing\n").unwrap();
        assert_eq!(c.compose.files, [Utf8PathBuf::from("compose.yaml")]);
        assert!(c.certs.is_none(), "no certs section: no certificates");
        assert!(c.context.artifacts.contains(&"**/*.out".to_owned()));
    }

    #[test]
    fn an_empty_certs_section_means_certificates_in_the_target_folder() {
        let mut c = parse("certs:\n").unwrap();
        c.workspace = Some(Workspace {
            root: "/ws".into(),
            target_dir: "/ws/target".into(),
            ..Workspace::default()
        });
        let spec = c.certs_spec(["api".to_owned()]).unwrap();
        assert_eq!(spec.dir, "/ws/target/e2e/certs");
        assert_eq!(spec.ca_key_dir, "/ws/target/e2e/ca");
        assert_eq!(spec.hosts, ["localhost", "127.0.0.1", "api"]);
        assert_eq!(spec.validity_days, 90);
        assert_eq!(
            c.project_spec(None).env,
            [(
                "E2E_CERTS_DIR".to_owned(),
                "/ws/target/e2e/certs".to_owned()
            )]
        );
        // Run from the workspace root, files named from there: shown commands paste.
        c.base = "/ws/docker".into();
        let spec = c.project_spec(None);
        assert_eq!(
            (spec.dir.as_str(), spec.files[0].as_str()),
            ("/ws", "docker/compose.yaml")
        );
        let none = parse("tests:\n  profile: e2e\n").unwrap();
        assert!(none.certs_spec(["api".to_owned()]).is_none());
        assert!(none.project_spec(None).env.is_empty(), "no E2E_CERTS_DIR");
    }

    #[test]
    fn project_names_and_policies_follow_flag_config_and_ci() {
        let mut c = parse("").unwrap();
        c.workspace = Some(Workspace {
            root: "/src/My Shop".into(),
            target_dir: "/src/My Shop/target".into(),
            ..Workspace::default()
        });
        assert_eq!(c.project_name(None, false), "e2e-my-shop");
        assert_eq!(c.project_name(Some("mine"), true), "mine");
        let ci = c.project_name(None, true);
        assert!(
            ci.starts_with(&format!("e2e-my-shop-{}-", std::process::id())),
            "{ci}"
        );
        assert_eq!(c.default_policy(false), Policy::Stop);
        assert_eq!(c.default_policy(true), Policy::Purge);
        let set = parse("compose:\n  project: shop\nteardown:\n  policy: down\n").unwrap();
        assert_eq!(set.project_name(None, false), "shop");
        assert_eq!(set.default_policy(true), Policy::Down);
    }

    #[test]
    fn compose_env_and_the_certs_folder_reach_compose() {
        let mut c =
            parse("compose:\n  env:\n    E2E_GATEWAY_PORT: \"23456\"\ncerts:\n  dir: /x/certs\n")
                .unwrap();
        c.base = "/repo/docker".into();
        let spec = c.project_spec(Some("p".into()));
        let env: Vec<(&str, &str)> = spec
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            env,
            [("E2E_CERTS_DIR", "/x/certs"), ("E2E_GATEWAY_PORT", "23456")]
        );
        assert_eq!(spec.project.as_deref(), Some("p"));
    }

    #[test]
    fn bad_input_names_the_line_and_the_key() {
        let table = [
            (
                "compose:\n  files: [a.yaml]\n  projct: x\n",
                "e2e.yaml:3: compose: unknown field `projct`",
            ),
            (
                "certs:\n  validity_days: soon\n",
                "e2e.yaml:2: certs.validity_days: invalid type",
            ),
            (
                "context:\n  budget: lots\n",
                "e2e.yaml:2: context.budget: `lots` is not a size",
            ),
            (
                "teardown:\n  grace_s: 1\n  policy: nuke\n",
                "e2e.yaml:3: teardown.policy: unknown variant `nuke`, expected one of `keep`, `stop`, `down`, `purge`",
            ),
            (
                "readiness:\n  services:\n    api: { tcp: http }\n",
                "e2e.yaml:3: readiness.services.api.tcp: invalid type: string \"http\", expected u16",
            ),
            (
                "readiness:\n  services:\n    api: { log: \"[unclosed\" }\n",
                "e2e.yaml:3: readiness.services.api",
            ),
            (
                "certs:\n  validity_days: 10\n  renew_within_days: 30\n",
                "e2e.yaml: certs.renew_within_days (30)",
            ),
            ("surprise: 1\n", "e2e.yaml:1: unknown field `surprise`"),
        ];
        for (text, want) in table {
            let got = parse(text).unwrap_err();
            assert!(got.starts_with(want), "{text:?}\n got: {got}\nwant: {want}");
        }
    }
}
