//! Every reuse rule and every repair, on real files, plus interop with
//! `openssl verify` and a real TLS handshake.

use std::os::unix::fs::PermissionsExt;

use camino::{Utf8Path, Utf8PathBuf};
use certs::{Action, Mode, Spec, ensure, ensure_at};
use time::{Duration, OffsetDateTime};

fn spec(root: &Utf8Path) -> Spec {
    Spec {
        dir: root.join("certs"),
        ca_key_dir: root.join("ca"),
        hosts: vec!["localhost".into(), "127.0.0.1".into(), "gateway".into()],
        validity_days: 30,
        renew_within_days: 7,
        client: false,
    }
}

fn tmp() -> (tempfile::TempDir, Utf8PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
    (t, p)
}

fn mode(p: &Utf8Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn first_run_generates_then_reuses() {
    let (_t, root) = tmp();
    let s = spec(&root);
    let r = ensure(&s, Mode::Ensure).unwrap();
    assert_eq!(r.action, Action::Generated);
    assert_eq!(
        r.reason,
        "generated ca.crt: missing\ngenerated server.crt: missing"
    );
    let f = s.files();
    assert_eq!(
        (mode(&f.key), mode(&f.ca_key), mode(&f.cert)),
        (0o600, 0o600, 0o644)
    );
    assert_eq!(mode(&s.ca_key_dir), 0o700);
    assert!(
        !s.dir.join("ca.key").exists(),
        "the CA key never sits in the mounted folder"
    );
    let before = std::fs::read(&f.cert).unwrap();
    let r = ensure(&s, Mode::Ensure).unwrap();
    assert_eq!(r.action, Action::Reused);
    // Whole days left; X.509 times have one-second precision.
    assert!(
        [
            "valid: server.crt expires in 30 days",
            "valid: server.crt expires in 29 days"
        ]
        .contains(&r.reason.as_str()),
        "{}",
        r.reason
    );
    assert_eq!(
        std::fs::read(&f.cert).unwrap(),
        before,
        "a reused certificate is not rewritten"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&s.dir)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        3,
        "no temporary files remain: {leftovers:?}"
    );
}

#[test]
fn check_mode_reports_and_writes_nothing() {
    let (_t, root) = tmp();
    let s = spec(&root);
    let r = ensure(&s, Mode::Check).unwrap();
    assert!(r.dry_run && r.action == Action::Generated);
    assert!(!s.dir.exists() && !s.ca_key_dir.exists());
    ensure(&s, Mode::Ensure).unwrap();
    assert_eq!(ensure(&s, Mode::Check).unwrap().action, Action::Reused);
}

#[test]
fn near_expiry_and_expired_leaves_are_renewed_and_the_ca_kept() {
    let (_t, root) = tmp();
    let s = spec(&root);
    let start = OffsetDateTime::now_utc();
    ensure_at(&s, Mode::Ensure, start).unwrap();
    let ca = std::fs::read(s.files().ca_cert).unwrap();
    let r = ensure_at(
        &s,
        Mode::Check,
        start + Duration::days(26) + Duration::hours(1),
    )
    .unwrap();
    assert_eq!(
        (r.action, r.reason.as_str()),
        (Action::Renewed, "renewed server.crt: expires in 3 days")
    );
    let r = ensure_at(&s, Mode::Ensure, start + Duration::days(40)).unwrap();
    assert_eq!(
        (r.action, r.reason.as_str()),
        (Action::Renewed, "renewed server.crt: expired 10 days ago")
    );
    assert_eq!(
        std::fs::read(s.files().ca_cert).unwrap(),
        ca,
        "a valid CA survives a leaf renewal"
    );
    assert_eq!(
        ensure_at(&s, Mode::Ensure, start + Duration::days(41))
            .unwrap()
            .action,
        Action::Reused
    );
}

