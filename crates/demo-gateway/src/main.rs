//! The demo stack's TLS gateway: terminates TLS with the certificates of the
//! certs phase (mounted at /certs) and forwards `/api/*` to the backend over the
//! Compose network. `demo-gateway probe` is its healthcheck: a real TLS request
//! verified against the CA, so "healthy" means "serves TLS with a valid chain".

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

fn env(key: &str, default: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| default.to_owned())
}

fn main() {
    let cert = env("GATEWAY_CERT", "/certs/server.crt");
    let key = env("GATEWAY_KEY", "/certs/server.key");
    let ca = env("GATEWAY_CA", "/certs/ca.crt");
    if std::env::args().nth(1).as_deref() == Some("probe") {
        std::process::exit(probe(&ca));
    }
    // As PID 1 in a container, SIGTERM is ignored unless handled: exit at once.
    // IGNORE_SIGTERM=1 keeps the kernel's default for PID 1, as many real
    // services do; the benchmark uses it to reproduce their slow stops.
    if std::env::var_os("IGNORE_SIGTERM").is_none() {
        ctrlc::set_handler(|| std::process::exit(0)).expect("signal handler");
    }
    let addr = env("GATEWAY_ADDR", "0.0.0.0:8443");
    let backend = env("BACKEND_URL", "http://backend:8080");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .and_then(|i| i.collect())
        .unwrap_or_else(|e| panic!("gateway cannot read {cert}: {e}"));
    let key = PrivateKeyDer::from_pem_file(&key)
        .unwrap_or_else(|e| panic!("gateway cannot read {key}: {e}"));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
    .unwrap_or_else(|e| panic!("gateway TLS config: {e}"));
    let config = Arc::new(config);
    let agent = ureq::AgentBuilder::new()
        .timeout(std::time::Duration::from_secs(10))
        .build();
    let listener =
        TcpListener::bind(&addr).unwrap_or_else(|e| panic!("gateway cannot listen on {addr}: {e}"));
    eprintln!("gateway listening on {addr}, forwarding /api to {backend}");
    for stream in listener.incoming().flatten() {
        let (config, agent, backend) = (config.clone(), agent.clone(), backend.clone());
        std::thread::spawn(move || {
            if let Err(e) = serve(stream, config, &agent, &backend) {
                eprintln!("gateway: connection ended: {e}");
            }
        });
    }
}

fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    agent: &ureq::Agent,
    backend: &str,
) -> std::io::Result<()> {
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let (status, content_type, body) = match read_request(&mut tls)? {
        None => (
            400,
            "application/json",
            br#"{"error":"malformed request"}"#.to_vec(),
        ),
        Some((method, path, body)) => route(&method, &path, body, agent, backend),
    };
    let head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    tls.write_all(head.as_bytes())?;
    tls.write_all(&body)?;
    tls.conn.send_close_notify();
    tls.flush()
}

fn route(
    method: &str,
    path: &str,
    body: Vec<u8>,
    agent: &ureq::Agent,
    backend: &str,
) -> (u16, &'static str, Vec<u8>) {
    let json =
        |status, v: serde_json::Value| (status, "application/json", v.to_string().into_bytes());
    match (method, path) {
        ("GET", "/health") => json(
            200,
            serde_json::json!({ "status": "ok", "served_by": "gateway" }),
        ),
        (_, p) if p.starts_with("/api/") => {
            if method != "GET" && method != "POST" {
                return json(
                    405,
                    serde_json::json!({ "error": format!("{method} is not allowed on /api") }),
                );
            }
            let request = agent.request(method, &format!("{backend}{path}"));
            let result = if method == "POST" {
                request.send_bytes(&body)
            } else {
                request.call()
            };
            match result {
                Ok(r) | Err(ureq::Error::Status(_, r)) => {
                    let status = r.status();
                    let mut bytes = Vec::new();
                    let _ = r.into_reader().take(1 << 20).read_to_end(&mut bytes);
                    (status, "application/json", bytes)
                }
                Err(e) => json(
                    502,
                    serde_json::json!({ "error": format!("backend unreachable: {e}") }),
                ),
            }
        }
        _ => json(
            404,
            serde_json::json!({ "error": format!("no route for {path}") }),
        ),
    }
}

/// Reads one request: method, path and body; `None` when it is not HTTP.
fn read_request(stream: &mut impl Read) -> std::io::Result<Option<(String, String, Vec<u8>)>> {
    let mut reader = BufReader::new(stream);
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let n = reader.read_until(b'\n', &mut head)?;
        if n == 0 || head.len() > 16 * 1024 {
            return Ok(None);
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(&head) else {
        return Ok(None);
    };
    let (Some(method), Some(path)) = (req.method, req.path) else {
        return Ok(None);
    };
    let length = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| {
            std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    let mut body = Vec::new();
    reader.take(length.min(1 << 20)).read_to_end(&mut body)?;
    Ok(Some((method.to_owned(), path.to_owned(), body)))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        502 => "Bad Gateway",
        _ => "",
    }
}

/// A TLS request to ourselves, trusting only the stack's CA.
fn probe(ca: &str) -> i32 {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca)
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = roots.add(c);
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map(|b| b.with_root_certificates(roots).with_no_client_auth());
    let Ok(config) = config else { return 1 };
    let agent = ureq::AgentBuilder::new()
        .tls_config(Arc::new(config))
        .build();
    match agent.get("https://localhost:8443/health").call() {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("probe: {e}");
            1
        }
    }
}
