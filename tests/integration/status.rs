//! The tenant app's live status through the local stack over HTTP: a paid
//! checkout's app is launched with `TENANCY_STATUS_URL` and
//! `TENANCY_STATUS_TOKEN`; `GET` on that URL with the token answers the
//! tenant's status, plan and limits from its record (a failed payment shows
//! without a relaunch); a rotation revokes the token at once and relaunches
//! the app with the next one; anything else is one 401.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use integration_tests::ServedStack;
use serde_json::Value;
use tenancy::clock::SystemClock;
use tenantctl::http_client::HttpClient;

/// What the app would do: `GET {TENANCY_STATUS_URL}` with its token.
async fn ask(url: &str, token: Option<&str>) -> (StatusCode, http::HeaderMap, Value) {
    let mut request = http::Request::get(url);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(http_body_util::Full::default()).unwrap();
    let (status, headers, body) = HttpClient::default().call_with_headers(request).await.unwrap();
    (status, headers, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn post(url: &str) -> (StatusCode, Value) {
    let request = http::Request::post(url)
        .header("content-type", "application/json")
        .body(http_body_util::Full::default())
        .unwrap();
    let (status, body) = HttpClient::default().call(request).await.unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The launched app's environment (the local launcher keeps each spec).
async fn app_environment(served: &ServedStack) -> Value {
    let state = served.stack.state().await;
    state["services"][0]["environment"].clone()
}

#[tokio::test]
async fn the_app_reads_its_live_status_with_its_token_and_a_rotation_revokes_it() {
    // Real time: a relaunch would show as a later `started_at_ms`.
    let served = ServedStack::start(Arc::new(SystemClock), |_, stripe| stripe.clone()).await;
    served.paid_checkout("statusco").await;
    assert!(served.stack.wait_settled(Duration::from_secs(30)).await);

    let env = app_environment(&served).await;
    let url = env["TENANCY_STATUS_URL"].as_str().expect("TENANCY_STATUS_URL").to_owned();
    assert_eq!(url, format!("{}/status", served.base));
    let token = env["TENANCY_STATUS_TOKEN"].as_str().expect("TENANCY_STATUS_TOKEN").to_owned();
    assert!(token.starts_with("tst.tnt_"), "{token}");

    // ACTIVE, with the plan and limits of the catalog.
    let (status, headers, body) = ask(&url, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["cache-control"], "private, max-age=60");
    assert!(headers.get("access-control-allow-origin").is_none());
    assert_eq!(body["status"], "ACTIVE");
    assert_eq!(body["subdomain"], "statusco");
    assert_eq!(body["tenant_id"], env["TENANT_ID"]);
    assert_eq!((body["plan"].as_str(), body["plan_name"].as_str()), (Some("basic"), Some("Basic")));
    assert_eq!(body["tier"], 1);
    assert_eq!(body["limits"]["activities"], 1);
    assert_eq!(body["billing"], "monthly");
    assert_eq!(body["past_due"], false);
    let now = tenancy::clock::Clock::now_unix(&SystemClock);
    assert!(body["paid_until"].as_i64().is_some_and(|t| t > now), "{body}");
    let billing = body["billing_url"].as_str().unwrap();
    assert!(billing.starts_with(&format!("{}/billing/", served.base)), "{billing}");

    // Basic starts with the catalog's trial: its end is reported.
    assert!(body["trial_end"].as_i64().is_some_and(|t| t > now), "{body}");
    let subscription = served.stripe.subscriptions()[0].id.clone();
    let stripe_does =
        |action: &str| format!("{}/local/stripe/subscriptions/{subscription}/{action}", served.base);
    // The trial ends paid, so that a renewal can fail.
    let (status, answer) = post(&stripe_does("trial-ends")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(served.stack.wait_settled(Duration::from_secs(30)).await);
    assert_eq!(ask(&url, Some(&token)).await.2["status"], "ACTIVE");

    // A failed payment: PAST_DUE, the app neither relaunched nor given new settings.
    let started = served.stack.state().await["services"][0]["started_at_ms"].clone();
    let (status, answer) = post(&stripe_does("card-fails")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(served.stack.wait_settled(Duration::from_secs(30)).await);
    let (status, _, body) = ask(&url, Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (body["status"].as_str(), body["past_due"].as_bool()),
        (Some("PAST_DUE"), Some(true)),
        "{body}"
    );
    assert_eq!(app_environment(&served).await, env, "the same environment (token included)");
    assert_eq!(served.stack.state().await["services"][0]["started_at_ms"], started, "no new task");

    // Rotation: the old token is refused, the relaunched app's new one answers.
    let (status, rotated) =
        post(&format!("{}/local/tenants/statusco/rotate-status-token", served.base)).await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(rotated["token_generation"], 2);
    let (status, headers, _) = ask(&url, Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "refused as soon as it is rotated");
    assert_eq!(headers["www-authenticate"], "Bearer");
    assert!(served.stack.wait_settled(Duration::from_secs(30)).await);
    let relaunched = app_environment(&served).await;
    let new_token = relaunched["TENANCY_STATUS_TOKEN"].as_str().unwrap();
    assert_ne!(new_token, token);
    let (status, _, body) = ask(&url, Some(new_token)).await;
    assert_eq!((status, body["status"].as_str()), (StatusCode::OK, Some("PAST_DUE")), "{body}");
    assert_eq!(ask(&url, Some(&token)).await.0, StatusCode::UNAUTHORIZED);

    // Garbage, no token, and the old one: the same 401, nothing else.
    let refused = ask(&url, Some(&token)).await;
    for garbage in [Some("garbage"), None, Some("tst.tnt_00000000000000000000.1.1.AAAA")] {
        let answer = ask(&url, garbage).await;
        assert_eq!((answer.0, &answer.2), (refused.0, &refused.2), "{garbage:?}");
    }
    served.stop().await;
}
