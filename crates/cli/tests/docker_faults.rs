//! What the tool writes under attack or by accident: no secret in any file
//! of the run or any CI output (tests/fixtures/secrets plants one every way
//! Compose carries it), folders not writable by others and symlinks not
//! followed, and workflow commands a service prints left inert.

mod support;

use camino::{Utf8Path, Utf8PathBuf};
use support::outcome;

const BIN: &str = env!("CARGO_BIN_EXE_cargo-e2e");
const BASE_IMAGE: &str = "debian:bookworm-slim";

/// Every file under `dir` (links not followed), with its text.
fn files(dir: &Utf8Path) -> Vec<(Utf8PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = d.read_dir_utf8() else {
            continue;
        };
        for e in entries.filter_map(Result::ok) {
            let path = e.path().to_owned();
            match e.file_type() {
                Ok(t) if t.is_dir() => todo.push(path),
                Ok(t) if t.is_file() => {
                    let bytes = std::fs::read(&path).unwrap_or_default();
                    out.push((path, String::from_utf8_lossy(&bytes).into_owned()));
                }
                _ => {}
            }
        }
    }
    out
}

#[test]
fn a_planted_secret_shows_nowhere_the_tool_writes() {
    let test = "a_planted_secret_shows_nowhere_the_tool_writes";
    if !compose::testing::image_or_skip(test, BASE_IMAGE) {
        return;
    }
    let fixture = support::Fixture::new("secrets", BIN);
    let root = &fixture.root;
    let planted = format!("pl4nted-{}-value", std::process::id());
    // The e2e config carries it too: an interpolation variable and a test variable.
    let config = std::fs::read_to_string(root.join("e2e.yaml")).unwrap();
    let config = config
        .replace(
            "compose:\n  files: [compose.yaml]\n",
            &format!("compose:\n  files: [compose.yaml]\n  env:\n    PLANTED: \"{planted}\"\n"),
        )
        .replace(
            "    PAGE_ADDR: \"{page:8080}\"\n",
            &format!("    PAGE_ADDR: \"{{page:8080}}\"\n    SERVICE_KEY: \"{planted}-tests\"\n"),
        );
    std::fs::write(root.join("e2e.yaml"), config).unwrap();
    std::fs::write(root.join("planted.txt"), format!("{planted}-file\n")).unwrap();
    let summary = root.join("step-summary.md");
    let project = format!("t{}-secrets", std::process::id());
    let (code, said) = outcome(
        fixture
            .cargo(&["e2e", "e2e", "--project", &project, "--teardown", "purge"])
            .env("PAGE_PORT", support::free_port().to_string())
            .env("GITHUB_ACTIONS", "true")
            .env("GITHUB_STEP_SUMMARY", summary.as_str())
            .env("DEPLOY_TOKEN", format!("{planted}-process")),
    );
    assert_eq!(code, Some(1), "one test fails on purpose:\n{said}");
    // The runner is told every value to mask, before anything else names one.
    for suffix in ["-token", "-password", "-tests", "-file", "-process"] {
        assert!(
            said.contains(&format!("::add-mask::{planted}{suffix}")),
            "{suffix}: {said}"
        );
    }
    let shown: Vec<&str> = said
        .lines()
        .filter(|l| !l.starts_with("::add-mask::"))
        .collect();
    let leaked: Vec<&&str> = shown.iter().filter(|l| l.contains(&planted)).collect();
    assert!(leaked.is_empty(), "printed: {leaked:?}");
    assert!(
        said.contains("::error title=e2e test failed"),
        "the CI outputs were written: {said}"
    );
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(
        !md.contains(&planted) && md.contains("fails_on_purpose"),
        "{md}"
    );
    // Every file of every run folder (the trace, the bundle, the logs the
    // tool saved), and the report.
    let target = root.join("target/e2e");
    let mut written = files(&target.join("runs"));
    let report = target.join("report.json");
    written.push((report.clone(), std::fs::read_to_string(&report).unwrap()));
    assert!(
        written.iter().any(|(p, _)| p.ends_with("report.json"))
            && written.iter().any(|(p, _)| p.ends_with("trace.json"))
            && written.iter().any(|(p, _)| p.as_str().contains("/bundle/")),
        "{:?}",
        written.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let leaked: Vec<&Utf8PathBuf> = written
        .iter()
        .filter(|(_, text)| text.contains(&planted))
        .map(|(p, _)| p)
        .collect();
    assert!(leaked.is_empty(), "the secret is in {leaked:?}");
    // The probe cache keeps Compose's resolved model (as `compose config`
    // prints it, values and all) for the next run: its owner's alone.
    for (path, _) in files(&target.join("cache")) {
        assert_eq!(mode(&path) & 0o077, 0, "{path}");
    }
    assert!(compose::leftovers(&project).unwrap().is_empty());
}

fn mode(path: &Utf8Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    path.symlink_metadata().unwrap().permissions().mode() & 0o7777
}

/// Started under umask 000 (a CI container's), the tool makes nothing that
/// group or others may write; its lock folder is its user's alone; and a
/// symlink swapped in for one of its folders is refused, not followed.
#[test]
fn what_the_tool_makes_is_its_user_s_alone_and_links_are_not_followed() {
    let test = "what_the_tool_makes_is_its_user_s_alone_and_links_are_not_followed";
    if !compose::testing::image_or_skip(test, BASE_IMAGE) {
        return;
    }
    let fixture = support::Fixture::new("watch", BIN);
    let root = &fixture.root;
    let runtime = tempfile::tempdir().unwrap();
    let runtime = Utf8Path::from_path(runtime.path()).unwrap().to_owned();
    let project = format!("t{}-modes", std::process::id());
    let loose = |args: &[&str]| {
        let mut all = vec!["-c", "umask 000 && exec cargo \"$@\"", "sh", "e2e"];
        all.extend_from_slice(args);
        duct::cmd("sh", all)
            .dir(root)
            .env("PATH", fixture.path())
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CI")
            .env("XDG_RUNTIME_DIR", runtime.as_str())
            .env("PAGE_PORT", support::free_port().to_string())
    };
    let (code, said) = outcome(loose(&[
        "e2e",
        "--project",
        &project,
        "--teardown",
        "purge",
    ]));
    assert_eq!(code, Some(0), "{said}");
    let target = root.join("target/e2e");
    let mut checked = 0;
    let mut todo = vec![target.clone()];
    while let Some(dir) = todo.pop() {
        assert_eq!(mode(&dir) & 0o022, 0, "{dir} is writable by others");
        checked += 1;
        for e in dir.read_dir_utf8().unwrap().filter_map(Result::ok) {
            let path = e.path().to_owned();
            if e.file_type().unwrap().is_dir() {
                todo.push(path);
            } else {
                assert_eq!(mode(&path) & 0o022, 0, "{path} is writable by others");
                checked += 1;
            }
        }
    }
    assert!(checked > 10, "{checked} paths");
    let locks = runtime.join("cargo-e2e/locks");
    assert_eq!(mode(&locks), 0o700, "{locks}");
    assert_eq!(mode(&runtime.join("cargo-e2e")), 0o700);

    // The runs folder swapped for a link to elsewhere: refused before anything starts.
    let elsewhere = runtime.join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::rename(target.join("runs"), runtime.join("old-runs")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, target.join("runs")).unwrap();
    let (code, said) = outcome(loose(&[
        "e2e",
        "--project",
        &project,
        "--teardown",
        "purge",
    ]));
    assert_eq!(code, Some(2), "{said}");
    assert!(
        said.contains("runs is a symlink (to ") && said.contains("remove the link"),
        "{said}"
    );
    assert_eq!(
        elsewhere.read_dir_utf8().unwrap().count(),
        0,
        "nothing written there"
    );
    std::fs::remove_file(target.join("runs")).unwrap();

    // The lock folder swapped for a link: refused too.
    std::fs::remove_dir_all(runtime.join("cargo-e2e")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, runtime.join("cargo-e2e")).unwrap();
    let (code, said) = outcome(loose(&[
        "e2e",
        "--project",
        &project,
        "--teardown",
        "purge",
    ]));
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("cargo-e2e is a symlink (to "), "{said}");
    assert_eq!(
        elsewhere.read_dir_utf8().unwrap().count(),
        0,
        "nothing written there"
    );
    assert!(compose::leftovers(&project).unwrap().is_empty());
}