#[test]
fn each_repair_names_its_reason() {
    let (_t, root) = tmp();
    let s = spec(&root);
    let f = s.files();
    let (_o, other_root) = tmp();
    let other = spec(&other_root);
    ensure(&other, Mode::Ensure).unwrap();
    let of = other.files();

    type Break = Box<dyn Fn(&Spec)>;
    let cases: Vec<(&str, Break, &str)> = vec![
        (
            "corrupt PEM",
            Box::new(|s: &Spec| {
                std::fs::write(s.files().cert, "-----BEGIN CERTIFICATE-----\nnot base64!\n")
                    .unwrap()
            }),
            "regenerated server.crt: corrupt PEM",
        ),
        (
            "key mismatch",
            Box::new({
                let k = of.key.clone();
                move |s: &Spec| {
                    std::fs::copy(&k, s.files().key).unwrap();
                }
            }),
            "regenerated server.crt: key does not match certificate",
        ),
        (
            "other CA",
            Box::new({
                let (c, k) = (of.cert.clone(), of.key.clone());
                move |s: &Spec| {
                    std::fs::copy(&c, s.files().cert).unwrap();
                    std::fs::copy(&k, s.files().key).unwrap();
                }
            }),
            "regenerated server.crt: not signed by ca.crt",
        ),
        (
            "missing key",
            Box::new(|s: &Spec| std::fs::remove_file(s.files().key).unwrap()),
            "regenerated server.crt: its key is missing",
        ),
    ];
    for (name, break_it, want) in cases {
        ensure(&s, Mode::Ensure).unwrap();
        let ca = std::fs::read(&f.ca_cert).unwrap();
        break_it(&s);
        let r = ensure(&s, Mode::Ensure).unwrap();
        assert_eq!(
            (r.action, r.reason.as_str()),
            (Action::Generated, want),
            "case {name}"
        );
        assert_eq!(
            std::fs::read(&f.ca_cert).unwrap(),
            ca,
            "case {name}: the CA is kept"
        );
        assert_eq!(
            ensure(&s, Mode::Ensure).unwrap().action,
            Action::Reused,
            "case {name}: repaired"
        );
    }
}

#[test]
fn changed_names_or_a_broken_ca_regenerate_what_depends_on_them() {
    let (_t, root) = tmp();
    let mut s = spec(&root);
    ensure(&s, Mode::Ensure).unwrap();
    s.hosts.push("backend".into());
    s.hosts.push("::1".into());
    let r = ensure(&s, Mode::Ensure).unwrap();
    assert_eq!(
        r.reason,
        "regenerated server.crt: its names lack backend, ::1"
    );
    std::fs::remove_file(s.files().ca_key).unwrap();
    let r = ensure(&s, Mode::Ensure).unwrap();
    assert_eq!(
        r.reason,
        "regenerated ca.crt: ca.key is missing\nregenerated server.crt: its CA is regenerated"
    );
    std::fs::write(s.files().ca_cert, "garbage").unwrap();
    let r = ensure(&s, Mode::Ensure).unwrap();
    assert!(
        r.reason.starts_with("regenerated ca.crt: corrupt PEM"),
        "{}",
        r.reason
    );
    let r = ensure(&s, Mode::Force).unwrap();
    assert_eq!(
        (r.action, r.reason.as_str()),
        (Action::Generated, "regenerated: --force")
    );
}

#[test]
fn bad_specs_are_refused_before_writing() {
    let (_t, root) = tmp();
    let mut s = spec(&root);
    s.ca_key_dir = s.dir.join("private");
    assert!(
        ensure(&s, Mode::Ensure)
            .unwrap_err()
            .to_string()
            .contains("move it out")
    );
    let mut s = spec(&root);
    s.hosts.push("bad host name\u{e9}".into());
    assert!(
        ensure(&s, Mode::Ensure)
            .unwrap_err()
            .to_string()
            .contains("fix certs.hosts")
    );
    assert!(!s.dir.exists());
}

#[test]
fn concurrent_runs_do_not_interleave() {
    let (_t, root) = tmp();
    let s = spec(&root);
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            std::thread::spawn(move || ensure(&s, Mode::Ensure).unwrap().action)
        })
        .collect();
    let actions: Vec<Action> = runs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == Action::Generated).count(),
        1,
        "{actions:?}"
    );
    assert_eq!(ensure(&s, Mode::Check).unwrap().action, Action::Reused);
}

#[test]
fn client_certificate_for_mutual_tls() {
    let (_t, root) = tmp();
    let mut s = spec(&root);
    s.client = true;
    let r = ensure(&s, Mode::Ensure).unwrap();
    assert!(
        r.reason.contains("generated client.crt: missing"),
        "{}",
        r.reason
    );
    assert_eq!(mode(s.files().client_key.as_ref().unwrap()), 0o600);
    assert_eq!(ensure(&s, Mode::Ensure).unwrap().action, Action::Reused);
}

