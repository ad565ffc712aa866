//! The demo stack through its published TLS port, as a client sees it.

use e2e_tests::Stack;

fn status_and_json(result: Result<ureq::Response, ureq::Error>) -> (u16, serde_json::Value) {
    let response = match result {
        Ok(r) | Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = response.status();
    let text = response.into_string().expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}")),
    )
}

#[test]
fn a_request_through_the_gateway_reaches_the_backend() {
    let Some(stack) = Stack::from_env("a_request_through_the_gateway_reaches_the_backend") else {
        return;
    };
    e2e_tests::hang_if_the_soak_asks();
    let (status, body) =
        status_and_json(stack.client().get(&stack.url("/api/hello?name=e2e")).call());
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["greeting"], "hello e2e");
    assert_eq!(body["served_by"], "backend");
}

#[test]
fn a_post_body_makes_the_round_trip() {
    let Some(stack) = Stack::from_env("a_post_body_makes_the_round_trip") else {
        return;
    };
    let (status, body) = status_and_json(
        stack
            .client()
            .post(&stack.url("/api/echo"))
            .send_string("ping over TLS"),
    );
    assert_eq!(
        (status, body["echo"].as_str()),
        (200, Some("ping over TLS"))
    );
}

#[test]
fn tls_without_the_ca_is_refused() {
    let Some(stack) = Stack::from_env("tls_without_the_ca_is_refused") else {
        return;
    };
    let err = stack
        .untrusting_client()
        .get(&stack.url("/health"))
        .call()
        .unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("UnknownIssuer"), "{text}");
}

#[test]
fn the_gateway_answers_its_own_health_check() {
    let Some(stack) = Stack::from_env("the_gateway_answers_its_own_health_check") else {
        return;
    };
    let (status, body) = status_and_json(stack.client().get(&stack.url("/health")).call());
    assert_eq!((status, body["served_by"].as_str()), (200, Some("gateway")));
}

#[test]
fn bad_requests_get_the_right_error() {
    let Some(stack) = Stack::from_env("bad_requests_get_the_right_error") else {
        return;
    };
    let client = stack.client();
    let (status, body) = status_and_json(client.delete(&stack.url("/api/hello")).call());
    assert_eq!(status, 405, "{body}");
    let (status, body) = status_and_json(client.get(&stack.url("/nowhere")).call());
    assert_eq!(status, 404, "{body}");
    let (status, body) = status_and_json(client.get(&stack.url("/api/nothing-here")).call());
    assert_eq!(
        (status, body["error"].as_str()),
        (404, Some("no route for /api/nothing-here"))
    );
}

#[test]
fn a_slow_backend_answer_is_forwarded_whole() {
    let Some(stack) = Stack::from_env("a_slow_backend_answer_is_forwarded_whole") else {
        return;
    };
    // E2E_SLOW_MS lets the interrupt test hold a test open while it signals.
    let ms: u64 = std::env::var("E2E_SLOW_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    let (status, body) = status_and_json(
        stack
            .client()
            .get(&stack.url(&format!("/api/slow?ms={ms}")))
            .call(),
    );
    assert_eq!(
        (status, body["slept_ms"].as_u64()),
        (200, Some(ms)),
        "{body}"
    );
}
