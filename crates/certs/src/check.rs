//! The verdict on each file, with the reason a person would want to read.

use std::net::IpAddr;

use camino::Utf8Path;
use rcgen::{KeyPair, PublicKeyData};
use time::OffsetDateTime;
use x509_parser::extensions::GeneralName;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::X509Certificate;

use crate::{Action, Files, Report, Spec};

/// Keep a file, or (re)make it for a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Keep { days_left: i64 },
    Make { reason: String, renewal: bool },
}

impl Verdict {
    pub fn renews(&self) -> bool {
        matches!(self, Verdict::Make { .. })
    }

    fn make(reason: String) -> Verdict {
        Verdict::Make {
            reason,
            renewal: false,
        }
    }
}

/// The verdicts on the CA, the server certificate and the client certificate.
#[derive(Debug, Clone)]
pub struct Plan {
    pub ca: Verdict,
    pub server: Verdict,
    pub client: Option<Verdict>,
}

impl Plan {
    pub(crate) fn force(&mut self) {
        let forced = || Verdict::make("regenerated: --force".into());
        self.ca = forced();
        self.server = forced();
        if self.client.is_some() {
            self.client = Some(forced());
        }
    }

    fn verdicts(&self) -> impl Iterator<Item = &Verdict> {
        [&self.ca, &self.server]
            .into_iter()
            .chain(self.client.as_ref())
    }

    pub(crate) fn report(&self, files: Files, dry_run: bool) -> Report {
        let made: Vec<&Verdict> = self.verdicts().filter(|v| v.renews()).collect();
        let action = if made.is_empty() {
            Action::Reused
        } else if made
            .iter()
            .all(|v| matches!(v, Verdict::Make { renewal: true, .. }))
        {
            Action::Renewed
        } else {
            Action::Generated
        };
        let reason = if made.is_empty() {
            match &self.server {
                Verdict::Keep { days_left } => {
                    format!("valid: server.crt expires in {days_left} days")
                }
                Verdict::Make { .. } => unreachable!("nothing is made"),
            }
        } else {
            let mut lines: Vec<String> = Vec::new();
            for v in made {
                if let Verdict::Make { reason, .. } = v
                    && !lines.contains(reason)
                {
                    lines.push(reason.clone());
                }
            }
            lines.join("\n")
        };
        Report {
            action,
            reason,
            files,
            dry_run,
        }
    }
}

/// Inspects every file as of `now`.
pub fn inspect(spec: &Spec, now: OffsetDateTime) -> Plan {
    let files = spec.files();
    let window = i64::from(spec.renew_within_days);
    let ca = check_ca(&files.ca_cert, &files.ca_key, now, window);
    let ca_pem = std::fs::read(&files.ca_cert).ok();
    let leaf = |cert: &Utf8Path, key: &Utf8Path, name: &str, hosts: &[String]| {
        if ca.renews() {
            let missing = !cert.exists();
            let verb = if missing { "generated" } else { "regenerated" };
            let why = if missing {
                "missing"
            } else {
                "its CA is regenerated"
            };
            return Verdict::make(format!("{verb} {name}: {why}"));
        }
        check_leaf(
            cert,
            key,
            ca_pem.as_deref().unwrap_or_default(),
            hosts,
            now,
            window,
        )
    };
    let server = leaf(&files.cert, &files.key, "server.crt", &spec.hosts);
    let client = match (&files.client_cert, &files.client_key) {
        (Some(c), Some(k)) => Some(leaf(c, k, "client.crt", &[])),
        _ => None,
    };
    Plan { ca, server, client }
}

fn check_ca(
    cert_path: &Utf8Path,
    key_path: &Utf8Path,
    now: OffsetDateTime,
    window: i64,
) -> Verdict {
    let name = "ca.crt";
    let Ok(pem_bytes) = std::fs::read(cert_path) else {
        return Verdict::make(format!("generated {name}: missing"));
    };
    let Ok(key_pem) = std::fs::read_to_string(key_path) else {
        return Verdict::make(format!("regenerated {name}: ca.key is missing"));
    };
    with_cert(&pem_bytes, name, |cert| {
        key_matches(cert, &key_pem, name, "ca.key")?;
        if !cert.is_ca() {
            return Err(format!("regenerated {name}: not a CA certificate"));
        }
        if cert.verify_signature(None).is_err() {
            return Err(format!(
                "regenerated {name}: its self-signature does not verify"
            ));
        }
        Ok(())
    })
    .and_then(|()| expiry(&pem_bytes, name, now, window))
    .unwrap_or_else(|v| v)
}

