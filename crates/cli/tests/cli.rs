//! The command line as users meet it: output, and the exit codes of design.md.

use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

const BIN: &str = env!("CARGO_BIN_EXE_cargo-e2e");

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn xtask(dir: &Utf8Path, args: &[&str]) -> Run {
    let sh = Shell::new().unwrap();
    sh.change_dir(dir);
    let out = cmd!(sh, "{BIN} {args...}")
        .quiet()
        .ignore_status()
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A git repository with artifacts, a tracked artifact and an ignore file.
fn repo() -> (tempfile::TempDir, Utf8PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(tmp.path().canonicalize().unwrap()).unwrap();
    let put = |p: &str, body: &str| {
        let p = root.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, body).unwrap();
    };
    put("app/main.rs", "fn main() {}\n");
    put("app/cover.out", "coverage\n");
    put("app/golden.out", "tracked on purpose\n");
    put("app/unit.test", "binary\n");
    put("Dockerfile", "FROM scratch\nCOPY app/ /app/\n");
    put(".dockerignore", "# artifacts\n**/*.test\n.git\n");
    let sh = Shell::new().unwrap();
    sh.change_dir(&root);
    cmd!(sh, "git init -q").run().unwrap();
    cmd!(
        sh,
        "git add app/main.rs app/golden.out Dockerfile .dockerignore"
    )
    .run()
    .unwrap();
    (tmp, root)
}

#[test]
fn list_prints_only_sorted_paths() {
    let (_t, root) = repo();
    let r = xtask(&root, &["clean-context", "--context", ".", "--list"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        ".dockerignore\nDockerfile\napp/cover.out\napp/golden.out\napp/main.rs\n"
    );
}

#[test]
fn explain_names_the_deciding_line() {
    let (_t, root) = repo();
    let r = xtask(
        &root,
        &[
            "clean-context",
            "--context",
            ".",
            "--explain",
            "app/unit.test",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        r.stdout,
        "app/unit.test: excluded (by .dockerignore:2 `**/*.test`)\n"
    );
    let r = xtask(
        &root,
        &[
            "clean-context",
            "--context",
            ".",
            "--explain",
            "app/main.rs",
            "--json",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["explanation"]["sent"], true);
}

#[test]
fn cleaning_keeps_tracked_files_and_dry_run_keeps_everything() {
    let (_t, root) = repo();
    let r = xtask(&root, &["clean-context", "--context", ".", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("would remove 2 files"), "{}", r.stdout);
    assert!(root.join("app/cover.out").exists() && root.join("app/unit.test").exists());
    let r = xtask(&root, &["clean-context", "--context", ".", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["cleanup"]["outcome"]["removed_files"], 2);
    assert!(!root.join("app/cover.out").exists() && !root.join("app/unit.test").exists());
    assert!(
        root.join("app/golden.out").exists(),
        "a tracked .out file is never deleted"
    );
}

#[test]
fn exit_codes_follow_the_contract() {
    let (_t, root) = repo();
    // 1: over budget, naming the biggest folder.
    let r = xtask(
        &root,
        &[
            "clean-context",
            "--context",
            ".",
            "--dry-run",
            "--budget",
            "10B",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("over the budget") && r.stderr.contains("app/"),
        "{}",
        r.stderr
    );
    // 2: a bad flag value, a bad pattern, a bad config.
    let r = xtask(
        &root,
        &["clean-context", "--context", ".", "--budget", "lots"],
    );
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--budget"), "{}", r.stderr);
    std::fs::write(root.join(".dockerignore"), "ok\n[\n").unwrap();
    let r = xtask(&root, &["clean-context", "--context", ".", "--list"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains(".dockerignore:2") && r.stderr.contains("`[`"),
        "{}",
        r.stderr
    );
    std::fs::write(root.join("e2e.yaml"), "compose:\n  file: x\n").unwrap();
    let r = xtask(&root, &["clean-context", "--config", "e2e.yaml"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("e2e.yaml:2") && r.stderr.contains("unknown field `file`"),
        "{}",
        r.stderr
    );
    let r = xtask(&root, &["clean-context", "--config", "missing.yaml"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("missing.yaml"), "{}", r.stderr);
}

#[test]
fn a_copy_source_hidden_by_the_ignore_file_fails_the_check() {
    let (_t, root) = repo();
    std::fs::write(
        root.join("Dockerfile"),
        "FROM scratch\nCOPY app/unit.test /t\n",
    )
    .unwrap();
    let r = xtask(
        &root,
        &[
            "clean-context",
            "--context",
            ".",
            "--dockerfile",
            "Dockerfile",
            "--dry-run",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stdout);
    assert!(
        r.stdout
            .contains("Dockerfile:2 COPY app/unit.test: the source is excluded by .dockerignore:2"),
        "{}",
        r.stdout
    );
}

#[test]
fn doctor_names_a_missing_engine_and_its_fix() {
    let sh = Shell::new().unwrap();
    // An engine nobody listens at: what a stopped dockerd looks like to the client.
    let out = cmd!(sh, "{BIN} doctor")
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .quiet()
        .ignore_status()
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}");
    assert!(
        stdout.contains("docker host      unix:///nonexistent/docker.sock (DOCKER_HOST)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("docker engine    not answering: Cannot connect to the Docker daemon"),
        "{stdout}"
    );
    assert!(
        stdout.contains("problem: the Docker daemon does not answer: run `make engine`"),
        "{stdout}"
    );
}
