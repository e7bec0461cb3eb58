//! One stage, every `tenantctl --stage` command: nothing is deployed; the
//! stage is a stack on moto whose parameters and outputs name its table,
//! cluster, zone, listener, queues, state machines, topic and SSM
//! parameters, and the Stripe account is the stand-in served over HTTP. The
//! go-live order of the README: doctor (not ready), sync-catalog,
//! register-webhook, doctor (ready); then a tenant is operated on with
//! tenants, mail, events, redrive and reconcile.

use integration_tests::{emulator, moto_config, unique_name};
use tenancy::adapters::aws::DynamoTenantStore;
use tenancy::adapters::aws::dynamodb::create_table;
use tenancy::adapters::aws::sdk::{dynamodb, sqs};
use tenancy::domain::{Catalog, CheckoutSignup, TenantRecord, TenantStatus, desired_from};
use tenancy::ports::{SubscriptionSource, TenantStore};
use tenantctl::stage::doctor::{Verdict, all_passed, doctor, doctor_stripe, render};
use tenantctl::stage::reconcile::{FindingKind, Repair};
use tenantctl::stage::{Stage, StageName, events, mail, reconcile, redrive, stripe, tenants};

use crate::doctor::{https_listener, put, stack_with, topic};
use crate::stage_events::state_machine;

async fn queue(sdk: &tenancy::adapters::aws::sdk::aws_config::SdkConfig, name: &str) -> String {
    sqs::Client::new(sdk).create_queue().queue_name(name).send().await.unwrap().queue_url.unwrap()
}