fn check_leaf(
    cert_path: &Utf8Path,
    key_path: &Utf8Path,
    ca_pem: &[u8],
    hosts: &[String],
    now: OffsetDateTime,
    window: i64,
) -> Verdict {
    let name = cert_path.file_name().unwrap_or("certificate");
    let Ok(pem_bytes) = std::fs::read(cert_path) else {
        return Verdict::make(format!("generated {name}: missing"));
    };
    let Ok(key_pem) = std::fs::read_to_string(key_path) else {
        return Verdict::make(format!("regenerated {name}: its key is missing"));
    };
    let Ok((_, ca)) = parse_x509_pem(ca_pem) else {
        return Verdict::make(format!("regenerated {name}: ca.crt is unreadable"));
    };
    let Ok(ca) = ca.parse_x509() else {
        return Verdict::make(format!("regenerated {name}: ca.crt is unreadable"));
    };
    with_cert(&pem_bytes, name, |cert| {
        key_matches(cert, &key_pem, name, "key")?;
        if cert.issuer() != ca.subject() || cert.verify_signature(Some(ca.public_key())).is_err() {
            return Err(format!("regenerated {name}: not signed by ca.crt"));
        }
        let missing = missing_hosts(cert, hosts);
        if !missing.is_empty() {
            return Err(format!(
                "regenerated {name}: its names lack {}",
                missing.join(", ")
            ));
        }
        Ok(())
    })
    .and_then(|()| expiry(&pem_bytes, name, now, window))
    .unwrap_or_else(|v| v)
}

/// Parses a PEM certificate and runs `check` on it; corrupt input is a verdict.
/// The key in `key_pem` (`what`, for the message) parses and is the certificate's.
fn key_matches(
    cert: &X509Certificate<'_>,
    key_pem: &str,
    name: &str,
    what: &str,
) -> Result<(), String> {
    let key =
        KeyPair::from_pem(key_pem).map_err(|_| format!("regenerated {name}: {what} is corrupt"))?;
    if cert.public_key().subject_public_key.data.as_ref() != key.der_bytes() {
        return Err(format!(
            "regenerated {name}: key does not match certificate"
        ));
    }
    Ok(())
}

fn with_cert(
    pem_bytes: &[u8],
    name: &str,
    check: impl FnOnce(&X509Certificate<'_>) -> Result<(), String>,
) -> Result<(), Verdict> {
    let corrupt = || Verdict::make(format!("regenerated {name}: corrupt PEM"));
    let (_, pem) = parse_x509_pem(pem_bytes).map_err(|_| corrupt())?;
    let cert = pem.parse_x509().map_err(|_| corrupt())?;
    check(&cert).map_err(Verdict::make)
}

fn expiry(
    pem_bytes: &[u8],
    name: &str,
    now: OffsetDateTime,
    window: i64,
) -> Result<Verdict, Verdict> {
    let (_, pem) = parse_x509_pem(pem_bytes)
        .map_err(|_| Verdict::make(format!("regenerated {name}: corrupt PEM")))?;
    let cert = pem
        .parse_x509()
        .map_err(|_| Verdict::make(format!("regenerated {name}: corrupt PEM")))?;
    let now_ts = now.unix_timestamp();
    if cert.validity().not_before.timestamp() > now_ts {
        return Err(Verdict::make(format!("regenerated {name}: not valid yet")));
    }
    let seconds_left = cert.validity().not_after.timestamp() - now_ts;
    let days_left = seconds_left.div_euclid(86_400);
    if seconds_left <= 0 {
        return Err(Verdict::Make {
            reason: format!("renewed {name}: expired {} days ago", -days_left),
            renewal: true,
        });
    }
    if days_left < window {
        return Err(Verdict::Make {
            reason: format!("renewed {name}: expires in {days_left} days"),
            renewal: true,
        });
    }
    Ok(Verdict::Keep { days_left })
}

fn missing_hosts(cert: &X509Certificate<'_>, hosts: &[String]) -> Vec<String> {
    let mut dns: Vec<String> = Vec::new();
    let mut ips: Vec<IpAddr> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(d) => dns.push(d.to_ascii_lowercase()),
                GeneralName::IPAddress(bytes) => match bytes.len() {
                    4 => ips.push(IpAddr::from(<[u8; 4]>::try_from(*bytes).expect("4 bytes"))),
                    16 => ips.push(IpAddr::from(
                        <[u8; 16]>::try_from(*bytes).expect("16 bytes"),
                    )),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    hosts
        .iter()
        .filter(|h| match h.parse::<IpAddr>() {
            Ok(ip) => !ips.contains(&ip),
            Err(_) => !dns.contains(&h.to_ascii_lowercase()),
        })
        .cloned()
        .collect()
}

/// The expiry of a PEM certificate.
pub(crate) fn not_after(pem: &str) -> Option<OffsetDateTime> {
    let (_, pem) = parse_x509_pem(pem.as_bytes()).ok()?;
    let cert = pem.parse_x509().ok()?;
    OffsetDateTime::from_unix_timestamp(cert.validity().not_after.timestamp()).ok()
}