#[test]
fn openssl_verifies_the_chain() {
    let (_t, root) = tmp();
    let s = spec(&root);
    ensure(&s, Mode::Ensure).unwrap();
    let f = s.files();
    let sh = xshell::Shell::new().unwrap();
    let (ca, cert) = (&f.ca_cert, &f.cert);
    let out = xshell::cmd!(sh, "openssl verify -CAfile {ca} -purpose sslserver {cert}")
        .read()
        .unwrap();
    assert_eq!(out, format!("{cert}: OK"));
    let (_o, other) = tmp();
    let o = spec(&other);
    ensure(&o, Mode::Ensure).unwrap();
    let other_ca = o.files().ca_cert;
    assert!(
        xshell::cmd!(sh, "openssl verify -CAfile {other_ca} {cert}")
            .quiet()
            .ignore_stderr()
            .read()
            .is_err()
    );
}

mod tls {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    use super::*;

    fn provider() -> Arc<rustls::crypto::CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    /// Serves one line-echo per connection until the listener is dropped.
    fn serve(files: &certs::Files, connections: usize) -> u16 {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(files.cert.as_std_path())
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = PrivateKeyDer::from_pem_file(files.key.as_std_path()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().take(connections) {
                let conn = rustls::ServerConnection::new(config.clone()).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, stream.unwrap());
                let mut line = String::new();
                if BufReader::new(&mut tls).read_line(&mut line).is_ok() {
                    let _ = tls.write_all(format!("echo {line}").as_bytes());
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                }
            }
        });
        port
    }

    fn talk(port: u16, roots: rustls::RootCertStore) -> Result<String, String> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let conn = rustls::ClientConnection::new(
            Arc::new(config),
            ServerName::try_from("localhost").unwrap(),
        )
        .unwrap();
        let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        tls.write_all(b"ping\n").map_err(|e| e.to_string())?;
        let mut answer = String::new();
        BufReader::new(&mut tls)
            .read_line(&mut answer)
            .map_err(|e| e.to_string())?;
        Ok(answer)
    }

    #[test]
    fn handshake_succeeds_with_the_ca_and_fails_without() {
        let (_t, root) = tmp();
        let s = spec(&root);
        ensure(&s, Mode::Ensure).unwrap();
        let f = s.files();
        let port = serve(&f, 2);
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(f.ca_cert.as_std_path()).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        assert_eq!(talk(port, roots).unwrap(), "echo ping\n");
        let refused = talk(port, rustls::RootCertStore::empty()).unwrap_err();
        assert!(refused.contains("UnknownIssuer"), "{refused}");
    }
}

/// A rewrite is a rename: a reader that opened the old file reads it whole
/// while it is replaced (an in-place write would show it truncated or new),
/// and the new file is a different inode with the same mode.
#[test]
fn rewrites_replace_files_whole() {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let (_t, root) = tmp();
    let s = spec(&root);
    ensure(&s, Mode::Ensure).unwrap();
    let f = s.files();
    let (old_cert, old_key) = (
        std::fs::read(&f.cert).unwrap(),
        std::fs::read(&f.key).unwrap(),
    );
    let (mut cert_reader, mut key_reader) = (
        std::fs::File::open(&f.cert).unwrap(),
        std::fs::File::open(&f.key).unwrap(),
    );
    let old_inode = std::fs::metadata(&f.key).unwrap().ino();
    ensure(&s, Mode::Force).unwrap();
    let (mut seen_cert, mut seen_key) = (Vec::new(), Vec::new());
    cert_reader.read_to_end(&mut seen_cert).unwrap();
    key_reader.read_to_end(&mut seen_key).unwrap();
    assert_eq!(
        (seen_cert, seen_key),
        (old_cert.clone(), old_key),
        "the old files stay whole for their readers"
    );
    assert_ne!(
        std::fs::read(&f.cert).unwrap(),
        old_cert,
        "--force wrote a new certificate"
    );
    assert_ne!(
        std::fs::metadata(&f.key).unwrap().ino(),
        old_inode,
        "the key was replaced by rename"
    );
    assert_eq!(mode(&f.key), 0o600);
}
