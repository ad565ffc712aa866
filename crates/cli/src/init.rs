//! `cargo e2e init`: a commented starting config written from the
//! workspace's compose file, as Compose itself resolves it. It never
//! overwrites a file that says something else.

use std::fmt::Write as _;

use anyhow::Context as _;
use camino::{Utf8Path, Utf8PathBuf};
use compose::{ProjectSpec, Stack};
use pipeline::Workspace;

use crate::exit::Exit;
use crate::flags::Init;

/// Where `init` looks for a compose file, in order, in the workspace root.
const COMPOSE_CANDIDATES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "docker/compose.yaml",
    "docker/compose.yml",
    "docker/docker-compose.yaml",
    "docker/docker-compose.yml",
];

pub fn run(flags: &Init) -> anyhow::Result<()> {
    let ws = crate::workspace()?;
    let out = flags
        .config
        .config
        .clone()
        .unwrap_or_else(|| ws.root.join("e2e.yaml"));
    let out = absolute(&out)?;
    let compose = match &flags.compose {
        Some(f) => absolute(f)?,
        None => COMPOSE_CANDIDATES
            .iter()
            .map(|c| ws.root.join(c))
            .find(|p| p.is_file())
            .ok_or_else(|| {
                Exit::usage(format!(
                    "no compose file in {}: looked for {}; pass --compose PATH",
                    ws.root,
                    COMPOSE_CANDIDATES.join(", ")
                ))
            })?,
    };
    let dir = out.parent().unwrap_or(&ws.root).to_owned();
    let spec = ProjectSpec {
        dir: dir.clone(),
        files: vec![compose.clone()],
        ..ProjectSpec::default()
    };
    // Compose's own error names the file: it comes first, as it is.
    let stack = Stack::load(&spec)?;
    let members = test_members(&ws);
    let text = render(&ws, &dir, &compose, &stack, &members, flags.certs);
    if flags.print {
        print!("{text}");
        return Ok(());
    }
    match std::fs::read_to_string(&out) {
        Ok(old) if old == text => {
            println!("{} is up to date", ws.shown(&out));
            Ok(())
        }
        Ok(_) => Err(Exit::usage(format!(
            "{} exists and says something else; nothing written (`cargo e2e init --print` shows what init would write)",
            ws.shown(&out)
        ))
        .into()),
        Err(_) => {
            std::fs::write(&out, &text).with_context(|| format!("writing {out}"))?;
            println!(
                "wrote {} from {}; read it, then run `cargo e2e`",
                ws.shown(&out),
                ws.shown(&compose)
            );
            Ok(())
        }
    }
}

fn absolute(p: &Utf8Path) -> anyhow::Result<Utf8PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    Ok(crate::current_dir()?.join(p))
}

/// Members whose names say they hold E2E tests.
fn test_members(ws: &Workspace) -> Vec<String> {
    let mut names: Vec<String> = ws
        .members
        .iter()
        .filter(|n| {
            ["e2e", "integration", "acceptance"]
                .iter()
                .any(|k| n.contains(k))
        })
        .cloned()
        .collect();
    names.sort();
    names
}

/// `path` relative to `dir` when below it, else absolute.
fn relative(dir: &Utf8Path, path: &Utf8Path) -> String {
    match path.strip_prefix(dir) {
        Ok(p) if p.as_str().is_empty() => ".".into(),
        Ok(p) => p.to_string(),
        Err(_) => path.to_string(),
    }
}

/// A variable name for `{service:port}`: `API_8080`.
fn var_name(service: &str, port: u16) -> String {
    let s: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{s}_{port}")
}

