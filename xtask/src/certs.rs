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
/// every service of the compose stack (when its files exist), and the extras.
pub fn spec(config: &pipeline::Config) -> anyhow::Result<certs::Spec> {
    let files_exist = config
        .compose
        .files
        .iter()
        .all(|f| config.resolve(f).exists());
    let services = if files_exist {
        let stack = compose::Stack::load(&config.project_spec(None))
            .context("reading service names from the compose stack")?;
        stack.services.into_keys().collect()
    } else {
        Vec::new()
    };
    Ok(pipeline::e2e::certs_spec(config, services))
}
