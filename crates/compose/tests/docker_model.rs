//! The model comes from Compose itself: interpolation and several files included.

use camino::Utf8PathBuf;
use compose::{ProjectSpec, Stack};

#[test]
fn model_reads_build_contexts_ports_and_healthchecks() {
    if compose::testing::engine_or_skip("model_reads_build_contexts_ports_and_healthchecks")
        .is_none()
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().canonicalize().unwrap()).unwrap();
    std::fs::create_dir_all(dir.join("svc")).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        "services:\n  api:\n    build:\n      context: ./svc\n      dockerfile: ${DF:-Other.Dockerfile}\n    ports: [\"18443:8443\"]\n    healthcheck:\n      test: [\"CMD\", \"/probe\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("override.yaml"),
        "services:\n  db:\n    image: scratch-db\n    depends_on: [api]\n",
    )
    .unwrap();
    let spec = ProjectSpec {
        dir: dir.clone(),
        files: vec!["compose.yaml".into(), "override.yaml".into()],
        project: Some("modeltest".into()),
        profiles: vec![],
        env: vec![("DF".into(), "App.Dockerfile".into())],
        ..ProjectSpec::default()
    };
    let stack = Stack::load(&spec).unwrap();
    assert_eq!(stack.name, "modeltest");
    let contexts = stack.build_contexts();
    assert_eq!(contexts.len(), 1);
    assert_eq!(contexts[0].0, "api");
    assert_eq!(contexts[0].1, dir.join("svc"));
    assert_eq!(contexts[0].2, dir.join("svc/App.Dockerfile"));
    let api = &stack.services["api"];
    assert_eq!(
        (api.ports[0].target, api.ports[0].published.as_deref()),
        (8443, Some("18443"))
    );
    assert!(api.healthcheck.is_some());
    assert!(stack.services["db"].depends_on.contains_key("api"));
}
