//! What preflight asked the engine and Compose (`docker info`, `compose
//! config`), kept for the next run of the project and used again while a
//! cheap key proves nothing they depend on changed: the engine's socket (a
//! daemon that restarts makes it anew), the docker CLI's and its plugins'
//! files, the compose and config files and the env files they name, the
//! environment (Compose interpolates it), and this tool's own binary. A
//! remote engine's answers are never kept: nothing here can tell it changed.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// The answers, and the key they hold for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Probed {
    key: String,
    pub facts: compose::Facts,
    /// `compose config`'s resolved model.
    pub config: serde_json::Value,
}

/// Where the CLI looks for its plugins (Compose, buildx).
const PLUGIN_DIRS: &[&str] = &[
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
];

impl Probed {
    fn path(target_dir: &Utf8Path, project: &str) -> Utf8PathBuf {
        // Not in `e2e/state`, where each file is a project's record.
        target_dir
            .join("e2e/cache")
            .join(format!("{project}.probed.json"))
    }

    /// The key of what the answers depend on; `None` where it cannot be told
    /// (a remote engine, a socket that is not there).
    pub(crate) fn key(spec: &compose::ProjectSpec, config_file: &Utf8Path) -> Option<String> {
        let socket = local_socket(&compose::Engine::endpoint())?;
        let mut parts: Vec<String> = vec![stamp(&socket)?];
        parts.push(format!("{spec:?}"));
        let mut files: Vec<Utf8PathBuf> = vec![config_file.to_owned(), spec.dir.join(".env")];
        files.extend(spec.files.iter().map(|f| spec.dir.join(f)));
        if let Some(docker) = on_path("docker") {
            files.push(docker);
        }
        let home = std::env::var("DOCKER_CONFIG")
            .map(Utf8PathBuf::from)
            .or_else(|_| std::env::var("HOME").map(|h| Utf8PathBuf::from(h).join(".docker")))
            .ok();
        for dir in home
            .iter()
            .map(|h| h.join("cli-plugins"))
            .chain(PLUGIN_DIRS.iter().map(Utf8PathBuf::from))
        {
            for plugin in ["docker-compose", "docker-buildx"] {
                files.push(dir.join(plugin));
            }
        }
        files.push(
            std::env::current_exe()
                .ok()
                .and_then(|p| Utf8PathBuf::from_path_buf(p).ok())?,
        );
        for f in &files {
            parts.push(format!("{f} {}", stamp(f).unwrap_or_else(|| "none".into())));
        }
        let env: BTreeMap<String, String> = std::env::vars().collect();
        parts.push(format!("{env:?}"));
        Some(digest(&parts.join("\n")))
    }

    /// The kept answers, when they hold for `key` and the env files the model
    /// names did not change since.
    pub(crate) fn load(target_dir: &Utf8Path, project: &str, key: &str) -> Option<Probed> {
        let text = std::fs::read(Probed::path(target_dir, project)).ok()?;
        let probed: Probed = serde_json::from_slice(&text).ok()?;
        (probed.key == with_env_files(key, &probed.config)).then_some(probed)
    }

    /// Keeps the answers for the next run (a failure costs only its reuse).
    pub(crate) fn save(
        target_dir: &Utf8Path,
        project: &str,
        key: &str,
        facts: &compose::Facts,
        config: &serde_json::Value,
    ) {
        let probed = Probed {
            key: with_env_files(key, config),
            facts: facts.clone(),
            config: config.clone(),
        };
        let path = Probed::path(target_dir, project);
        if let Some(dir) = path.parent()
            && std::fs::create_dir_all(dir).is_ok()
        {
            let json = serde_json::to_vec(&probed).expect("the answers serialise");
            let _ = crate::write_whole(&path, &json);
        }
    }
}

/// `key` with the stamps of the env files the model names (`env_file:`),
/// which change the model without changing any other file.
fn with_env_files(key: &str, config: &serde_json::Value) -> String {
    let mut parts = vec![key.to_owned()];
    for service in config["services"].as_object().into_iter().flatten() {
        for f in service.1["env_file"].as_array().into_iter().flatten() {
            let path = f["path"]
                .as_str()
                .or_else(|| f.as_str())
                .unwrap_or_default();
            let path = Utf8Path::new(path);
            parts.push(format!(
                "{path} {}",
                stamp(path).unwrap_or_else(|| "none".into())
            ));
        }
    }
    digest(&parts.join("\n"))
}

/// The socket of a local engine: `unix://PATH`, or the default one.
fn local_socket(endpoint: &str) -> Option<Utf8PathBuf> {
    match endpoint {
        "default" => Some("/var/run/docker.sock".into()),
        e => e.strip_prefix("unix://").map(Utf8PathBuf::from),
    }
}

/// A file's identity (links followed).
fn stamp(path: &Utf8Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    Some(crate::sources::identity(&m))
}

fn on_path(program: &str) -> Option<Utf8PathBuf> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| Utf8Path::new(d).join(program))
        .find(|p| p.is_file())
}

fn digest(text: &str) -> String {
    crate::fingerprint::sha256_hex(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_env_file_or_socket_turns_the_key() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8Path::from_path(tmp.path()).unwrap();
        let env_file = dir.join("app.env");
        std::fs::write(&env_file, "A=1\n").unwrap();
        let config = serde_json::json!({
            "services": { "app": { "env_file": [ { "path": env_file.as_str(), "required": true } ] } }
        });
        let first = with_env_files("k", &config);
        assert_eq!(with_env_files("k", &config), first);
        std::thread::sleep(std::time::Duration::from_millis(10));
        std::fs::write(&env_file, "A=2\n").unwrap();
        assert_ne!(with_env_files("k", &config), first, "the env file changed");
        assert_eq!(
            local_socket("default").as_deref(),
            Some(Utf8Path::new("/var/run/docker.sock"))
        );
        assert_eq!(
            local_socket("unix:///run/x.sock").as_deref(),
            Some(Utf8Path::new("/run/x.sock"))
        );
        assert_eq!(local_socket("tcp://10.0.0.2:2376"), None);
        assert_eq!(local_socket("context-remote"), None);
    }
}
