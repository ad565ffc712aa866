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
        stdout.contains("problem: the Docker daemon does not answer: start it"),
        "{stdout}"
    );
}

/// A shard's report and JUnit file, as a run on a CI machine leaves them
/// (the JUnit beside the report, as an artifacts step gathers them).
fn shard(dir: &Utf8Path, name: &str, cases: &[(&str, bool)], phase_s: f64) -> Utf8PathBuf {
    use pipeline::report::{PhaseReport, Status};
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    let mut junit = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"nextest-run\">\n",
    );
    junit.push_str(&format!(
        "<testsuite name=\"e2e-tests::gateway\" tests=\"{}\">\n",
        cases.len()
    ));
    let mut counts = test_runner::Counts::default();
    for (case, ok) in cases {
        counts.run += 1;
        if *ok {
            counts.passed += 1;
            junit.push_str(&format!(
                "<testcase name=\"{case}\" classname=\"e2e-tests::gateway\" time=\"0.1\"/>\n"
            ));
        } else {
            counts.failed += 1;
            junit.push_str(&format!("<testcase name=\"{case}\" classname=\"e2e-tests::gateway\" time=\"0.1\"><failure type=\"test failure\">{case} broke</failure></testcase>\n"));
        }
    }
    junit.push_str("</testsuite>\n</testsuites>\n");
    std::fs::write(folder.join("junit.xml"), junit).unwrap();
    let mut report = pipeline::RunReport::new(&format!("e2e-ci-{name}"), folder.join("run"));
    report.tests = Some(counts);
    // The machine that ran it is gone: the path it names does not exist here.
    report.junit = Some("/gone/junit.xml".into());
    report.phases.push(PhaseReport {
        phase: pipeline::Phase::Build,
        status: Status::Ok,
        seconds: phase_s,
        started_at: 0.0,
        note: String::new(),
    });
    if counts.failed > 0 {
        report.verdict = pipeline::Verdict::Failed(pipeline::Failure::Tests(format!("{counts}")));
    }
    let path = folder.join("report.json");
    std::fs::write(&path, serde_json::to_string(&report).unwrap()).unwrap();
    path
}

#[test]
fn shards_merge_into_one_summary_and_one_junit_report() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(tmp.path()).unwrap();
    let one = shard(dir, "1", &[("a", true), ("b", true)], 4.0);
    let two = shard(dir, "2", &[("c", true), ("d", false)], 9.5);
    let out = dir.join("merged/junit.xml");
    let r = xtask(
        dir,
        &[
            "report",
            "merge",
            "--junit",
            out.as_str(),
            one.as_str(),
            two.as_str(),
        ],
    );
    assert_eq!(
        r.code, 1,
        "a shard's failed test fails the merge: {}{}",
        r.stdout, r.stderr
    );
    assert!(
        r.stdout.contains("e2e shards merged: 2 reports"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("3 passed, 1 failed, 0 skipped"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("slowest phases: build 9.5 s (shard 2)"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("FAILED (shard 2): e2e-tests::gateway d: d broke"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("(4 test cases from 2 files)"),
        "{}",
        r.stdout
    );
    let merged = std::fs::read_to_string(&out).unwrap();
    assert_eq!(merged.matches("<testcase").count(), 4, "{merged}");
    // All green: exit 0.
    let r = xtask(dir, &["report", "merge", one.as_str()]);
    assert_eq!(r.code, 0, "{}{}", r.stdout, r.stderr);
    // Not a report: exit 2, naming the file.
    let r = xtask(dir, &["report", "merge", out.as_str()]);
    assert_eq!(r.code, 2, "{}{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("not a run report"), "{}", r.stderr);
}