/// An ext4 file system of its own, in a file, mounted by loop; unmounted
/// and removed when dropped.
struct SmallDisk {
    dir: Utf8PathBuf,
    image: Utf8PathBuf,
}

impl SmallDisk {
    fn new(mib: u64) -> SmallDisk {
        let base = Utf8PathBuf::from(format!("/var/lib/e2e-disk-{}", std::process::id()));
        let (dir, image) = (base.join("mnt"), base.join("disk.img"));
        std::fs::create_dir_all(&dir).unwrap();
        let run = |program: &str, args: &[&str]| {
            let (code, said) = outcome(duct::cmd(program, args));
            assert_eq!(code, Some(0), "{program} {args:?}: {said}");
        };
        run("truncate", &["-s", &format!("{mib}M"), image.as_str()]);
        run("mkfs.ext4", &["-q", "-F", image.as_str()]);
        run("mount", &["-o", "loop", image.as_str(), dir.as_str()]);
        SmallDisk { dir, image }
    }

    fn free_mib(&self) -> u64 {
        let s = nix::sys::statvfs::statvfs(self.dir.as_std_path()).unwrap();
        s.blocks_available() * s.fragment_size() / (1 << 20)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = duct::cmd!("umount", self.dir.as_str()).unchecked().run();
        if let Some(base) = self.image.parent() {
            let _ = std::fs::remove_dir_all(base);
        }
    }
}

