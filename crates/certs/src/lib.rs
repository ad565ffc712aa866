//! The stack's TLS material: a local CA and a server certificate (optionally a
//! client one), checked on every run and regenerated only when something is
//! missing, corrupt, mismatched, of the wrong names, or near expiry.
//!
//! The CA's private key lives in its own folder, apart from the certificate
//! folder that containers mount, so no container and no build context sees it.

mod check;
mod write;

use std::net::IpAddr;

use camino::{Utf8Path, Utf8PathBuf};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use serde::Serialize;
use time::{Duration, OffsetDateTime};

pub use check::{Verdict, inspect};

/// What to keep valid, and where.
#[derive(Debug, Clone)]
pub struct Spec {
    /// `ca.crt`, `server.crt`, `server.key` (and `client.*`): safe to mount.
    pub dir: Utf8PathBuf,
    /// `ca.key` only; never mounted, never in a build context.
    pub ca_key_dir: Utf8PathBuf,
    /// DNS names and IP addresses the server certificate must cover.
    pub hosts: Vec<String>,
    pub validity_days: u32,
    /// Renew what expires within this many days.
    pub renew_within_days: u32,
    /// Also issue a client certificate, for mutual TLS.
    pub client: bool,
}

/// The files a run uses.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Files {
    pub ca_cert: Utf8PathBuf,
    pub cert: Utf8PathBuf,
    pub key: Utf8PathBuf,
    pub ca_key: Utf8PathBuf,
    pub client_cert: Option<Utf8PathBuf>,
    pub client_key: Option<Utf8PathBuf>,
}

impl Spec {
    pub fn files(&self) -> Files {
        Files {
            ca_cert: self.dir.join("ca.crt"),
            cert: self.dir.join("server.crt"),
            key: self.dir.join("server.key"),
            ca_key: self.ca_key_dir.join("ca.key"),
            client_cert: self.client.then(|| self.dir.join("client.crt")),
            client_key: self.client.then(|| self.dir.join("client.key")),
        }
    }

