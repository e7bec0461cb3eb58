//! `tenantctl --stage … stripe sync-catalog | register-webhook |
//! drop-webhook-secret` against a stage found on moto (its stack, its SSM
//! parameters) and the local Stripe stand-in served over HTTP, read back
//! from the stand-in's state and from SSM.

use std::sync::Arc;

use integration_tests::{moto_config, unique_name};
use tenancy::adapters::stripe::transport::stripe_version;
use tenancy::clock::{Clock, SystemClock};
use tenancy::domain::{Catalog, LookupKey};
use tenancy::ports::StripeGateway;
use tenancy::stripe::{SignatureVerifier, WebhookSecret, WebhookSecrets};
use tenantctl::stage::stripe::{
    Action, StripeCommandError, connect, drop_webhook_secret, register_webhook, sync_catalog, webhook_events,
};
use tenantctl::stage::{Stage, StageName};

use crate::stage::stage_stack_with;

const TEST_KEY: &str = "sk_test_stage_stripe_commands_01";
const LIVE_KEY: &str = "sk_live_stage_stripe_commands_01";
const WEBHOOK_URL: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/stripe/webhook";

/// The stand-in on a loopback port; the checkout reaches it directly.
pub type StandIn = integration_tests::ServedStack;

pub async fn stand_in() -> StandIn {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    StandIn::start(clock, |_, stripe| stripe.clone()).await
}

/// A test stage on moto whose SSM parameters hold `key` (and no webhook
/// secret yet): the stage and the two parameter names.
async fn stage_with_key(stage: StageName, key: &str) -> (Stage, String, String) {
    let sdk = moto_config().await;
    let prefix = unique_name("/tenancy-stripe");
    let (key_param, secret_param) =
        (format!("{prefix}/stripe-secret-key"), format!("{prefix}/webhook-secrets"));
    ssm()
        .await
        .put_parameter()
        .name(&key_param)
        .value(key)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let stack = stage_stack_with(
        stage.as_str(),
        &[("StripeSecretKeyParameter", &key_param), ("StripeWebhookSecretParameter", &secret_param)],
    )
    .await;
    (Stage::find(stage, &stack, &sdk).await.unwrap(), key_param, secret_param)
}

async fn ssm() -> aws_sdk_ssm::Client {
    aws_sdk_ssm::Client::new(&moto_config().await)
}

async fn stored(name: &str) -> Option<String> {
    let got = ssm().await.get_parameter().name(name).with_decryption(true).send().await.ok()?;
    got.parameter?.value
}

/// A one-plan catalog the stand-in does not hold yet.
fn starter_catalog(monthly: i64) -> Catalog {
    Catalog::from_json(&format!(
        r#"{{"currency":"cad","plans":{{"starter":{{"name":"Starter","tier":1,"limits":{{}},"prices":{{
            "monthly":{{"lookup_key":"starter_monthly","amount":{monthly}}},
            "annual":{{"lookup_key":"starter_annual","amount":9000}}}}}}}}}}"#
    ))
    .unwrap()
}

