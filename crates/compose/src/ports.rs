//! Published host ports before `up`: free, this project's own, taken (by
//! whom), or, when we may not bind them ourselves, left to the engine.

use std::collections::BTreeSet;

use camino::Utf8Path;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::project::Project;

/// A published host port and who has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortStatus {
    pub port: u16,
    pub service: String,
    pub state: PortState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PortState {
    Free,
    /// Published by this project's own containers (a stack to reuse).
    Ours,
    /// Held by someone else, named.
    Taken(String),
    /// We may not bind it ourselves (a port below 1024 for a user who is not
    /// root): no evidence either way. The engine, which binds it, decides.
    Unknown(String),
}

impl Project {
    /// Every published host port must be free, or published by this project already.
    pub fn check_ports(&self) -> Result<()> {
        for p in self.port_status()? {
            if let PortState::Taken(holder) = p.state {
                return Err(Error::PortTaken {
                    port: p.port,
                    service: p.service,
                    holder,
                });
            }
        }
        Ok(())
    }

    /// Each published host port: free, held by this project, or taken (by whom).
    pub fn port_status(&self) -> Result<Vec<PortStatus>> {
        let ours: BTreeSet<u16> = self
            .ps()?
            .iter()
            .flat_map(|c| c.publishers.iter().flatten().map(|p| p.published_port))
            .collect();
        let mut out = Vec::new();
        for (service, s) in &self.stack.services {
            for port in &s.ports {
                let Some(published) = port
                    .published
                    .as_deref()
                    .and_then(|p| p.parse::<u16>().ok())
                else {
                    continue;
                };
                let ip = port
                    .host_ip
                    .clone()
                    .filter(|i| !i.is_empty())
                    .unwrap_or_else(|| "0.0.0.0".into());
                let state = if ours.contains(&published) {
                    PortState::Ours
                } else if crate::Engine::remote_host().is_some() {
                    // Another machine binds it: ask its engine, not this machine.
                    match engine_holder(published) {
                        Some(names) => PortState::Taken(names),
                        None => PortState::Free,
                    }
                } else {
                    match std::net::TcpListener::bind((ip.as_str(), published)) {
                        Ok(_) => PortState::Free,
                        Err(e) => port_state(&e, || holder(published)),
                    }
                };
                out.push(PortStatus {
                    port: published,
                    service: service.clone(),
                    state,
                });
            }
        }
        Ok(out)
    }
}

/// What a failed test bind says: only "address in use" is evidence that
/// someone holds the port; a permission error (a port below 1024 for a user
/// without CAP_NET_BIND_SERVICE, where the daemon binds it for them) is not.
fn port_state(e: &std::io::Error, holder: impl FnOnce() -> String) -> PortState {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => PortState::Taken(holder()),
        _ => PortState::Unknown(e.to_string()),
    }
}

/// Who holds a host port: a container (by name and project), or a process.
fn holder(port: u16) -> String {
    engine_holder(port).unwrap_or_else(|| {
        format!("a process outside Docker (find it with `ss -ltnp 'sport = :{port}'`)")
    })
}

/// The engine's containers that publish `port`, named, if any.
fn engine_holder(port: u16) -> Option<String> {
    let filter = format!("publish={port}");
    let fmt = "{{.Names}} (project {{.Label \"com.docker.compose.project\"}})";
    match crate::docker(["ps", "--filter", &filter, "--format", fmt]).text(Utf8Path::new(".")) {
        Ok(names) if !names.is_empty() => Some(format!("container {}", names.replace('\n', ", "))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_address_in_use_means_taken() {
        use std::io::{Error, ErrorKind};
        let holder = || "container x".to_owned();
        assert_eq!(
            port_state(&Error::from(ErrorKind::AddrInUse), holder),
            PortState::Taken("container x".into())
        );
        assert!(matches!(
            port_state(&Error::from(ErrorKind::PermissionDenied), holder),
            PortState::Unknown(_)
        ));
        assert!(matches!(
            port_state(&Error::from(ErrorKind::AddrNotAvailable), holder),
            PortState::Unknown(_)
        ));
    }
}
