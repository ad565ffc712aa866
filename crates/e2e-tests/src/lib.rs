//! What the E2E tests share: where the stack is and how to talk to it.
//!
//! `cargo xtask e2e` sets `E2E_GATEWAY_URL` and `E2E_CA_CERT`. Outside such a run
//! the tests skip with a message, or fail when `E2E_REQUIRE_DOCKER` is set.

use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// The stack under test.
#[derive(Debug, Clone)]
pub struct Stack {
    pub gateway: String,
    pub ca_cert: String,
}

impl Stack {
    /// The stack from the environment, or `None` after printing why the test skips.
    pub fn from_env(test: &str) -> Option<Stack> {
        match (
            std::env::var("E2E_GATEWAY_URL"),
            std::env::var("E2E_CA_CERT"),
        ) {
            (Ok(gateway), Ok(ca_cert)) => Some(Stack { gateway, ca_cert }),
            _ => {
                let required = std::env::var_os("E2E_REQUIRE_DOCKER")
                    .is_some_and(|v| v != "0" && !v.is_empty());
                assert!(
                    !required,
                    "{test}: E2E_GATEWAY_URL/E2E_CA_CERT are unset; run it through `cargo xtask e2e`"
                );
                eprintln!("SKIPPED {test}: no stack (run through `cargo xtask e2e`)");
                None
            }
        }
    }

    /// An HTTP client that trusts exactly the stack's CA.
    pub fn client(&self) -> ureq::Agent {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca_cert).expect("CA file readable") {
            roots.add(cert.expect("CA PEM")).expect("CA certificate");
        }
        agent(roots)
    }

    /// An HTTP client that trusts nothing: any TLS handshake must fail.
    pub fn untrusting_client(&self) -> ureq::Agent {
        agent(rustls::RootCertStore::empty())
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.gateway)
    }
}

fn agent(roots: rustls::RootCertStore) -> ureq::Agent {
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocol versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .timeout(std::time::Duration::from_secs(10))
        .build()
}

/// Hangs, as a test stuck on a socket would, when the fault soak asks
/// (`E2E_SOAK_HANG=1`, `cargo xtask soak`): the soak then kills the test's
/// process, as nextest's terminate-after would. Otherwise returns at once.
pub fn hang_if_the_soak_asks() {
    if std::env::var("E2E_SOAK_HANG").as_deref() == Ok("1") {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(60));
        }
    }
}