/// Two- and three-year prices are made with their `interval_count`, and a
/// run finds them again by it (a 1-year price under the key is replaced).
#[tokio::test]
async fn sync_catalog_makes_multi_year_prices_with_their_interval_count() {
    let stand_in = stand_in().await;
    let (stage, ..) = stage_with_key(StageName::Test, TEST_KEY).await;
    let api = connect(&stage, &ssm().await, Some(&stand_in.base)).await.unwrap();
    let catalog = |biennial: &str| {
        Catalog::from_json(&format!(
            r#"{{"currency":"cad","plans":{{"longterm":{{"name":"Long Term","tier":1,"limits":{{}},"prices":{{
                "{biennial}":{{"lookup_key":"longterm_2y","amount":20000}},
                "triennial":{{"lookup_key":"longterm_3y","amount":27000}}}}}}}}}}"#
        ))
        .unwrap()
    };
    // Someone sold the key as a yearly price by hand: not what the catalog says.
    let first = sync_catalog(&stage, &api, &catalog("annual")).await.unwrap();
    assert!(
        first.changes.iter().any(|c| c.key == "longterm_2y" && c.detail == "20000 CAD / year"),
        "{first}"
    );
    let report = sync_catalog(&stage, &api, &catalog("biennial")).await.unwrap();
    let replaced: Vec<_> = report.with(Action::Replaced).collect();
    assert_eq!(replaced.len(), 1, "{report}");
    assert_eq!(replaced[0].detail, "20000 CAD / 2 year (was 20000 CAD / year)");
    let terms: Vec<(String, u32, bool)> = stand_in
        .stripe
        .prices()
        .into_iter()
        .filter(|p| p.product == "tenancy_longterm" && p.active)
        .map(|p| (p.price.interval, p.price.interval_count, p.price.lookup_key.is_some()))
        .collect();
    assert_eq!(terms, [("year".to_owned(), 3, true), ("year".to_owned(), 2, true)]);
    let again = sync_catalog(&stage, &api, &catalog("biennial")).await.unwrap();
    assert!(again.changes.iter().all(|c| c.action == Action::Unchanged), "{again}");
    stand_in.stop().await;
}

fn actions(report: &tenantctl::stage::stripe::Report) -> Vec<(&str, &str, Action)> {
    report.changes.iter().map(|c| (c.object, c.key.as_str(), c.action)).collect()
}

#[tokio::test]
async fn sync_catalog_twice_creates_products_and_prices_once_and_their_lookup_keys_resolve() {
    let stand_in = stand_in().await;
    let (stage, ..) = stage_with_key(StageName::Test, TEST_KEY).await;
    let api = connect(&stage, &ssm().await, Some(&stand_in.base)).await.unwrap();
    let (products_before, prices_before) = (stand_in.stripe.products().len(), stand_in.stripe.prices().len());

    let first = sync_catalog(&stage, &api, &starter_catalog(900)).await.unwrap();
    assert_eq!(
        actions(&first),
        [
            ("product", "starter", Action::Created),
            ("price", "starter_monthly", Action::Created),
            ("price", "starter_annual", Action::Created),
        ]
    );
    let second = sync_catalog(&stage, &api, &starter_catalog(900)).await.unwrap();
    assert!(second.changes.iter().all(|c| c.action == Action::Unchanged), "{second}");
    assert_eq!(stand_in.stripe.products().len(), products_before + 1, "one product made");
    assert_eq!(stand_in.stripe.prices().len(), prices_before + 2, "two prices made, once");

    // The checkout's lookup, over HTTP: the key resolves to the price made.
    let monthly = LookupKey::parse("starter_monthly").unwrap();
    let resolved = api.price_by_lookup_key(&monthly).await.unwrap().unwrap();
    assert_eq!(resolved.product, "tenancy_starter", "the product a coupon names comes with it");
    let resolved = resolved.id;
    let made = stand_in.stripe.prices().into_iter().find(|p| p.price.id == resolved).unwrap();
    assert_eq!(
        (made.price.unit_amount, made.price.interval.as_str(), made.product.as_str()),
        (900, "month", "tenancy_starter")
    );
    assert_eq!(first.changes[1].id, resolved);
    stand_in.stop().await;
}