/// The engine's disk fills up during a build, for real: an engine whose data
/// root is a small file system, the base image loaded, the rest of the room
/// taken, then a build whose RUN step needs more. The run fails with exit 3
/// and says the disk is full and how to free it; no build is recorded as
/// done; once the room is back, the same run passes.
#[test]
fn a_disk_that_fills_during_a_build_fails_it_and_the_next_run_recovers() {
    let test = "a_disk_that_fills_during_a_build_fails_it_and_the_next_run_recovers";
    if !support::engine::ready_or_skip(test, Some(BASE_IMAGE)) {
        return;
    }
    let tools = ["truncate", "mkfs.ext4", "mount", "umount", "fallocate"];
    for t in tools {
        let (code, _) = outcome(duct::cmd("sh", ["-c", &format!("command -v {t}")]));
        assert_eq!(code, Some(0), "{test} needs {t}");
    }
    let disk = SmallDisk::new(1024);
    let engine = support::engine::RemoteEngine::start_with_data(7, &disk.dir.join("data")).unwrap();
    let fixture = support::Fixture::new("disk-full", BIN);
    let base = fixture.root.join("base.tar");
    compose::docker(["save", "-o", base.as_str(), BASE_IMAGE])
        .output(&fixture.root)
        .unwrap();
    engine.docker(&["load", "-q", "-i", base.as_str()]).unwrap();
    std::fs::remove_file(&base).unwrap();
    // Room for the image's own layers, not for the 250 MiB its build writes.
    let filler = disk.dir.join("filler");
    let taken = disk.free_mib().saturating_sub(120);
    let (code, said) = outcome(duct::cmd(
        "fallocate",
        ["-l", &format!("{taken}M"), filler.as_str()],
    ));
    assert_eq!(code, Some(0), "{said}");
    let project = format!("t{}-diskfull", std::process::id());
    let run = || {
        let mut cmd = fixture
            .cargo(&["e2e", "e2e", "--project", &project, "--teardown", "purge"])
            .env("PAGE_PORT", support::free_port().to_string());
        for (k, v) in engine.env() {
            cmd = cmd.env(k, v);
        }
        outcome(cmd)
    };
    let (code, said) = run();
    assert_eq!(code, Some(3), "{said}");
    assert!(
        said.contains("the engine's disk is full: `")
            && said
                .to_ascii_lowercase()
                .contains("no space left on device")
            && said.contains("docker builder prune"),
        "{said}"
    );
    // Nothing recorded as built: the next run builds again.
    let state = fixture
        .root
        .join(format!("target/e2e/state/{project}.json"));
    if let Ok(text) = std::fs::read_to_string(&state) {
        let state: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(state["builds"]["page"].is_null(), "{text}");
    }
    // The room back: the same run passes.
    std::fs::remove_file(&filler).unwrap();
    let (code, said) = run();
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("images: page built"), "{said}");
    drop(engine);
}
