//! `cargo xtask bench`: side-by-side timings against the tools people use
//! instead, medians over alternating runs, reported as ratios.

use std::time::Instant;

use build_context::{Context, WalkOptions};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use crate::flags::Bench;

pub fn run(flags: &Bench) -> anyhow::Result<()> {
    let (files, runs) = if flags.quick {
        (100_000, 5)
    } else {
        (100_000, 11)
    };
    let tmp = tempfile::tempdir()?;
    let root = Utf8PathBuf::from_path_buf(tmp.path().canonicalize()?)
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    eprintln!("generating {files} files under {root} ...");
    generate(&root, files)?;
    let sh = Shell::new()?;
    let ctx = Context::open(&root, None)?;

    let mut rows: Vec<Row> = vec![
        Row::new("list files", "find -type f"),
        Row::new("sum sizes", "du -sb"),
    ];
    for _ in 0..runs {
        // Alternate, so drift in the machine's state hits both sides alike.
        rows[0].theirs.push(time(|| {
            cmd!(sh, "find {root} -type f")
                .quiet()
                .ignore_stdout()
                .run()
                .map(drop)
        })?);
        rows[0].ours.push(time(|| ctx.list().map(drop))?);
        rows[1].theirs.push(time(|| {
            cmd!(sh, "du -sb {root}")
                .quiet()
                .ignore_stdout()
                .run()
                .map(drop)
        })?);
        rows[1].ours.push(time(|| {
            ctx.walk(WalkOptions {
                sizes: true,
                into_pruned: true,
            })
            .map(drop)
        })?);
    }
    let listed = ctx.list()?.len();
    println!(
        "context walk: {files} files, {listed} sent after .dockerignore ({runs} runs each, medians; {})",
        machine()
    );
    println!(
        "{:<12} {:>12} {:>14} {:>10} {:>8}",
        "task", "ours", "theirs", "tool", "ratio"
    );
    let mut json = Vec::new();
    for r in &mut rows {
        let (ours, theirs) = (median(&mut r.ours), median(&mut r.theirs));
        println!(
            "{:<12} {:>10.3} s {:>12.3} s {:>10} {:>7.2}x",
            r.task,
            ours,
            theirs,
            r.tool,
            ours / theirs
        );
        json.push(serde_json::json!({ "name": r.task, "tool_s": ours, "baseline": r.tool, "baseline_s": theirs, "runs": runs }));
    }
    let out = crate::project_root().join("target/e2e");
    std::fs::create_dir_all(&out)?;
    std::fs::write(
        out.join("bench-walk.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    println!(
        "(ratio = ours / theirs; below 1 means faster) written to {}",
        out.join("bench-walk.json")
    );
    Ok(())
}

struct Row {
    task: &'static str,
    tool: &'static str,
    ours: Vec<f64>,
    theirs: Vec<f64>,
}

impl Row {
    fn new(task: &'static str, tool: &'static str) -> Row {
        Row {
            task,
            tool,
            ours: Vec::new(),
            theirs: Vec::new(),
        }
    }
}

fn time<E: Into<anyhow::Error>>(f: impl FnOnce() -> Result<(), E>) -> anyhow::Result<f64> {
    let start = Instant::now();
    f().map_err(Into::into)?;
    Ok(start.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A tree shaped like a monorepo: folders of source files with artifacts among them.
fn generate(root: &Utf8Path, files: usize) -> anyhow::Result<()> {
    let per_dir = 100;
    for d in 0..files.div_ceil(per_dir) {
        let dir = root.join(format!("pkg{:02}/mod{:03}", d % 20, d));
        std::fs::create_dir_all(&dir)?;
        for f in 0..per_dir.min(files - d * per_dir) {
            let name = match f % 10 {
                0 => format!("cover{f}.out"),
                1 => format!("unit{f}.test"),
                _ => format!("file{f}.rs"),
            };
            std::fs::write(dir.join(name), vec![b'x'; 64 + (f * 37) % 2000])?;
        }
    }
    std::fs::write(root.join(".dockerignore"), "**/*.out\n**/*.test\n")?;
    Ok(())
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {}", std::env::consts::ARCH)
}
