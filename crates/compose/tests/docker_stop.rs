//! Stopping at the speed of the service, against the real engine: a service
//! whose PID 1 handles its stop signal gets it and keeps its grace (it
//! writes a marker when it does), one whose PID 1 cannot act on it is killed
//! at once. The engine's own event log is the judge: which signals each
//! container was sent, not how long anything took.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use camino::{Utf8Path, Utf8PathBuf};
use compose::{Policy, Project, ProjectSpec, UpOptions};

const IMAGE: &str = "debian:bookworm-slim";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Removes the project whatever the test's outcome.
struct Down(Utf8PathBuf, String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = compose::docker([
            "compose",
            "-p",
            &self.1,
            "down",
            "--volumes",
            "--timeout",
            "0",
        ])
        .output(&self.0);
    }
}

#[test]
fn a_handler_keeps_its_grace_and_a_deaf_pid_1_is_killed_at_once() {
    let test = "a_handler_keeps_its_grace_and_a_deaf_pid_1_is_killed_at_once";
    if !compose::testing::image_or_skip(test, IMAGE) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().canonicalize().unwrap()).unwrap();
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::write(
        dir.join("compose.yaml"),
        format!(
            "services:\n\
             \x20 polite:\n\
             \x20   image: {IMAGE}\n\
             \x20   command: [\"bash\", \"-c\", \"trap 'touch /out/marker; exit 0' TERM; while :; do sleep 0.1; done\"]\n\
             \x20   volumes: [\"./out:/out\"]\n\
             \x20 deaf:\n\
             \x20   image: {IMAGE}\n\
             \x20   command: [\"sleep\", \"infinity\"]\n"
        ),
    )
    .unwrap();
    let name = format!("t{}-stop", std::process::id());
    let _down = Down(dir.clone(), name.clone());
    let project = Project::load(ProjectSpec {
        dir: dir.clone(),
        files: vec!["compose.yaml".into()],
        project: Some(name.clone()),
        ..ProjectSpec::default()
    })
    .unwrap();
    let opts = UpOptions {
        timeout: Duration::from_secs(60),
        ..UpOptions::default()
    };
    project.up_and_wait(opts, |_| {}).unwrap();

    let since = now();
    let stopped = project
        .teardown(Policy::Down, Duration::from_secs(10), None)
        .unwrap();
    assert_eq!(
        stopped.killed,
        ["deaf"],
        "only the deaf service is killed at once"
    );
    // Each service's time to stop is reported.
    assert_eq!(
        stopped.stop_s.keys().collect::<Vec<_>>(),
        ["deaf", "polite"],
        "{stopped:?}"
    );
    assert!(
        dir.join("out/marker").exists(),
        "the polite service got SIGTERM and handled it"
    );
    let signals = signals_sent(&dir, &name, since);
    assert_eq!(
        signals("deaf"),
        ["9"],
        "killed, never sent a signal it cannot act on"
    );
    assert_eq!(
        signals("polite"),
        ["15"],
        "SIGTERM, and no SIGKILL: it stopped within its grace"
    );
    let left = project.leftovers().unwrap();
    assert!(
        left.containers.is_empty() && left.networks.is_empty(),
        "{left}"
    );
}

/// The signals the engine sent each service's container since `since`, by
/// its `kill` events.
fn signals_sent(dir: &Utf8Path, project: &str, since: u64) -> impl Fn(&str) -> Vec<String> {
    let label = format!("label=com.docker.compose.project={project}");
    let text = compose::docker([
        "events",
        "--since",
        &since.to_string(),
        "--until",
        &(now() + 1).to_string(),
        "--filter",
        &label,
        "--filter",
        "event=kill",
        "--format",
        "{{index .Actor.Attributes \"com.docker.compose.service\"}} {{.Actor.Attributes.signal}}",
    ])
    .text(dir)
    .unwrap();
    move |service: &str| {
        text.lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(s, _)| *s == service)
            .map(|(_, sig)| sig.to_owned())
            .collect()
    }
}
