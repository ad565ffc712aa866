//! Newer Docker than this machine's, read from what it prints: Compose 5
//! (always builds through buildx bake, refuses buildx older than 0.17),
//! engines that refuse old clients (Docker 29 wants API 1.44), and the
//! builder a build goes through. Each reader is tested on recorded output.

use camino::Utf8Path;

/// `major.minor.patch` from a version as tools print it (`v5.0.1`,
/// `2.40.3`, `0.12.1+ds1`, `0.17.1-desktop.1`).
pub fn version(text: &str) -> Option<(u32, u32, u32)> {
    let t = text.trim().trim_start_matches('v');
    let core = t.split(['+', '-', ' ']).next()?;
    let mut parts = core.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
        parts.next().flatten().unwrap_or(0),
    ))
}

/// The oldest buildx that Compose's bake builds accept.
pub const MIN_BUILDX: (u32, u32, u32) = (0, 17, 0);

/// How Compose builds images.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Builder {
    /// Compose 2.x's own BuildKit client; no buildx needed.
    Embedded,
    /// `buildx bake` (Compose 5, or 2.x with `COMPOSE_BAKE=true`), with the
    /// buildx version found (`None`: no buildx).
    Bake { buildx: Option<String> },
    /// The engine's classic `/build` API: Podman serves no BuildKit, and
    /// Compose's BuildKit paths would start a `moby/buildkit` container
    /// (a pull) instead of building on Podman.
    Classic,
}

impl Builder {
    /// Why Compose would refuse to build with it, and the fix.
    pub fn refusal(&self) -> Option<String> {
        let Builder::Bake { buildx } = self else {
            return None;
        };
        let min = format!("{}.{}", MIN_BUILDX.0, MIN_BUILDX.1);
        match buildx.as_deref() {
            None => Some(format!(
                "Compose builds through buildx bake and no buildx answers: install the buildx plugin {min} or newer (docker-buildx-plugin)"
            )),
            Some(v) if version(v).is_some_and(|v| v < MIN_BUILDX) => Some(format!(
                "Compose builds through buildx bake and refuses buildx {v} (it needs {min} or newer): upgrade the buildx plugin"
            )),
            Some(_) => None,
        }
    }
}

/// Which builder Compose `compose_version` uses, asking `docker buildx
/// version` once. Compose 5 always bakes. Compose 2.40 bakes unless
/// `COMPOSE_BAKE=false`, and without a usable buildx falls back to its own
/// client with a warning (measured here: no buildx, 2.40.3). On Podman the
/// tool builds through the classic API (see [`Builder::Classic`]).
pub fn builder(
    compose_version: &str,
    compose_bake: Option<&str>,
    product: Option<crate::Product>,
) -> Builder {
    let major = version(compose_version).map_or(2, |v| v.0);
    if product == Some(crate::Product::Podman) && major < 5 {
        return Builder::Classic;
    }
    let off = compose_bake.is_some_and(|b| b.eq_ignore_ascii_case("false") || b == "0");
    if major < 5 && off {
        return Builder::Embedded;
    }
    let found = crate::docker(["buildx", "version"])
        .text(Utf8Path::new("."))
        .ok();
    choose(major, found.as_deref().and_then(buildx_version))
}

fn choose(compose_major: u32, buildx: Option<String>) -> Builder {
    let usable = buildx
        .as_deref()
        .and_then(version)
        .is_some_and(|v| v >= MIN_BUILDX);
    if compose_major >= 5 || usable {
        Builder::Bake { buildx }
    } else {
        Builder::Embedded
    }
}

/// The version in `docker buildx version` output:
/// `github.com/docker/buildx v0.17.1 8c4d2b5`, or Debian's
/// `github.com/docker/buildx 0.13.1+ds1-3 ...`.
pub fn buildx_version(text: &str) -> Option<String> {
    let word = text.split_whitespace().nth(1)?;
    version(word).map(|_| word.trim_start_matches('v').to_owned())
}

