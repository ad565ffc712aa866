//! The engine's own account of itself, read in one place: `docker info` and
//! `docker version` as JSON, into the facts the tool acts on (which product,
//! API, image store, rootless). Every reader is tested on output recorded
//! from the real engines (`tests/recorded/`).

use serde::{Deserialize, Serialize};

/// Which engine serves the Docker API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Product {
    Docker,
    /// Podman's Docker-compatible service (`podman system service`): no
    /// BuildKit behind it, so builds go through its classic `/build` API.
    Podman,
}

impl std::fmt::Display for Product {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Product::Docker => "Docker",
            Product::Podman => "Podman",
        })
    }
}

/// Whether an engine of API version `api` (`1.51`) honours
/// `healthcheck.start_interval` (API 1.44, Engine 25); an older one refuses
/// a compose file that sets it. `None` when the version does not read.
pub fn honours_start_interval(api: &str) -> Option<bool> {
    let (major, minor) = api.split_once('.')?;
    Some((major.parse::<u32>().ok()?, minor.parse::<u32>().ok()?) >= (1, 44))
}

/// Where the engine keeps images, which decides what an image ID is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "kebab-case")]
pub enum ImageStore {
    /// The classic graph driver (`overlay2`): an image ID is its config's digest.
    GraphDriver(String),
    /// containerd's image store (Engine 29's default for new installs): an
    /// image ID is the manifest list's digest, and one tag may stand for
    /// several platforms.
    Containerd(String),
    /// Podman's containers/storage (`overlay`).
    Storage(String),
}

impl ImageStore {
    pub fn is_containerd(&self) -> bool {
        matches!(self, ImageStore::Containerd(_))
    }
}

impl std::fmt::Display for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageStore::GraphDriver(d) => write!(f, "graph driver {d}"),
            ImageStore::Containerd(s) => write!(f, "containerd image store ({s})"),
            ImageStore::Storage(d) => write!(f, "containers/storage ({d})"),
        }
    }
}

