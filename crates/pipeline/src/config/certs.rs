//! The config's certificate section read for its users: where the
//! certificates and the CA key live, which compose mounts carry them, and
//! the spec the certs phase generates from.

use camino::{Utf8Path, Utf8PathBuf};

use super::{CertsConfig, Config};

impl Config {
    /// The certificate folders: the config's, else under the target folder.
    pub(super) fn certs_dirs(&self, c: &CertsConfig) -> (Utf8PathBuf, Utf8PathBuf) {
        let or_default = |set: &Option<Utf8PathBuf>, name: &str| match set {
            Some(p) => self.resolve(p),
            None => self.target_dir().join("e2e").join(name),
        };
        (or_default(&c.dir, "certs"), or_default(&c.ca_key_dir, "ca"))
    }

    /// The mountable certificate folder, when the stack uses certificates.
    pub fn certs_dir(&self) -> Option<Utf8PathBuf> {
        self.certs_folders().map(|(dir, _)| dir)
    }

    /// Both certificate folders (mountable, CA key), when the stack uses certificates.
    pub fn certs_folders(&self) -> Option<(Utf8PathBuf, Utf8PathBuf)> {
        self.certs.as_ref().map(|c| self.certs_dirs(c))
    }

    /// The stack's bind mounts of the certificate folder (what a remote
    /// engine gets as a volume instead).
    pub fn certs_mounts(&self, stack: &compose::Stack) -> Vec<compose::model::BindMount> {
        let Some(dir) = self.certs_dir() else {
            return Vec::new();
        };
        let dir_resolved = dir.canonicalize_utf8().ok();
        stack
            .bind_mounts()
            .into_iter()
            .filter(|b| {
                let source = Utf8Path::new(b.source.trim_end_matches('/'));
                source == dir
                    || (dir_resolved.is_some() && source.canonicalize_utf8().ok() == dir_resolved)
            })
            .collect()
    }

    /// The certificate spec: localhost, 127.0.0.1, the host where a remote
    /// engine publishes ports, every service, and the config's hosts; `None`
    /// without a `certs:` section.
    pub fn certs_spec(&self, services: impl IntoIterator<Item = String>) -> Option<certs::Spec> {
        let c = self.certs.as_ref()?;
        let mut hosts: Vec<String> = vec!["localhost".into(), "127.0.0.1".into()];
        let publish = compose::Engine::publish_host(self.compose.publish_host.as_deref());
        if !hosts.contains(&publish) {
            hosts.push(publish);
        }
        for h in services.into_iter().chain(c.hosts.iter().cloned()) {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
        let (dir, ca_key_dir) = self.certs_dirs(c);
        Some(certs::Spec {
            dir,
            ca_key_dir,
            hosts,
            validity_days: c.validity_days,
            renew_within_days: c.renew_within_days,
            client: c.client,
        })
    }
}
