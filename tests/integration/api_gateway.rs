//! Real API Gateway HTTP API (payload v2) events through the Lambda handler.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http::StatusCode;
use integration_tests::{ingress_at, read_repo_file};
use tenancy::adapters::local::LocalEventQueue;
use tenancy::ingress::lambda;

/// The fixture was signed at this time.
const SIGNED_AT: i64 = 1_763_800_010;

fn fixture() -> serde_json::Value {
    serde_json::from_str(&read_repo_file("tests/fixtures/apigw-v2-stripe-webhook.json")).unwrap()
}

fn fixture_body(event: &serde_json::Value) -> Vec<u8> {
    BASE64.decode(event["body"].as_str().unwrap()).unwrap()
}

async fn deliver(event: &serde_json::Value, queue: Arc<LocalEventQueue>) -> (StatusCode, String) {
    let request = lambda_http::request::from_str(&event.to_string()).expect("a valid API Gateway v2 event");
    let response = lambda::handle(&ingress_at(SIGNED_AT + 5, queue), request).await.unwrap();
    let body = match response.body() {
        lambda_http::Body::Text(text) => text.clone(),
        other => panic!("expected a text body, got {other:?}"),
    };
    assert_eq!(response.headers()["content-type"], "application/json");
    (response.status(), body)
}

#[tokio::test]
async fn base64_body_is_decoded_verified_and_queued_byte_for_byte() {
    let event = fixture();
    assert_eq!(event["isBase64Encoded"], true);
    let queue = Arc::new(LocalEventQueue::default());
    let (status, body) = deliver(&event, queue.clone()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"received":true}"#));
    let queued = queue.snapshot();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].body.as_bytes(), fixture_body(&event).as_slice());
    assert_eq!(queued[0].event_id.as_str(), "evt_1QAcmeCheckoutDone");
}

#[tokio::test]
async fn plain_body_and_any_header_case_are_accepted() {
    let mut event = fixture();
    let body = String::from_utf8(fixture_body(&event)).unwrap();
    event["body"] = body.clone().into();
    event["isBase64Encoded"] = false.into();
    let signature = event["headers"]["stripe-signature"].take();
    let headers = event["headers"].as_object_mut().unwrap();
    headers.remove("stripe-signature");
    headers.insert("Stripe-Signature".into(), signature);
    let queue = Arc::new(LocalEventQueue::default());
    let (status, _) = deliver(&event, queue.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(queue.snapshot()[0].body, body);
}

#[tokio::test]
async fn a_changed_byte_in_the_base64_body_is_refused() {
    let mut event = fixture();
    let tampered = fixture_body(&event).iter().map(|&b| if b == b'5' { b'6' } else { b }).collect::<Vec<_>>();
    event["body"] = BASE64.encode(tampered).into();
    let queue = Arc::new(LocalEventQueue::default());
    let (status, body) = deliver(&event, queue.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("no v1 signature matches"), "{body}");
    assert!(queue.is_empty());
}

#[tokio::test]
async fn a_request_without_the_header_is_refused() {
    let mut event = fixture();
    event["headers"].as_object_mut().unwrap().remove("stripe-signature");
    let queue = Arc::new(LocalEventQueue::default());
    let (status, body) = deliver(&event, queue.clone()).await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::BAD_REQUEST, r#"{"error":"missing Stripe-Signature header"}"#)
    );
    assert!(queue.is_empty());
}
