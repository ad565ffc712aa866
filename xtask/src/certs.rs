//! `cargo xtask certs`: the certs phase on its own.

use anyhow::Context as _;
use certs::Mode;

use crate::exit::Limit;
use crate::flags::Certs;

pub fn run(flags: &Certs) -> anyhow::Result<()> {
    let config = crate::load_config(flags.config.as_deref())?;
    let spec = spec(&config)?;
    let mode = if flags.check {
        Mode::Check
    } else if flags.force {
        Mode::Force
    } else {
        Mode::Ensure
    };
    let report = certs::ensure(&spec, mode).context("certs phase")?;
    if flags.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    if flags.check && report.action != certs::Action::Reused {
        return Err(Limit(format!(
            "certificates need work: {}",
            report.reason.replace('\n', "; ")
        ))
        .into());
    }
    Ok(())
}

/// The certificate spec from the config: hosts are localhost, 127.0.0.1,
/// every service of the compose stack, and the configured extras.
pub fn spec(config: &pipeline::Config) -> anyhow::Result<certs::Spec> {
    let c = &config.certs;
    let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
    let files: Vec<_> = config
        .compose
        .files
        .iter()
        .map(|f| config.resolve(f))
        .collect();
    if files.iter().all(|f| f.exists()) {
        let spec = compose::ProjectSpec {
            dir: config.base.clone(),
            files: config.compose.files.clone(),
            project: config.compose.project.clone(),
            profiles: config.compose.profiles.clone(),
        };
        let stack =
            compose::Stack::load(&spec).context("reading service names from the compose stack")?;
        hosts.extend(stack.services.keys().cloned());
    }
    for h in &c.hosts {
        if !hosts.contains(h) {
            hosts.push(h.clone());
        }
    }
    Ok(certs::Spec {
        dir: config.resolve(&c.dir),
        ca_key_dir: config.resolve(&c.ca_key_dir),
        hosts,
        validity_days: c.validity_days,
        renew_within_days: c.renew_within_days,
        client: c.client,
    })
}
