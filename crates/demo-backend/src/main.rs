//! The demo stack's backend: a small HTTP API that the TLS gateway forwards to.
//! It counts visits in `/data` (a volume), so teardown policies show in its state.
//! `demo-backend probe [URL]` is its healthcheck: the image is `FROM scratch`, with no shell.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tiny_http::{Header, Method, Request, Response, Server};

fn main() {
    if std::env::args().nth(1).as_deref() == Some("probe") {
        let url = std::env::args()
            .nth(2)
            .unwrap_or_else(|| "http://127.0.0.1:8080/health".into());
        let ok = ureq::get(&url)
            .timeout(std::time::Duration::from_secs(2))
            .call()
            .is_ok();
        std::process::exit(if ok { 0 } else { 1 });
    }
    // As PID 1 in a container, SIGTERM is ignored unless handled: exit at once.
    // IGNORE_SIGTERM=1 keeps the kernel's default for PID 1, as many real
    // services do; the benchmark uses it to reproduce their slow stops.
    if std::env::var_os("IGNORE_SIGTERM").is_none() {
        ctrlc::set_handler(|| std::process::exit(0)).expect("signal handler");
    }
    if std::env::var_os("BACKEND_FAIL_AT_START").is_some() {
        eprintln!("backend: BACKEND_FAIL_AT_START is set, exiting 1");
        std::process::exit(1);
    }
    let addr = std::env::var("BACKEND_ADDR").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let data = std::env::var("BACKEND_DATA").unwrap_or_else(|_| "/data".into());
    let visits = Arc::new(AtomicU64::new(read_count(&data)));
    let server =
        Server::http(&addr).unwrap_or_else(|e| panic!("backend cannot listen on {addr}: {e}"));
    eprintln!("backend listening on {addr}");
    // A thread per request: a slow answer must not hold up the health probe.
    for request in server.incoming_requests() {
        let (visits, data) = (visits.clone(), data.clone());
        std::thread::spawn(move || respond(request, &visits, &data));
    }
}

fn respond(mut request: Request, visits: &AtomicU64, data: &str) -> std::io::Result<()> {
    let url = request.url().to_owned();
    let (path, query) = url.split_once('?').unwrap_or((&url, ""));
    let (status, body) = match (request.method(), path) {
        (Method::Get, "/health") => (200, serde_json::json!({ "status": "ok" })),
        (Method::Get, "/api/hello") => {
            let name = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "name")
                .map_or_else(|| "world".to_owned(), |(_, v)| v.into_owned());
            let count = visits.fetch_add(1, Ordering::SeqCst) + 1;
            // Best effort: the count is a demonstration of volume state, not a record.
            let _ = std::fs::write(format!("{data}/visits"), count.to_string());
            (
                200,
                serde_json::json!({ "greeting": format!("hello {name}"), "served_by": "backend", "visits": count }),
            )
        }
        (Method::Get, "/api/slow") => {
            let ms: u64 = form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "ms")
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(100)
                .min(60_000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            (
                200,
                serde_json::json!({ "slept_ms": ms, "served_by": "backend" }),
            )
        }
        (Method::Post, "/api/echo") => {
            let mut body = String::new();
            request.as_reader().read_to_string(&mut body)?;
            (
                200,
                serde_json::json!({ "echo": body, "served_by": "backend" }),
            )
        }
        (_, "/api/hello" | "/api/echo" | "/api/slow") => {
            (405, serde_json::json!({ "error": "method not allowed" }))
        }
        _ => (
            404,
            serde_json::json!({ "error": format!("no route for {path}") }),
        ),
    };
    let header = Header::from_bytes("Content-Type", "application/json").expect("static header");
    request.respond(
        Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(header),
    )
}

fn read_count(data: &str) -> u64 {
    std::fs::read_to_string(format!("{data}/visits"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}