/// What `docker info --format '{{json .}}'` and `docker version --format
/// '{{json .Server}}'` say, the fields the tool reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    pub product: Product,
    pub version: String,
    /// The API version the engine speaks (`1.51`); `None` when `version` did not say.
    pub api: Option<String>,
    pub os: String,
    pub image_store: ImageStore,
    pub rootless: bool,
    /// Where the engine keeps its data, on its own machine.
    pub root_dir: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InfoJson {
    #[serde(default)]
    server_version: String,
    #[serde(rename = "OSType", default)]
    os_type: String,
    #[serde(default)]
    driver: String,
    #[serde(default)]
    driver_status: Option<Vec<Vec<String>>>,
    #[serde(default)]
    docker_root_dir: String,
    #[serde(default)]
    security_options: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct VersionJson {
    #[serde(default)]
    api_version: Option<String>,
    #[serde(default)]
    components: Option<Vec<Component>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Component {
    name: String,
}

impl Facts {
    /// Reads `info` (required) and `version` (the server part; optional:
    /// without it the API version is unknown and Podman is told apart by its
    /// info alone).
    pub fn parse(info: &str, version: Option<&str>) -> Result<Facts, serde_json::Error> {
        let i: InfoJson = serde_json::from_str(info.trim())?;
        let v: VersionJson = match version.map(str::trim).filter(|v| !v.is_empty()) {
            Some(text) => serde_json::from_str(text)?,
            None => VersionJson::default(),
        };
        let podman_component = v
            .components
            .iter()
            .flatten()
            .any(|c| c.name.to_ascii_lowercase().contains("podman"));
        let status = i.driver_status.unwrap_or_default();
        let status_of = |key: &str| {
            status
                .iter()
                .find(|kv| kv.first().is_some_and(|k| k == key))
                .and_then(|kv| kv.get(1).cloned())
        };
        // Podman's compat info has no graph driver status of Docker's kind but
        // names its own storage; its root is containers/storage's.
        let podman = podman_component || i.docker_root_dir.contains("/containers/storage");
        let image_store = if podman {
            ImageStore::Storage(i.driver.clone())
        } else if status_of("driver-type").is_some_and(|t| t.contains("snapshotter")) {
            ImageStore::Containerd(i.driver.clone())
        } else {
            ImageStore::GraphDriver(i.driver.clone())
        };
        let rootless = i
            .security_options
            .iter()
            .flatten()
            .any(|o| o.split(',').any(|p| p == "name=rootless"));
        Ok(Facts {
            product: if podman {
                Product::Podman
            } else {
                Product::Docker
            },
            version: i.server_version,
            api: v.api_version,
            os: i.os_type,
            image_store,
            rootless,
            root_dir: i.docker_root_dir,
        })
    }

    /// Whether the engine honours `healthcheck.start_interval` (see
    /// [`honours_start_interval`]); `None` when its API version is unknown.
    pub fn honours_start_interval(&self) -> Option<bool> {
        honours_start_interval(self.api.as_deref()?)
    }

    /// One line for a report: `Docker 28.5.2, containerd image store (overlayfs)`.
    pub fn summary(&self) -> String {
        let product = self.product;
        let api = self
            .api
            .as_deref()
            .map(|a| format!(" (API {a})"))
            .unwrap_or_default();
        let rootless = if self.rootless { ", rootless" } else { "" };
        format!(
            "{product} {}{api}, {}{rootless}",
            self.version, self.image_store
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(engine: &str) -> Facts {
        let dir = format!("{}/tests/recorded/{engine}", env!("CARGO_MANIFEST_DIR"));
        let info = std::fs::read_to_string(format!("{dir}/info.json")).unwrap();
        let version = std::fs::read_to_string(format!("{dir}/version-server.json")).ok();
        Facts::parse(&info, version.as_deref()).unwrap()
    }

    #[test]
    fn engine_20_10_overlay2() {
        let f = recorded("engine-20.10");
        assert_eq!(f.product, Product::Docker);
        assert!(f.version.starts_with("20.10.24"), "{f:?}");
        assert_eq!(f.api.as_deref(), Some("1.41"));
        assert_eq!(f.image_store, ImageStore::GraphDriver("overlay2".into()));
        assert_eq!(f.honours_start_interval(), Some(false));
        assert!(!f.rootless);
        assert_eq!(f.root_dir, "/var/lib/docker");
    }

    #[test]
    fn engine_28_overlay2() {
        let f = recorded("engine-28");
        assert_eq!(f.product, Product::Docker);
        assert!(f.version.starts_with("28.5.2"), "{f:?}");
        assert_eq!(f.api.as_deref(), Some("1.51"));
        assert_eq!(f.image_store, ImageStore::GraphDriver("overlay2".into()));
        assert_eq!(f.honours_start_interval(), Some(true));
    }

    #[test]
    fn engine_28_on_the_containerd_image_store() {
        let f = recorded("engine-28-containerd");
        assert_eq!(f.product, Product::Docker);
        assert!(f.image_store.is_containerd(), "{f:?}");
        assert_eq!(f.honours_start_interval(), Some(true));
    }

    #[test]
    fn podman_5_through_its_docker_api() {
        let f = recorded("podman-5");
        assert_eq!(f.product, Product::Podman, "{f:?}");
        assert!(f.version.starts_with('5'), "{f:?}");
        assert!(matches!(f.image_store, ImageStore::Storage(_)), "{f:?}");
    }

    #[test]
    fn rootless_is_read_from_the_security_options() {
        // Docker's rootless mode as `docker info` prints it (written from
        // Docker's documentation; no rootless engine runs here).
        let info = r#"{"ServerVersion":"28.5.2","OSType":"linux","Driver":"overlay2",
            "DockerRootDir":"/home/u/.local/share/docker",
            "SecurityOptions":["name=seccomp,profile=builtin","name=rootless","name=cgroupns"]}"#;
        let f = Facts::parse(info, None).unwrap();
        assert!(f.rootless);
        assert_eq!(f.api, None);
        assert_eq!(f.honours_start_interval(), None);
        assert!(f.summary().contains("rootless"), "{}", f.summary());
    }
}