fn render(
    ws: &Workspace,
    dir: &Utf8Path,
    compose: &Utf8Path,
    stack: &Stack,
    members: &[String],
    certs: bool,
) -> String {
    let mut t = String::new();
    let w = &mut t;
    let _ = writeln!(
        w,
        "# cargo e2e config, written by `cargo e2e init` from {}.",
        ws.shown(compose)
    );
    let _ = writeln!(
        w,
        "# Every key is optional; paths are relative to this file's folder."
    );
    let _ = writeln!(
        w,
        "# Unknown keys and wrong types are errors that name the line.\n"
    );
    let _ = writeln!(w, "compose:");
    let _ = writeln!(w, "  files: [{}]", relative(dir, compose));
    let _ = writeln!(
        w,
        "  # project: name          # default: e2e-<workspace folder>; unique per run under CI"
    );
    let _ = writeln!(
        w,
        "  # ephemeral_ports: true  # ports picked by the engine: runs of this stack can share one\n"
    );

    let contexts: Vec<String> = stack
        .build_contexts()
        .into_iter()
        .map(|(s, c, _)| format!("{s} ({})", relative(dir, c)))
        .collect();
    let _ = writeln!(w, "context:");
    if contexts.is_empty() {
        let _ = writeln!(
            w,
            "  # The stack builds no image: nothing to clean or measure."
        );
    } else {
        let _ = writeln!(
            w,
            "  # Deleted before each build where git does not track them (.dockerignore syntax),"
        );
        let _ = writeln!(w, "  # in the build contexts: {}", contexts.join(", "));
    }
    let defaults: Vec<String> = build_context::artifacts::default_patterns()
        .iter()
        .map(|p| format!("{p:?}"))
        .collect();
    let _ = writeln!(w, "  artifacts: [{}]", defaults.join(", "));
    let _ = writeln!(
        w,
        "  # budget: 200MB          # fail when a context sends more\n"
    );

    if certs {
        let _ = writeln!(
            w,
            "certs:                      # a CA and a server certificate for the stack's TLS"
        );
        let _ = writeln!(
            w,
            "  # dir: certs             # default: <target>/e2e/certs; mount it as ${{E2E_CERTS_DIR}}"
        );
        let _ = writeln!(
            w,
            "  hosts: []                # added to localhost, 127.0.0.1 and every service name"
        );
        let _ = writeln!(w, "  validity_days: 90");
        let _ = writeln!(w, "  renew_within_days: 14\n");
    }

    let _ = writeln!(w, "readiness:");
    let _ = writeln!(w, "  timeout_s: 120");
    let _ = writeln!(
        w,
        "  # A service is ready when its healthcheck passes; without one, when a TCP"
    );
    let _ = writeln!(
        w,
        "  # connection to each published port stays open; else when it runs (or exited 0)."
    );
    let _ = writeln!(w, "  # services:");
    for (name, s) in &stack.services {
        let probe = match s.published_tcp().first() {
            Some(p) if !s.has_healthcheck() => {
                format!("{{ http: {{ port: {p}, path: /, status: 200 }} }}")
            }
            _ if s.has_healthcheck() => "healthcheck".to_owned(),
            _ => "running                # or: exited, { log: \"ready\" }".to_owned(),
        };
        let _ = writeln!(w, "  #   {name}: {probe}");
    }
    let _ = writeln!(w);

    let _ = writeln!(w, "tests:");
    let _ = writeln!(
        w,
        "  profile: e2e              # supplied by cargo e2e when .config/nextest.toml lacks it"
    );
    if members.is_empty() {
        let _ = writeln!(
            w,
            "  # packages: [my-e2e-tests] # the packages holding the E2E tests (default: the workspace)"
        );
    } else {
        let _ = writeln!(w, "  packages: [{}]", members.join(", "));
    }
    let _ = writeln!(w, "  # filterset: \"test(/smoke/)\"");
    // Every published port, UDP ones too (DNS, TURN, syslog): `{svc:53/udp}`.
    let ports: Vec<(String, u16, bool)> = stack
        .services
        .iter()
        .flat_map(|(name, s)| {
            s.ports
                .iter()
                .filter(|p| p.published.is_some())
                .map(move |p| (name.clone(), p.target, p.protocol.as_deref() == Some("udp")))
        })
        .collect();
    if ports.is_empty() {
        let _ = writeln!(
            w,
            "  # env:                     # {{service:port}} becomes HOST:PORT where it is published"
        );
        let _ = writeln!(w, "  #   API: \"http://{{api:8080}}\"");
    } else {
        let _ = writeln!(
            w,
            "  env:                       # {{service:port}} becomes HOST:PORT where it is published"
        );
        for (service, port, udp) in ports {
            let (var, suffix) = match udp {
                false => (var_name(&service, port), ""),
                true => (format!("{}_UDP", var_name(&service, port)), "/udp"),
            };
            let _ = writeln!(w, "    {var}: \"{{{service}:{port}{suffix}}}\"");
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(w, "teardown:");
    let _ = writeln!(
        w,
        "  # policy: stop             # keep | stop | down | purge (default: stop; purge under CI)"
    );
    let _ = writeln!(
        w,
        "  grace_s: 2                 # seconds after SIGTERM before SIGKILL"
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_names_are_shell_safe() {
        assert_eq!(var_name("api", 8080), "API_8080");
        assert_eq!(var_name("web-proxy.v2", 80), "WEB_PROXY_V2_80");
    }
}
