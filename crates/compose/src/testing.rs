//! For Docker-backed tests: skip with a reason where no engine answers, fail
//! instead when `E2E_REQUIRE_DOCKER` is set (CI sets it), so a missing engine
//! can never turn a red run green.

use crate::Engine;

/// The variable that turns a skipped Docker-backed test into a failure.
pub const REQUIRE_VAR: &str = "E2E_REQUIRE_DOCKER";

/// The engine, or `None` after printing why the test is skipped.
///
/// # Panics
/// When no engine answers and `E2E_REQUIRE_DOCKER` is set.
/// The running test's name, as the test harness names its thread (for the
/// messages of a skip or a failure).
pub fn this_test() -> String {
    std::thread::current().name().map_or_else(
        || "this test".to_owned(),
        |n| n.rsplit("::").next().unwrap_or(n).to_owned(),
    )
}

pub fn engine_or_skip(test: &str) -> Option<Engine> {
    match Engine::require() {
        Ok(engine) => Some(engine),
        Err(e) => {
            let required = std::env::var_os(REQUIRE_VAR).is_some_and(|v| !v.is_empty() && v != "0");
            assert!(
                !required,
                "{test}: {REQUIRE_VAR} is set but Docker is not usable: {e}"
            );
            eprintln!(
                "SKIPPED {test}: Docker is not usable here ({e}); set {REQUIRE_VAR}=1 to make this a failure"
            );
            None
        }
    }
}

/// The engine and `image` on it, or `false` after printing why the test is
/// skipped. With `E2E_REQUIRE_DOCKER` set, a missing image fails the test and
/// names the command that makes it (`make base-image` for the Debian base).
///
/// # Panics
/// When the engine or the image is missing and `E2E_REQUIRE_DOCKER` is set.
pub fn image_or_skip(test: &str, image: &str) -> bool {
    if engine_or_skip(test).is_none() {
        return false;
    }
    let have = crate::docker(["image", "inspect", image])
        .output(camino::Utf8Path::new("."))
        .is_ok();
    let required = std::env::var_os(REQUIRE_VAR).is_some_and(|v| !v.is_empty() && v != "0");
    assert!(
        have || !required,
        "{test}: the engine has no {image}; run `make base-image` (bash .ci/debian-base)"
    );
    if !have {
        eprintln!("SKIPPED {test}: no {image} image; run `make base-image`");
    }
    have
}
