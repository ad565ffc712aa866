//! `docker/e2e.yaml`: every key optional, unknown keys refused with their line.

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;

/// The whole config; paths inside it are relative to the file's folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub compose: ComposeConfig,
    pub context: ContextConfig,
    pub certs: CertsConfig,
    /// Host-built static binaries copied into build contexts before the build.
    pub stage: Vec<StageConfig>,
    pub readiness: ReadinessConfig,
    pub tests: TestsConfig,
    pub teardown: TeardownConfig,
    /// The folder the file lives in (not a key).
    #[serde(skip)]
    pub base: Utf8PathBuf,
    /// The file itself, for messages (not a key).
    #[serde(skip)]
    pub path: Utf8PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ComposeConfig {
    /// Compose files, in order, as `docker compose -f` takes them.
    pub files: Vec<Utf8PathBuf>,
    /// Project name; default: the Compose default for the first file's folder.
    pub project: Option<String>,
    pub profiles: Vec<String>,
    /// Variables for Compose's interpolation (ports, tags), over the environment's.
    pub env: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextConfig {
    /// Artifact patterns in `.dockerignore` syntax, relative to each context.
    pub artifacts: Vec<String>,
    /// Fail when a context sends more than this (`50MB`, `1GiB`).
    pub budget: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertsConfig {
    /// Where `ca.crt` and the server (and client) certificate live: mountable.
    pub dir: Utf8PathBuf,
    /// Where the CA's private key lives: never mounted, never in a context.
    pub ca_key_dir: Utf8PathBuf,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReadinessConfig {
    /// How long services may take to become ready, in seconds.
    pub timeout_s: u64,
}

impl Default for ReadinessConfig {
    fn default() -> ReadinessConfig {
        ReadinessConfig { timeout_s: 120 }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TestsConfig {
    /// The nextest profile of the E2E tests.
    pub profile: String,
    /// A filterset (`-E`) used when the command line gives none.
    pub filterset: Option<String>,
    /// The packages nextest builds and lists (`-p`); empty means the workspace.
    pub packages: Vec<String>,
    /// Variables for the tests; `{service:port}` becomes the published `127.0.0.1:PORT`.
    pub env: std::collections::BTreeMap<String, String>,
}

impl Default for TestsConfig {
    fn default() -> TestsConfig {
        TestsConfig {
            profile: "e2e".into(),
            filterset: None,
            packages: Vec::new(),
            env: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TeardownConfig {
    /// keep, stop, down or purge; default: stop, or purge when CI is set.
    pub policy: Option<String>,
    /// Seconds each container gets after SIGTERM before it is killed.
    pub grace_s: u64,
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
            certs: CertsConfig::default(),
            stage: Vec::new(),
            readiness: ReadinessConfig::default(),
            tests: TestsConfig::default(),
            teardown: TeardownConfig::default(),
            base: Utf8PathBuf::from("."),
            path: Utf8PathBuf::from("e2e.yaml"),
        }
    }
}

impl Default for ComposeConfig {
    fn default() -> ComposeConfig {
        ComposeConfig {
            files: vec!["compose.yaml".into()],
            project: None,
            profiles: Vec::new(),
            env: Default::default(),
        }
    }
}

impl Default for ContextConfig {
    fn default() -> ContextConfig {
        ContextConfig {
            artifacts: build_context::clean::DEFAULT_ARTIFACTS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            budget: None,
        }
    }
}

impl Default for CertsConfig {
    fn default() -> CertsConfig {
        CertsConfig {
            dir: "../.e2e/certs".into(),
            ca_key_dir: "../.e2e/ca".into(),
            hosts: Vec::new(),
            validity_days: 90,
            renew_within_days: 14,
            client: false,
        }
    }
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
}

impl Config {
    /// Reads and checks a config file.
    pub fn load(path: &Utf8Path) -> Result<Config, ConfigError> {
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
        if let Some(b) = &config.context.budget {
            build_context::parse_size(b)
                .map_err(|m| invalid(line_of(text, "budget"), format!("context.budget: {m}")))?;
        }
        if let Some(p) = &config.teardown.policy
            && compose::Policy::parse(p).is_none()
        {
            return Err(invalid(
                line_of(text, "policy"),
                format!(
                    "teardown.policy: `{p}` is not one of {}",
                    compose::Policy::NAMES.join(", ")
                ),
            ));
        }
        if config.certs.renew_within_days >= config.certs.validity_days {
            return Err(invalid(
                line_of(text, "renew_within_days"),
                format!(
                    "certs.renew_within_days ({}) must be below certs.validity_days ({}), or every run would renew",
                    config.certs.renew_within_days, config.certs.validity_days
                ),
            ));
        }
        Ok(config)
    }

    /// A path from the config, resolved against the config's folder.
    pub fn resolve(&self, p: &Utf8Path) -> Utf8PathBuf {
        let joined = if p.is_absolute() {
            p.to_owned()
        } else {
            self.base.join(p)
        };
        // Lexically, so `docker/../.e2e` reads `.e2e` in every message.
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

    /// The compose project this config describes. `E2E_CERTS_DIR` is set for
    /// interpolation, so a compose file can mount the certs phase's folder.
    pub fn project_spec(&self, project: Option<String>) -> compose::ProjectSpec {
        compose::ProjectSpec {
            dir: self.base.clone(),
            files: self.compose.files.clone(),
            project: project.or_else(|| self.compose.project.clone()),
            profiles: self.compose.profiles.clone(),
            env: [(
                "E2E_CERTS_DIR".to_owned(),
                self.resolve(&self.certs.dir).to_string(),
            )]
            .into_iter()
            .chain(self.compose.env.clone())
            .collect(),
        }
    }

    pub fn budget(&self) -> Option<u64> {
        self.context
            .budget
            .as_deref()
            .and_then(|b| build_context::parse_size(b).ok())
    }
}

fn line_of(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.trim_start().starts_with(&format!("{key}:")))
        .map_or(1, |i| i + 1)
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
        assert_eq!(c.certs.validity_days, 90);
        assert!(c.context.artifacts.contains(&"**/*.out".to_owned()));
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
                "certs:\n  validity_days: 10\n  renew_within_days: 30\n",
                "e2e.yaml:3: certs.renew_within_days (30)",
            ),
            ("surprise: 1\n", "e2e.yaml:1: unknown field `surprise`"),
        ];
        for (text, want) in table {
            let got = parse(text).unwrap_err();
            assert!(got.starts_with(want), "{text:?}\n got: {got}\nwant: {want}");
        }
    }
}