/// An engine that refuses this client's API version: `(client, minimum)`
/// from "client version 1.41 is too old. Minimum supported API version is
/// 1.44, please upgrade your client to a newer version".
pub fn api_refusal(text: &str) -> Option<(String, String)> {
    let rest = &text[text.find("client version ")? + "client version ".len()..];
    let client = rest.split_whitespace().next()?.to_owned();
    let min_at =
        rest.find("Minimum supported API version is ")? + "Minimum supported API version is ".len();
    let min = rest[min_at..]
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .next()?
        .trim_end_matches('.')
        .to_owned();
    (!min.is_empty()).then_some((client, min))
}

/// The fix for an API refusal, in one sentence.
pub fn api_refusal_fix(client: &str, min: &str) -> String {
    format!(
        "the engine refuses this docker CLI (API {client}; it needs {min} or newer): upgrade the docker CLI \
         (Docker 25 or newer speaks 1.44), or set DOCKER_API_VERSION={min} if this CLI supports it"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_as_tools_print_them() {
        // `docker compose version --short`: 2.x prints `2.40.3`, 5.x `v5.0.1`
        // in some builds; Debian's buildx `0.13.1+ds1-3`.
        assert_eq!(version("2.40.3"), Some((2, 40, 3)));
        assert_eq!(version("v5.0.1\n"), Some((5, 0, 1)));
        assert_eq!(version("0.13.1+ds1-3"), Some((0, 13, 1)));
        assert_eq!(version("0.17.1-desktop.1"), Some((0, 17, 1)));
        assert_eq!(version("5"), Some((5, 0, 0)));
        assert_eq!(version("dev"), None);
    }

    #[test]
    fn buildx_as_its_version_command_prints_it() {
        assert_eq!(
            buildx_version(
                "github.com/docker/buildx v0.17.1 8c4d2b5b7a3d6e1f9c0ab0f5ffb5e5c0b8dd3d8c"
            )
            .as_deref(),
            Some("0.17.1")
        );
        assert_eq!(
            buildx_version("github.com/docker/buildx 0.13.1+ds1-3 0.13.1+ds1-3").as_deref(),
            Some("0.13.1+ds1-3")
        );
        assert_eq!(
            buildx_version("docker: 'buildx' is not a docker command."),
            None
        );
    }

    #[test]
    fn which_builder_and_why_it_is_refused() {
        assert_eq!(builder("2.40.3", Some("false"), None), Builder::Embedded);
        assert_eq!(
            builder("2.40.3", None, Some(crate::Product::Podman)),
            Builder::Classic
        );
        // Compose 2 falls back to its own client without a usable buildx; 5 cannot.
        assert_eq!(choose(2, None), Builder::Embedded);
        assert_eq!(choose(2, Some("0.13.1+ds1-3".into())), Builder::Embedded);
        assert_eq!(
            choose(2, Some("0.17.1".into())),
            Builder::Bake {
                buildx: Some("0.17.1".into())
            }
        );
        assert_eq!(choose(5, None), Builder::Bake { buildx: None });
        let old = Builder::Bake {
            buildx: Some("0.13.1+ds1-3".into()),
        };
        let refusal = old.refusal().unwrap();
        assert!(
            refusal.contains("refuses buildx 0.13.1+ds1-3 (it needs 0.17 or newer)"),
            "{refusal}"
        );
        assert!(
            Builder::Bake { buildx: None }
                .refusal()
                .unwrap()
                .contains("no buildx answers")
        );
        assert_eq!(
            Builder::Bake {
                buildx: Some("0.18.0".into())
            }
            .refusal(),
            None
        );
        assert_eq!(Builder::Embedded.refusal(), None);
    }

    #[test]
    fn an_engine_that_refuses_an_old_client() {
        // Docker 29's answer to a 20.10 client, as the CLI prints it.
        let text = "Error response from daemon: client version 1.41 is too old. Minimum supported API version is 1.44, please upgrade your client to a newer version";
        assert_eq!(api_refusal(text), Some(("1.41".into(), "1.44".into())));
        assert_eq!(
            api_refusal("Cannot connect to the Docker daemon at unix:///var/run/docker.sock"),
            None
        );
        assert!(api_refusal_fix("1.41", "1.44").contains("upgrade the docker CLI"));
    }
}
