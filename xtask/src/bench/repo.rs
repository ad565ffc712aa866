//! A repository shaped like the one that motivated this project: ~650 MiB,
//! nearly all of it coverage output and test binaries, and a TLS gateway whose
//! Dockerfile builds from the repository root (`COPY . /src`), in front of a
//! backend. Both services ignore SIGTERM, as many real ones do.

use std::io::Write as _;

use camino::{Utf8Path, Utf8PathBuf};

/// Which way the repository will be driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// No ignore rules for the artifacts; certificates made by the script, in the repo.
    Naive,
    /// Ignore rules, a git history of the sources, and an e2e.yaml for the tool.
    Tool,
    /// The ignore rules a team adds once the naive script hurts; certificates
    /// made once by its script.
    Optimized,
}

/// The root Dockerfile: what "build from the repository root" looks like.
const DOCKERFILE: &str = "FROM scratch\nCOPY . /src\nENTRYPOINT [\"/src/bin/demo-gateway\"]\n";

const COMPOSE: &str = r#"services:
  backend:
    build:
      context: ./backend
    environment:
      IGNORE_SIGTERM: "1"
    healthcheck:
      test: ["CMD", "/demo-backend", "probe"]
      interval: 1s
      timeout: 3s
      retries: 30
  gateway:
    build:
      context: .
    depends_on:
      backend:
        condition: service_healthy
    ports:
      - "127.0.0.1:${BENCH_PORT}:8443"
    environment:
      BACKEND_URL: http://backend:8080
      IGNORE_SIGTERM: "1"
    volumes:
      - ${E2E_CERTS_DIR:-./certs}:/certs:ro
    healthcheck:
      test: ["CMD", "/src/bin/demo-gateway", "probe"]
      interval: 1s
      timeout: 3s
      retries: 30
"#;

/// Writes the whole repository; `binaries` holds demo-gateway and demo-backend.
pub fn generate(
    root: &Utf8Path,
    flavor: Flavor,
    binaries: &Utf8Path,
    port: u16,
) -> anyhow::Result<u64> {
    let mut bytes = write_sources(root)?;
    bytes += write_artifacts(root)?;
    write(root.join("Dockerfile"), DOCKERFILE.as_bytes())?;
    write(root.join("compose.yaml"), COMPOSE.as_bytes())?;
    write(
        root.join("backend/Dockerfile"),
        b"FROM scratch\nCOPY bin/demo-backend /demo-backend\nENTRYPOINT [\"/demo-backend\"]\n",
    )?;
    write(
        root.join("backend/.dockerignore"),
        b"*\n!bin/demo-backend\n",
    )?;
    for (name, to) in [("demo-gateway", "bin"), ("demo-backend", "backend/bin")] {
        std::fs::create_dir_all(root.join(to))?;
        std::fs::copy(binaries.join(name), root.join(to).join(name))?;
    }
    let ignore = ".git\n.e2e\n**/*.out\n**/*.test\n**/audit-results\n";
    match flavor {
        Flavor::Naive => write(root.join(".dockerignore"), b".git\n")?,
        Flavor::Optimized => write(root.join(".dockerignore"), ignore.as_bytes())?,
        Flavor::Tool => {
            write(root.join(".dockerignore"), ignore.as_bytes())?;
            write(
                root.join(".gitignore"),
                b"*.out\n*.test\naudit-results/\nbin/\n.e2e/\n",
            )?;
            let config = format!(
                "compose:\n  files: [compose.yaml]\n  env:\n    BENCH_PORT: \"{port}\"\n\
                 context:\n  artifacts: [\"**/*.out\", \"**/*.test\", \"**/audit-results\"]\n\
                 certs:\n  dir: .e2e/certs\n  ca_key_dir: .e2e/ca\n\
                 stage:\n  - {{ package: demo-gateway, to: bin, profile: image }}\n  - {{ package: demo-backend, to: backend/bin, profile: image }}\n\
                 tests:\n  packages: [e2e-tests]\n  env:\n    E2E_GATEWAY_URL: \"https://{{gateway:8443}}\"\n"
            );
            write(root.join("e2e.yaml"), config.as_bytes())?;
            let sh = xshell::Shell::new()?;
            sh.change_dir(root);
            xshell::cmd!(sh, "git init -q").run()?;
            xshell::cmd!(sh, "git add -A").run()?;
            xshell::cmd!(
                sh,
                "git -c user.name=bench -c user.email=bench@localhost commit -q -m sources"
            )
            .run()?;
        }
    }
    Ok(bytes)
}

/// Sources, tracked by git: service code and a `pkg/` tree (~22 MiB).
fn write_sources(root: &Utf8Path) -> anyhow::Result<u64> {
    let mut data = Data::new(1);
    let mut bytes = 0;
    for s in 0..15 {
        for k in 0..20 {
            bytes += data.file(
                &root.join(format!("services/svc-{s:02}/file{k:02}.go")),
                4 << 10,
            )?;
        }
    }
    for k in 0..100 {
        bytes += data.file(&root.join(format!("mcp-gateway/src/mod{k:03}.ts")), 8 << 10)?;
    }
    for d in 0..20 {
        for k in 0..100 {
            bytes += data.file(&root.join(format!("pkg/p{d:02}/f{k:03}.go")), 10 << 10)?;
        }
    }
    Ok(bytes)
}

/// Coverage output and test binaries (~630 MiB): what unit-test runs leave
/// behind. Written again before each tool run, as the next test run would.
pub fn write_artifacts(root: &Utf8Path) -> anyhow::Result<u64> {
    let mut data = Data::new(2);
    let mut bytes = 0;
    for r in 0..27 {
        for k in 0..10 {
            bytes += data.file(
                &root.join(format!("audit-results/run-{r:02}/cover-{k:02}.out")),
                1 << 20,
            )?;
        }
    }
    for s in 0..15 {
        bytes += data.file(
            &root.join(format!("services/svc-{s:02}/svc.test")),
            10 << 20,
        )?;
        bytes += data.file(
            &root.join(format!("test/suite-{s:02}/suite.test")),
            10 << 20,
        )?;
    }
    for k in 0..3 {
        bytes += data.file(
            &root.join(format!("mcp-gateway/build/mcp-{k}.test")),
            20 << 20,
        )?;
    }
    Ok(bytes)
}

/// One source file changed, as between two runs of a working day.
pub fn change_a_source(root: &Utf8Path, n: usize) -> anyhow::Result<()> {
    let path = root.join("services/svc-00/file00.go");
    let mut f = std::fs::OpenOptions::new().append(true).open(&path)?;
    writeln!(f, "// edit {n}")?;
    Ok(())
}

fn write(path: Utf8PathBuf, bytes: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Incompressible bytes, fast: one random block, varied per file and per
/// block, so no two files (and no two blocks) are alike.
struct Data {
    block: Vec<u8>,
    counter: u64,
}

impl Data {
    fn new(seed: u64) -> Data {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let block = (0..1 << 16)
            .flat_map(|_| {
                // xorshift64
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        Data { block, counter: 0 }
    }

    fn file(&mut self, path: &Utf8Path, size: usize) -> anyhow::Result<u64> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        let mut written = 0;
        while written < size {
            self.counter += 1;
            let n = (size - written).min(self.block.len());
            out.write_all(&self.counter.to_le_bytes())?;
            out.write_all(&self.block[8..n.max(8)])?;
            written += n.max(8);
        }
        out.flush()?;
        Ok(written as u64)
    }
}
