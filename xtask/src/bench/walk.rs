//! The context walk against `find` and `du` on a generated 100,000-file tree.

use build_context::{Context, WalkOptions};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use super::{Comparison, time};

/// Times listing and sizing against `find -type f` and `du -sb`: the walk
/// itself, and the commands a user types (`clean-context --list`, and the
/// size report `clean-context --dry-run --json`, which also plans the
/// artifact cleanup and works out what the Dockerfile transfers).
pub fn run(runs: usize, xtask: &Utf8Path) -> anyhow::Result<Vec<Comparison>> {
    let files = 100_000;
    let tmp = tempfile::tempdir()?;
    let root = Utf8PathBuf::from_path_buf(tmp.path().canonicalize()?)
        .map_err(|p| anyhow::anyhow!("{p:?}"))?;
    eprintln!("walk: generating {files} files under {root}");
    generate(&root, files)?;
    let sh = Shell::new()?;
    let ctx = Context::open(&root, None)?;

    let mut list = Comparison::new("list files", "find -type f");
    let mut sizes = Comparison::new("sum sizes", "du -sb");
    let mut list_cmd = Comparison::new("--list", "find -type f");
    let mut report_cmd = Comparison::new("size report", "du -sb");
    for _ in 0..runs {
        // Alternate, so drift in the machine's state hits both sides alike.
        list.theirs.push(time(|| {
            cmd!(sh, "find {root} -type f")
                .quiet()
                .ignore_stdout()
                .run()
        })?);
        list.ours.push(time(|| ctx.list())?);
        sizes.theirs.push(time(|| {
            cmd!(sh, "du -sb {root}").quiet().ignore_stdout().run()
        })?);
        sizes.ours.push(time(|| {
            ctx.walk(WalkOptions {
                sizes: true,
                into_pruned: true,
            })
        })?);
        list_cmd.theirs.push(list.theirs[list.theirs.len() - 1]);
        list_cmd.ours.push(time(|| {
            cmd!(sh, "{xtask} clean-context --context {root} --list")
                .quiet()
                .ignore_stdout()
                .run()
        })?);
        report_cmd.theirs.push(sizes.theirs[sizes.theirs.len() - 1]);
        report_cmd.ours.push(time(|| {
            cmd!(
                sh,
                "{xtask} clean-context --context {root} --dry-run --json"
            )
            .quiet()
            .ignore_stdout()
            .run()
        })?);
    }
    let sent = ctx.list()?.len();
    eprintln!("walk: {files} files, {sent} sent after .dockerignore");
    Ok(vec![list, sizes, list_cmd, report_cmd])
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
    std::fs::write(root.join("Dockerfile"), "FROM scratch\nCOPY . /app/\n")?;
    Ok(())
}
