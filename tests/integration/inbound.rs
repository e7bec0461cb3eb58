//! Mail to a tenant's own address through the local stack over HTTP: SES
//! receiving's stand-in keeps the message and forwards it to the customer.

use std::sync::Arc;
use std::sync::atomic::AtomicI64;

use http::StatusCode;
use serde_json::{Value, json};

use super::coupons::{MovingClock, NOW, post, start};

async fn receive(base: &str, query: &str, raw: &str) -> (StatusCode, Value) {
    let request = http::Request::post(format!("{base}/local/mail/inbound?{query}"))
        .header("content-type", "message/rfc822")
        .body(http_body_util::Full::new(raw.to_owned().into()))
        .unwrap();
    let (status, body) = tenantctl::http_client::HttpClient::default().call(request).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap())
}

#[tokio::test]
async fn mail_to_a_tenants_address_reaches_its_customer_once_and_mail_to_no_tenant_is_dropped() {
    let clock = Arc::new(MovingClock(AtomicI64::new(NOW)));
    let served = start(clock).await;
    let (base, stack) = (served.base.clone(), served.stack.clone());
    let form = json!({"plan": "pro", "billing": "monthly", "subdomain": "initrode", "organization": "Initrode",
        "email": "peter@initrode.example"});
    let (status, session) = post(&base, "/checkout", &form.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let (status, _) =
        post(&base, &format!("/local/stripe/checkout/{}/pay", session["id"].as_str().unwrap()), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(stack.workflows.wait_idle(std::time::Duration::from_secs(30)).await);

    let message = "From: =?UTF-8?Q?Zo=C3=AB?= <zoe@cafe.example>\r\nTo: initrode_app@mail.apps.example.test\r\n\
        Subject: Order 42\r\nDKIM-Signature: v=1; d=cafe.example; b=abc\r\n\r\nHello Initrode\r\n";
    let to = "to=initrode_app@mail.apps.example.test,nobody_app@mail.apps.example.test&id=m42";
    let (status, report) = receive(&base, to, message).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    let deliveries = report["deliveries"].as_array().unwrap();
    assert_eq!(deliveries[0]["outcome"], "forwarded", "{report}");
    assert_eq!(deliveries[0]["to"], "peter@initrode.example");
    assert_eq!(deliveries[1]["outcome"], "dropped", "{report}");

    // SES delivers again: nothing more is sent.
    let (_, again) = receive(&base, to, message).await;
    assert_eq!(again["deliveries"][0]["outcome"], "already_forwarded", "{again}");
    let state = stack.state().await;
    let forwarded: Vec<&Value> =
        state["emails"].as_array().unwrap().iter().filter(|m| m["subject"] == "Order 42").collect();
    assert_eq!(forwarded.len(), 1, "{}", state["emails"]);
    assert_eq!(forwarded[0]["to"], "peter@initrode.example");
    let text = forwarded[0]["text"].as_str().unwrap();
    assert!(
        text.starts_with("From: =?UTF-8?Q?Zo=C3=AB?= via initrode_app <forwarder@mail.apps.example.test>"),
        "{text}"
    );
    assert!(
        text.contains("Reply-To: =?UTF-8?Q?Zo=C3=AB?= <zoe@cafe.example>") && !text.contains("DKIM"),
        "{text}"
    );
    assert_eq!(forwarded[0]["forwarded_bytes"].as_u64().map(|n| n > 0), Some(true));

    let (status, refused) = receive(&base, "id=m43", message).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    served.stop().await;
}