#[tokio::test]
async fn every_stage_command_runs_against_one_stage_found_from_its_stack() {
    let resources = emulator().await;
    let sdk = moto_config().await;
    let stand_in = crate::stage_stripe::stand_in().await;
    let secrets = tenancy::adapters::aws::secret_store(&sdk);
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let catalog = Catalog::embedded().unwrap();

    // The stage: what `sam deploy` would have made, named by its stack.
    let table = unique_name("golive");
    create_table(&dynamodb::Client::new(&sdk), &table).await.unwrap();
    let prefix = format!("/{}", unique_name("golive"));
    put(&format!("{prefix}/stripe-key"), "sk_test_51QGoLiveKey00000000000000001").await;
    put(&format!("{prefix}/tenant-key"), "golive-tenant-key-0123456789abcdefghij").await;
    let (events_queue, dead_letters) =
        (queue(&sdk, &unique_name("golive-events")).await, queue(&sdk, &unique_name("golive-dlq")).await);
    let (provision, lifecycle) = (
        state_machine(&sdk, &unique_name("golive-provision")).await,
        state_machine(&sdk, &unique_name("golive-lifecycle")).await,
    );
    let parameters = [
        ("StripeMode", "test".to_owned()),
        ("StripeSecretKeyParameter", format!("{prefix}/stripe-key")),
        ("StripeWebhookSecretParameter", format!("{prefix}/webhook-secrets")),
        ("TenantPasswordKeyParameter", format!("{prefix}/tenant-key")),
        ("HostedZoneId", resources.hosted_zone_id.clone()),
        ("TenantDomain", resources.domain.clone()),
        ("AlbListenerArn", https_listener(&resources.domain).await),
        ("MailSender", resources.sender.to_string()),
        ("OperatorEmail", "ops@golive.example".to_owned()),
        ("SesSandbox", "true".to_owned()),
    ];
    let outputs = [
        ("TenantTableName", table.clone()),
        ("TenantClusterName", resources.cluster_arn.clone()),
        ("ProvisionStateMachineArn", provision),
        ("LifecycleStateMachineArn", lifecycle),
        ("StripeEventQueueUrl", events_queue.clone()),
        ("StripeEventDeadLetterQueueUrl", dead_letters.clone()),
        ("StripeWebhookUrl", "https://golive.execute-api.us-east-1.amazonaws.com/stripe/webhook".to_owned()),
        ("AlarmTopicArn", topic(true).await),
    ];
    let stack = stack_with(&parameters, &outputs).await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();
    let api = stripe::connect(&stage, &ssm, Some(&stand_in.base)).await.unwrap();
    let preflight = || async {
        let mut checks = doctor(&stage, &secrets, 10).await;
        checks.extend(doctor_stripe(&stage, &api, &catalog).await);
        checks
    };

    // doctor before go-live: no webhook endpoint, so no secret either.
    let checks = preflight().await;
    let failed: Vec<&str> = checks.iter().filter(|c| c.verdict == Verdict::Fail).map(|c| c.name).collect();
    assert!(
        failed.contains(&"webhook secrets") && failed.contains(&"webhook endpoint"),
        "{}",
        render(&checks)
    );

    // stripe sync-catalog, stripe register-webhook; doctor is then ready.
    stripe::sync_catalog(&stage, &api, &catalog).await.unwrap();
    let again = stripe::sync_catalog(&stage, &api, &catalog).await.unwrap();
    assert!(again.changes.iter().all(|c| c.action == stripe::Action::Unchanged), "idempotent: {again}");
    stripe::register_webhook(&stage, &api, &ssm, false).await.unwrap();
    let checks = preflight().await;
    let text = render(&checks);
    assert!(all_passed(&checks), "{text}");
    assert!(text.contains("✔ catalog prices") && text.contains("✔ webhook endpoint"), "{text}");
    assert!(text.contains("✔ quotas") && text.contains("expected 10"), "{text}");

    // A customer pays; the stage's table holds their tenant, as Stripe says.
    let subdomain = unique_name("golive").replace('_', "-");
    stand_in.paid_checkout(&subdomain).await;
    let stripe_events = stand_in.stripe.events();
    let completed = stripe_events
        .iter()
        .rev()
        .find(|e| {
            e["type"] == "checkout.session.completed"
                && e["data"]["object"]["metadata"]["subdomain"] == subdomain
        })
        .expect("the checkout's event")
        .clone();
    let signup = CheckoutSignup::from_session(&completed["data"]["object"], &catalog).unwrap();
    let subscription = stand_in.stripe.subscription(&signup.subscription).await.unwrap().unwrap();
    let mut record =
        TenantRecord::provisioning(signup, "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(), 1);
    record.desired = Some(desired_from(&subscription, &catalog).unwrap());
    record.status = TenantStatus::Active;
    record.reached_generation = record.generation;
    let store = DynamoTenantStore::new(dynamodb::Client::new(&sdk), &table);
    store.insert_tenant(&record).await.unwrap();

    // tenants list, tenants show.
    let listed = tenants::list(&tenants::store(&stage).unwrap(), Some(TenantStatus::Active)).await.unwrap();
    assert_eq!(listed.iter().map(|t| t.id.clone()).collect::<Vec<_>>(), [record.id.clone()]);
    let shown = tenants::render_show(&tenants::show(&stage, &store, &subdomain).await.unwrap());
    assert!(shown.contains(record.id.as_str()) && shown.contains("ACTIVE"), "{shown}");

    // mail resend welcome: sent once, then found sent.
    let resent = mail::resend(&stage, &secrets, "welcome", &subdomain).await.unwrap();
    let sent = resent.sent.unwrap_or_else(|| panic!("not sent: {:?}", resent.failed));
    assert!(!sent.already_sent);
    assert!(
        mail::resend(&stage, &secrets, "welcome", record.id.as_str())
            .await
            .unwrap()
            .sent
            .unwrap()
            .already_sent
    );

    // events replay: the checkout's event from Stripe, run again under a new name.
    let stripe_client = events::stripe_client(&stage, &secrets, Some(&stand_in.base)).await.unwrap();
    let event_id = completed["id"].as_str().unwrap();
    let replayed = events::replay(&stage, &stripe_client, event_id, 1_800_000_000).await.unwrap();
    assert_eq!(replayed.execution_name, format!("{event_id}-replay-1800000000"));

    // redrive: a dead letter back on the queue; no execution has failed.
    sqs::Client::new(&sdk)
        .send_message()
        .queue_url(&dead_letters)
        .message_body(completed.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(redrive::redrive_dead_letters(&stage).await.unwrap().moved, 1);
    assert!(redrive::redrive_executions(&stage, 1_800_000_000).await.unwrap().is_empty());

    // reconcile: in step, nothing about the tenant; then Stripe moves (a plan
    // change nobody delivered) and reconcile --fix converges it.
    let ours = |findings: Vec<reconcile::Finding>| -> Vec<reconcile::Finding> {
        findings.into_iter().filter(|f| f.subject == record.id.as_str()).collect()
    };
    let inventory = reconcile::inventory(&stage).await.unwrap();
    let found = reconcile::reconcile(&store, &stripe_client, &catalog, &inventory).await.unwrap();
    assert_eq!(ours(found), []);
    stand_in
        .stripe
        .act(
            record.signup.as_ref().unwrap().subscription.as_str(),
            &tenancy::adapters::local::SubscriptionAction::ChangePlan {
                plan: "pro".into(),
                billing: None,
                direction: None,
            },
        )
        .unwrap();
    let found = ours(reconcile::reconcile(&store, &stripe_client, &catalog, &inventory).await.unwrap());
    assert_eq!(
        found.iter().map(|f| f.kind).collect::<Vec<_>>(),
        [FindingKind::Drift],
        "{}",
        reconcile::render(&found)
    );
    assert_eq!(found[0].repair, Repair::Converge { tenant: record.id.clone() });
    let repaired = reconcile::fix(&stage, &found, 1_800_000_000).await.unwrap();
    assert!(repaired.iter().all(|r| r.done.is_some()), "{}", reconcile::render_repairs(&repaired));

    // A customer charged with no tenant (their checkout never provisioned):
    // found by listing Stripe's subscriptions, and left to a person.
    let forgotten = unique_name("forgotten").replace('_', "-");
    stand_in.paid_checkout(&forgotten).await;
    let all = reconcile::reconcile(&store, &stripe_client, &catalog, &inventory).await.unwrap();
    let unclaimed: Vec<_> =
        all.into_iter().filter(|f| f.detail.contains(&format!("`{forgotten}`"))).collect();
    assert_eq!(unclaimed.len(), 1, "{}", reconcile::render(&unclaimed));
    assert_eq!((unclaimed[0].kind, &unclaimed[0].repair), (FindingKind::Orphan, &Repair::ByHand));
    assert!(unclaimed[0].subject.starts_with("sub_") && unclaimed[0].detail.contains("charged for nothing"));
    let left = reconcile::fix(&stage, &unclaimed, 1_800_000_000).await.unwrap();
    assert!(
        left[0].done.is_none() && left[0].not_done.as_deref().unwrap_or_default().starts_with("left to you")
    );

    stand_in.stop().await;
}
