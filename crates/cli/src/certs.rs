//! `cargo e2e certs`: the certs phase on its own.

use anyhow::Context as _;
use certs::Mode;

use crate::exit::Exit;
use crate::flags::Certs;

pub fn run(flags: &Certs) -> anyhow::Result<()> {
    let config = crate::load_config_anywhere(flags.config.config.as_deref())?;
    let Some(spec) = spec(&config)? else {
        return Err(Exit::usage(format!(
            "{} has no certs section, so the stack uses no certificates; add `certs:` to it (or run `cargo e2e init --certs --print` to see one)",
            config.path
        ))
        .into());
    };
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
        return Err(Exit::failed(format!(
            "certificates need work: {}",
            report.reason.replace('\n', "; ")
        ))
        .into());
    }
    Ok(())
}

/// The certificate spec from the config, `None` without a certs section:
/// hosts are localhost, 127.0.0.1, every service of the compose stack (when
/// its files exist), and the extras.
pub fn spec(config: &pipeline::Config) -> anyhow::Result<Option<certs::Spec>> {
    if config.certs.is_none() {
        return Ok(None);
    }
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
    Ok(config.certs_spec(services))
}