    /// The CA lives ten leaf lifetimes, so renewing a leaf keeps every trust store valid.
    fn ca_validity_days(&self) -> u32 {
        self.validity_days.saturating_mul(10)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Reused,
    Generated,
    Renewed,
}

/// What `ensure` did (or, with `Mode::Check`, would do), and why.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub action: Action,
    /// One line per regenerated file, e.g. "renewed server.crt: expires in 3 days".
    pub reason: String,
    pub files: Files,
    /// Nothing was written (`--check`).
    pub dry_run: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Inspect only.
    Check,
    /// Regenerate what needs it.
    Ensure,
    /// Regenerate everything, the CA included.
    Force,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write {path}")]
    Write {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot lock {path} (another run writing certificates?)")]
    Lock {
        path: Utf8PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate {what}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error(
        "the CA key folder {ca_key_dir} is inside the certificate folder {dir}, which containers mount; move it out"
    )]
    KeyInMountedDir {
        dir: Utf8PathBuf,
        ca_key_dir: Utf8PathBuf,
    },
    #[error("`{host}` is neither a DNS name nor an IP address; fix certs.hosts in the config")]
    BadHost { host: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Makes the certificates valid (or reports what would change, with `Mode::Check`).
pub fn ensure(spec: &Spec, mode: Mode) -> Result<Report> {
    ensure_at(spec, mode, OffsetDateTime::now_utc())
}

/// `ensure` as if the clock read `now`; tests use it to reach expiry without waiting.
pub fn ensure_at(spec: &Spec, mode: Mode, now: OffsetDateTime) -> Result<Report> {
    if spec.ca_key_dir.starts_with(&spec.dir) {
        return Err(Error::KeyInMountedDir {
            dir: spec.dir.clone(),
            ca_key_dir: spec.ca_key_dir.clone(),
        });
    }
    for host in &spec.hosts {
        if host.parse::<IpAddr>().is_err()
            && rcgen::string::Ia5String::try_from(host.as_str()).is_err()
        {
            return Err(Error::BadHost { host: host.clone() });
        }
    }
    let files = spec.files();
    if mode == Mode::Check {
        let plan = inspect(spec, now);
        return Ok(plan.report(files, true));
    }
    std::fs::create_dir_all(&spec.dir).map_err(write::err(&spec.dir))?;
    std::fs::create_dir_all(&spec.ca_key_dir).map_err(write::err(&spec.ca_key_dir))?;
    write::restrict_dir(&spec.ca_key_dir)?;
    // Two runs at once must not interleave writes: inspect and write under one lock.
    let _lock = write::lock(&spec.ca_key_dir.join(".lock"))?;
    let mut plan = inspect(spec, now);
    if mode == Mode::Force {
        plan.force();
    }
    generate(spec, &plan, now)?;
    Ok(plan.report(files, false))
}

fn generate(spec: &Spec, plan: &check::Plan, now: OffsetDateTime) -> Result<()> {
    let files = spec.files();
    let (ca_pem, ca_key) = if plan.ca.renews() {
        let key = KeyPair::generate().map_err(gen_err("the CA key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err("the CA"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "e2e local CA");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "cargo xtask e2e");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = now - Duration::hours(1);
        params.not_after = now + Duration::days(spec.ca_validity_days().into());
        let cert = params.self_signed(&key).map_err(gen_err("the CA"))?;
        // Key first: a certificate on disk without its key would look corrupt.
        write::atomic(&files.ca_key, key.serialize_pem().as_bytes(), 0o600)?;
        write::atomic(&files.ca_cert, cert.pem().as_bytes(), 0o644)?;
        (cert.pem(), key)
    } else {
        let pem = std::fs::read_to_string(&files.ca_cert).map_err(write::err(&files.ca_cert))?;
        let key_pem = std::fs::read_to_string(&files.ca_key).map_err(write::err(&files.ca_key))?;
        (
            pem,
            KeyPair::from_pem(&key_pem).map_err(gen_err("the CA key"))?,
        )
    };
    let ca_not_after =
        check::not_after(&ca_pem).unwrap_or(now + Duration::days(spec.validity_days.into()));
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key).map_err(gen_err("the CA issuer"))?;
    let leaf = |names: Vec<String>,
                usage: ExtendedKeyUsagePurpose,
                cert: &Utf8Path,
                key_path: &Utf8Path| {
        let key = KeyPair::generate().map_err(gen_err("a leaf key"))?;
        let mut params =
            CertificateParams::new(names.clone()).map_err(gen_err("a leaf certificate"))?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().cloned().unwrap_or_default(),
        );
        params.extended_key_usages = vec![usage];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.use_authority_key_identifier_extension = true;
        params.not_before = now - Duration::hours(1);
        // A leaf never outlives its CA.
        params.not_after = (now + Duration::days(spec.validity_days.into())).min(ca_not_after);
        let signed = params
            .signed_by(&key, &issuer)
            .map_err(gen_err("a leaf certificate"))?;
        write::atomic(key_path, key.serialize_pem().as_bytes(), 0o600)?;
        write::atomic(cert, signed.pem().as_bytes(), 0o644)
    };
    if plan.server.renews() {
        leaf(
            spec.hosts.clone(),
            ExtendedKeyUsagePurpose::ServerAuth,
            &files.cert,
            &files.key,
        )?;
    }
    if let (Some(v), Some(cert), Some(key)) = (&plan.client, &files.client_cert, &files.client_key)
        && v.renews()
    {
        leaf(
            vec!["e2e-client".into()],
            ExtendedKeyUsagePurpose::ClientAuth,
            cert,
            key,
        )?;
    }
    Ok(())
}

fn gen_err(what: &'static str) -> impl FnOnce(rcgen::Error) -> Error {
    move |source| Error::Generate { what, source }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = match (self.action, self.dry_run) {
            (Action::Reused, _) => "certificates valid, reused",
            (_, true) => "certificates need work (nothing written: --check)",
            (Action::Generated, false) => "certificates generated",
            (Action::Renewed, false) => "certificates renewed",
        };
        writeln!(f, "{verb}")?;
        for line in self.reason.lines() {
            writeln!(f, "  {line}")?;
        }
        writeln!(f, "  ca_cert {}", self.files.ca_cert)?;
        writeln!(f, "  cert    {}", self.files.cert)?;
        write!(f, "  key     {}", self.files.key)
    }
}