#[tokio::test]
async fn a_price_an_interrupted_run_left_active_is_archived_by_the_next() {
    let stand_in = stand_in().await;
    let (stage, ..) = stage_with_key(StageName::Test, TEST_KEY).await;
    let api = connect(&stage, &ssm().await, Some(&stand_in.base)).await.unwrap();
    sync_catalog(&stage, &api, &starter_catalog(900)).await.unwrap();
    // What a run stopped between taking the key and archiving leaves: an
    // active price of our product that holds no key.
    let form: Vec<(String, String)> = [
        ("product", "tenancy_starter"),
        ("currency", "cad"),
        ("unit_amount", "800"),
        ("recurring[interval]", "month"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let left = stand_in.stripe.create_price(&form).unwrap()["id"].as_str().unwrap().to_owned();
    let next = sync_catalog(&stage, &api, &starter_catalog(900)).await.unwrap();
    let archived: Vec<_> =
        next.changes.iter().filter(|c| c.action == Action::Archived).map(|c| c.id.as_str()).collect();
    assert_eq!(archived, [left.as_str()], "{next}");
    assert!(!stand_in.stripe.prices().iter().any(|p| p.price.id == left && p.active));
    let again = sync_catalog(&stage, &api, &starter_catalog(900)).await.unwrap();
    assert!(again.changes.iter().all(|c| c.action == Action::Unchanged), "{again}");
    stand_in.stop().await;
}

#[tokio::test]
async fn the_shipped_catalog_is_already_what_a_fresh_stand_in_holds() {
    let stand_in = stand_in().await;
    let (stage, ..) = stage_with_key(StageName::Test, TEST_KEY).await;
    let api = connect(&stage, &ssm().await, Some(&stand_in.base)).await.unwrap();
    let report = sync_catalog(&stage, &api, &Catalog::embedded().unwrap()).await.unwrap();
    assert_eq!(report.changes.len(), 3 + 12, "three plans, four terms each");
    assert!(report.changes.iter().all(|c| c.action == Action::Unchanged), "{report}");
    let pro = LookupKey::parse("pro_monthly").unwrap();
    let sold = api.price_by_lookup_key(&pro).await.unwrap().map(|p| p.id);
    assert_eq!(sold.as_deref(), Some("price_1QProMonthlyCAD"));
    stand_in.stop().await;
}

#[tokio::test]
async fn a_changed_amount_makes_a_new_price_that_takes_the_lookup_key_and_archives_the_old() {
    let stand_in = stand_in().await;
    let (stage, ..) = stage_with_key(StageName::Test, TEST_KEY).await;
    let api = connect(&stage, &ssm().await, Some(&stand_in.base)).await.unwrap();
    let first = sync_catalog(&stage, &api, &starter_catalog(900)).await.unwrap();
    let old = first.changes.iter().find(|c| c.key == "starter_monthly").unwrap().id.clone();

    let changed = sync_catalog(&stage, &api, &starter_catalog(1100)).await.unwrap();
    let replaced = changed.with(Action::Replaced).collect::<Vec<_>>();
    assert_eq!(replaced.len(), 1, "{changed}");
    assert_eq!(replaced[0].key, "starter_monthly");
    assert!(replaced[0].detail.contains("1100 CAD / month (was 900 CAD / month)"), "{changed}");
    assert_eq!(changed.with(Action::Archived).map(|c| c.id.as_str()).collect::<Vec<_>>(), [old.as_str()]);

    let monthly = LookupKey::parse("starter_monthly").unwrap();
    let now_sold = api.price_by_lookup_key(&monthly).await.unwrap().unwrap().id;
    assert_eq!(now_sold, replaced[0].id);
    let prices = stand_in.stripe.prices();
    let new = prices.iter().find(|p| p.price.id == now_sold).unwrap();
    assert_eq!((new.price.unit_amount, new.active), (1100, true));
    let archived = prices.iter().find(|p| p.price.id == old).unwrap();
    assert!(!archived.active && archived.price.lookup_key.is_none(), "{archived:?}");
    let again = sync_catalog(&stage, &api, &starter_catalog(1100)).await.unwrap();
    assert!(again.changes.iter().all(|c| c.action == Action::Unchanged), "{again}");
    stand_in.stop().await;
}

#[tokio::test]
async fn register_webhook_twice_makes_one_endpoint_and_stores_its_secret() {
    let stand_in = stand_in().await;
    let (stage, _, secret_param) = stage_with_key(StageName::Test, TEST_KEY).await;
    let ssm = ssm().await;
    let api = connect(&stage, &ssm, Some(&stand_in.base)).await.unwrap();

    let first = register_webhook(&stage, &api, &ssm, false).await.unwrap();
    assert_eq!(
        actions(&first),
        [
            ("webhook_endpoint", WEBHOOK_URL, Action::Created),
            ("secret", secret_param.as_str(), Action::Updated)
        ]
    );
    let endpoints = stand_in.stripe.webhook_endpoints();
    assert_eq!(endpoints.len(), 1);
    let endpoint = &endpoints[0];
    assert_eq!(endpoint.url, WEBHOOK_URL);
    let mut subscribed = endpoint.enabled_events.clone();
    subscribed.sort();
    assert_eq!(subscribed, webhook_events());
    assert_eq!(endpoint.api_version.as_deref(), Some(stripe_version()));
    assert_eq!(stored(&secret_param).await.as_deref(), Some(endpoint.secret.as_str()));
    assert!(!serde_json::to_string(&first).unwrap().contains("whsec_"), "a report never shows a secret");

    let second = register_webhook(&stage, &api, &ssm, false).await.unwrap();
    assert!(second.changes.iter().all(|c| c.action == Action::Unchanged), "{second}");
    assert_eq!(stand_in.stripe.webhook_endpoints().len(), 1);
    assert_eq!(
        stored(&secret_param).await.as_deref(),
        Some(endpoint.secret.as_str()),
        "no needless new secret"
    );
    stand_in.stop().await;
}

/// Whether a delivery signed with `secret` passes the webhook's check with
/// the secrets stored in `param`.
async fn accepted(param: &str, secret: &str) -> bool {
    let verifier = SignatureVerifier::new(
        WebhookSecrets::parse_list(&stored(param).await.unwrap()).unwrap(),
        std::time::Duration::from_secs(300),
    );
    let body = br#"{"id":"evt_1"}"#;
    let now = 1_800_000_000;
    let header = WebhookSecret::parse(secret).unwrap().sign_header(now, body);
    verifier.verify(&header, body, now).is_ok()
}

#[tokio::test]
async fn a_rotation_puts_the_new_secret_first_and_keeps_the_old_accepted_until_dropped() {
    let stand_in = stand_in().await;
    let (stage, _, secret_param) = stage_with_key(StageName::Test, TEST_KEY).await;
    let ssm = ssm().await;
    let api = connect(&stage, &ssm, Some(&stand_in.base)).await.unwrap();
    register_webhook(&stage, &api, &ssm, false).await.unwrap();
    let old = stand_in.stripe.webhook_endpoints()[0].clone();

    let rotated = register_webhook(&stage, &api, &ssm, true).await.unwrap();
    assert_eq!(rotated.with(Action::Kept).map(|c| c.id.as_str()).collect::<Vec<_>>(), [old.id.as_str()]);
    let endpoints = stand_in.stripe.webhook_endpoints();
    assert_eq!(endpoints.len(), 2, "the old endpoint stays until dropped");
    let new = endpoints.iter().find(|e| e.id != old.id).unwrap().clone();
    assert_eq!(stored(&secret_param).await.unwrap(), format!("{},{}", new.secret, old.secret), "new first");
    assert!(accepted(&secret_param, &old.secret).await && accepted(&secret_param, &new.secret).await);
    let again = register_webhook(&stage, &api, &ssm, false).await.unwrap();
    assert_eq!(again.with(Action::Created).count(), 0, "{again}");

    let dropped = drop_webhook_secret(&stage, &api, &ssm).await.unwrap();
    assert_eq!(dropped.with(Action::Deleted).map(|c| c.id.as_str()).collect::<Vec<_>>(), [old.id.as_str()]);
    let left: Vec<String> = stand_in.stripe.webhook_endpoints().into_iter().map(|e| e.id).collect();
    assert_eq!(left, std::slice::from_ref(&new.id));
    assert_eq!(stored(&secret_param).await.unwrap(), new.secret);
    assert!(!accepted(&secret_param, &old.secret).await && accepted(&secret_param, &new.secret).await);
    let twice = drop_webhook_secret(&stage, &api, &ssm).await.unwrap();
    assert!(twice.changes.iter().all(|c| c.action == Action::Unchanged), "{twice}");
    stand_in.stop().await;
}

#[tokio::test]
async fn a_live_key_on_a_test_stage_is_one_clear_line_and_nothing_is_written() {
    let stand_in = stand_in().await;
    let (stage, key_param, secret_param) = stage_with_key(StageName::Test, LIVE_KEY).await;
    let (products, prices) = (stand_in.stripe.products(), stand_in.stripe.prices());
    let error = connect(&stage, &ssm().await, Some(&stand_in.base)).await.unwrap_err();
    assert!(matches!(error, StripeCommandError::Key { .. }), "{error}");
    assert_eq!(error.exit_code(), 2);
    let line = tenancy::telemetry::error_chain(&error);
    assert!(!line.contains('\n') && line.contains(&key_param), "{line}");
    assert!(line.contains("Stripe mode is test but the key is a live key"), "{line}");
    assert!(!line.contains("stage_stripe_commands"), "the key never shows: {line}");
    assert_eq!((stand_in.stripe.products(), stand_in.stripe.prices()), (products, prices));
    assert!(stand_in.stripe.webhook_endpoints().is_empty());
    assert_eq!(stored(&secret_param).await, None);
    stand_in.stop().await;
}

#[tokio::test]
async fn an_endpoint_whose_secret_is_not_stored_is_refused_before_anything_changes() {
    let stand_in = stand_in().await;
    let (stage, _, secret_param) = stage_with_key(StageName::Test, TEST_KEY).await;
    let ssm = ssm().await;
    let api = connect(&stage, &ssm, Some(&stand_in.base)).await.unwrap();
    register_webhook(&stage, &api, &ssm, false).await.unwrap();
    ssm.delete_parameter().name(&secret_param).send().await.unwrap();
    let error = register_webhook(&stage, &api, &ssm, false).await.unwrap_err();
    assert!(error.to_string().contains("register-webhook --rotate"), "{error}");
    assert_eq!(stand_in.stripe.webhook_endpoints().len(), 1);
    assert_eq!(stored(&secret_param).await, None);
    stand_in.stop().await;
}

#[tokio::test]
async fn doctor_asks_stripe_for_the_catalog_and_the_webhook_and_names_the_command_that_fixes_each() {
    use tenantctl::stage::doctor::{Verdict, doctor_stripe};
    let stand_in = stand_in().await;
    let (stage, ..) = stage_with_key(StageName::Test, TEST_KEY).await;
    let ssm = ssm().await;
    let api = connect(&stage, &ssm, Some(&stand_in.base)).await.unwrap();
    // A catalog Stripe does not hold yet, and no endpoint.
    let catalog = starter_catalog(900);
    let before = doctor_stripe(&stage, &api, &catalog).await;
    let verdicts: Vec<_> = before.iter().map(|c| (c.name, c.verdict)).collect();
    assert_eq!(
        verdicts,
        [("catalog prices", Verdict::Fail), ("webhook endpoint", Verdict::Fail)],
        "{before:?}"
    );
    assert_eq!(before[0].fix.as_deref(), Some("tenantctl --stage test stripe sync-catalog"));
    assert_eq!(before[1].fix.as_deref(), Some("tenantctl --stage test stripe register-webhook"));
    // After the two commands the doctor prescribes, both pass.
    sync_catalog(&stage, &api, &catalog).await.unwrap();
    register_webhook(&stage, &api, &ssm, false).await.unwrap();
    let after = doctor_stripe(&stage, &api, &catalog).await;
    assert!(after.iter().all(|c| c.verdict == Verdict::Pass), "{after:?}");
    // A price changed in the catalog since: found, with the same fix.
    let changed = doctor_stripe(&stage, &api, &starter_catalog(1200)).await;
    assert_eq!(changed[0].verdict, Verdict::Fail);
    assert!(changed[0].detail.contains("starter_monthly"), "{:?}", changed[0]);
    stand_in.stop().await;
}
