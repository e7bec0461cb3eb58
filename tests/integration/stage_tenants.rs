//! `tenantctl --stage … tenants list|show` against a stage on moto: the
//! stage's table found from its stack, what really exists of a tenant's
//! resources, its trail and its executions' console pages.

use integration_tests::{emulator, moto_config, provisioning_record, unique_checkout, unique_name};
use tenancy::adapters::aws::DynamoTenantStore;
use tenancy::adapters::aws::dynamodb::create_table;
use tenancy::adapters::aws::sdk::dynamodb;
use tenancy::domain::{Failure, TenantId, TenantRecord, TenantStatus};
use tenancy::ports::{TenantStore, TrailEntry, TrailOutcome};
use tenantctl::stage::tenants::{list, parse_status, render_list, render_show, show};
use tenantctl::stage::{Stage, StageName};

use crate::doctor::stack_with;

#[tokio::test]
async fn tenants_are_listed_and_shown_with_what_really_exists_of_them() {
    let resources = emulator().await;
    let sdk = moto_config().await;
    let table = unique_name("tenants");
    create_table(&dynamodb::Client::new(&sdk), &table).await.unwrap();
    let store = DynamoTenantStore::new(dynamodb::Client::new(&sdk), &table);
    let subdomain = unique_name("shown").replace('_', "-");
    let mut active = provisioning_record(&unique_checkout("shown"), &subdomain);
    active.status = TenantStatus::Active;
    active.reached_generation = active.generation;
    active.resources.service_arn = Some("arn:aws:ecs:us-east-1:123456789012:service/nowhere/gone".into());
    active.resources.target_group_arn =
        Some("arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/gone/0123456789abcdef".into());
    active.resources.dns_name = Some(format!("{subdomain}.{}", resources.domain));
    store.insert_tenant(&active).await.unwrap();
    let failure = Failure { error: "Tenancy.SubdomainTaken".into(), cause: "taken".into(), at: 1 };
    let rejected =
        TenantRecord::rejected(TenantId::for_checkout(&unique_checkout("rejected")), None, None, failure);
    store.insert_tenant(&rejected).await.unwrap();
    let entry = TrailEntry {
        tenant: active.id.clone(),
        event_id: "evt_1QShownUpgrade".into(),
        event_type: "customer.subscription.updated".into(),
        created: 10,
        recorded_at: 11,
        outcome: TrailOutcome::Applied,
        generation: 2,
        note: "ACTIVE on ultimate".into(),
    };
    store.record_trail(&entry).await.unwrap();
    let machine = "arn:aws:states:us-east-1:123456789012:stateMachine:tenancy-test-lifecycle";
    let stack = stack_with(
        &[("StripeMode", "test".into()), ("HostedZoneId", resources.hosted_zone_id.clone())],
        &[
            ("TenantTableName", table.clone()),
            ("TenantClusterName", resources.cluster_arn.clone()),
            ("LifecycleStateMachineArn", machine.into()),
            ("ProvisionStateMachineArn", machine.replace("lifecycle", "provision")),
        ],
    )
    .await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();

    let all = list(&store, None).await.unwrap();
    assert_eq!(all.len(), 2);
    let failed = list(&store, Some(parse_status("failed").unwrap())).await.unwrap();
    assert_eq!(failed.iter().map(|t| &t.id).collect::<Vec<_>>(), [&rejected.id]);
    assert!(render_list(&all).contains(&subdomain));
    assert!(parse_status("sleeping").unwrap_err().to_string().starts_with("unknown status `sleeping`"));

    let view = show(&stage, &store, &subdomain).await.unwrap();
    assert_eq!(view.record.id, active.id);
    // The record names them; none of them exists: each shown missing.
    let exists: Vec<(&str, Option<bool>)> = view.resources.iter().map(|r| (r.kind, r.exists)).collect();
    assert_eq!(
        exists,
        [("ECS service", Some(false)), ("target group", Some(false)), ("DNS record", Some(false))]
    );
    assert_eq!(view.trail, [entry]);
    assert_eq!(
        view.executions[0].arn,
        "arn:aws:states:us-east-1:123456789012:execution:tenancy-test-lifecycle:evt_1QShownUpgrade"
    );
    assert!(view.executions[0].console.starts_with("https://us-east-1.console.aws.amazon.com/states/home"));
    let text = render_show(&view);
    assert!(text.contains("✘ missing ECS service") && text.contains("reached 1 of 1"), "{text}");
    assert_eq!(show(&stage, &store, active.id.as_str()).await.unwrap().record.id, active.id, "by id too");
    assert!(show(&stage, &store, "nobody").await.unwrap_err().to_string().contains("no tenant has"));
}

#[tokio::test]
async fn a_welcome_mail_is_resent_through_the_stages_own_table_ses_and_key_once() {
    let resources = emulator().await;
    let sdk = moto_config().await;
    let table = unique_name("resend");
    create_table(&dynamodb::Client::new(&sdk), &table).await.unwrap();
    let store = DynamoTenantStore::new(dynamodb::Client::new(&sdk), &table);
    let subdomain = unique_name("resend").replace('_', "-");
    let mut record = provisioning_record(&unique_checkout("resend"), &subdomain);
    record.status = TenantStatus::Active;
    store.insert_tenant(&record).await.unwrap();
    let key_parameter = format!("/{}/tenant-key", unique_name("resend"));
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&key_parameter)
        .value("integration-test-password-key-000000000")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let stack = stack_with(
        &[
            ("StripeMode", "test".into()),
            ("TenantDomain", resources.domain.clone()),
            ("OperatorEmail", "ops@example.com".into()),
            ("MailSender", resources.sender.to_string()),
            ("TenantPasswordKeyParameter", key_parameter),
        ],
        &[("TenantTableName", table.clone())],
    )
    .await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();
    let secrets = tenancy::adapters::aws::secret_store(&sdk);
    let first = tenantctl::stage::mail::resend(&stage, &secrets, "welcome", &subdomain).await.unwrap();
    let sent = first.sent.expect("sent");
    assert!(!sent.already_sent);
    let again = tenantctl::stage::mail::resend(&stage, &secrets, "welcome", &subdomain).await.unwrap();
    assert_eq!(again.sent.unwrap(), tenancy::steps::context::MailReport { already_sent: true, ..sent });
    let mails = store.mails(&record.id).await.unwrap();
    assert!(mails.iter().any(|m| m.key == "welcome" && m.sent.is_some()));
    let unknown = tenantctl::stage::mail::resend(&stage, &secrets, "goodbye", &subdomain).await.unwrap_err();
    assert_eq!(unknown.to_string(), "unknown mail `goodbye`: the one that can be resent is `welcome`");
}
