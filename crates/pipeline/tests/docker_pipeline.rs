//! The pipeline as a library, against the real engine: a panic in the middle
//! of a run still tears the stack down.

use camino::{Utf8Path, Utf8PathBuf};
use compose::Policy;
use pipeline::report::{PhaseReport, Status};
use pipeline::{Config, Failure, Phase, Verdict};

/// Panics once, when the `up` phase has ended: a fault the engine cannot be
/// made to show, raised by the observer the caller hands in.
struct PanicAfterUp(bool);

impl pipeline::e2e::Progress for PanicAfterUp {
    fn start(&mut self, _: Phase) {}
    fn note(&mut self, _: Phase, _: &str) {}
    fn end(&mut self, r: &PhaseReport) {
        if r.phase == Phase::Up && !self.0 {
            self.0 = true;
            panic!("observer panics after up");
        }
    }
}

#[test]
fn a_panic_mid_run_still_tears_down() {
    if compose::testing::engine_or_skip("a_panic_mid_run_still_tears_down").is_none() {
        return;
    }
    let root = Utf8Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize_utf8()
        .unwrap();
    let workspace = pipeline::Workspace::discover(&root).unwrap();
    let mut config = Config::load(&root.join("docker/e2e.yaml"), &workspace).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    config
        .compose
        .env
        .insert("E2E_GATEWAY_PORT".into(), port.to_string());
    let project = format!("t{}-panic", std::process::id());
    let tmp = tempfile::tempdir().unwrap();
    let opts = pipeline::e2e::Options {
        config,
        workspace,
        project: project.clone(),
        teardown: Policy::Purge,
        keep_on_failure: false,
        no_clean: true,
        no_build: false,
        rebuild: false,
        no_wait: false,
        reaper: None,
        ephemeral_ports: false,
        ci: false,
        filtersets: Vec::new(),
        nextest_args: Vec::new(),
        run_dir: Utf8PathBuf::from_path_buf(tmp.path().to_owned()).unwrap(),
        tool: "cargo e2e".into(),
        shard: None,
    };
    let report = pipeline::e2e::run(&opts, &mut PanicAfterUp(false));
    assert_eq!(
        report.verdict,
        Verdict::Failed(Failure::Stack("panic: observer panics after up".into()))
    );
    let teardown = report.phases.last().unwrap();
    assert_eq!(
        (teardown.phase, teardown.status),
        (Phase::Teardown, Status::Ok),
        "{report}"
    );
    assert!(compose::leftovers(&project).unwrap().is_empty(), "{report}");
    assert!(
        report.bundle.is_some(),
        "a panic is a failure: it gets a bundle"
    );
}
