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

/// An ECS service as the launcher names it, on the emulator's cluster.
async fn service_named(sdk: &tenancy::adapters::aws::sdk::aws_config::SdkConfig, name: &str) {
    use tenancy::adapters::aws::sdk::ecs;
    let resources = emulator().await;
    let client = ecs::Client::new(sdk);
    let container = ecs::types::ContainerDefinition::builder().name("app").image("nginx").memory(512).build();
    let family = client
        .register_task_definition()
        .family(name)
        .container_definitions(container)
        .send()
        .await
        .unwrap()
        .task_definition
        .unwrap()
        .task_definition_arn
        .unwrap();
    client
        .create_service()
        .cluster(&resources.cluster_arn)
        .service_name(name)
        .task_definition(family)
        .desired_count(0)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn reconcile_reports_drift_missing_resources_and_orphans_and_fix_converges_and_removes_them() {
    use tenancy::adapters::aws::launcher::TenantNames;
    use tenancy::adapters::aws::sdk::sfn;
    use tenancy::adapters::aws::sdk::{elbv2, route53};
    use tenancy::adapters::local::LocalStripe;
    use tenancy::domain::{Catalog, desired_from};
    use tenancy::ports::SubscriptionSource;
    use tenantctl::stage::reconcile::{FindingKind, fix, inventory, reconcile, render, render_repairs};

    let resources = emulator().await;
    let sdk = moto_config().await;
    let table = unique_name("reconcile");
    create_table(&dynamodb::Client::new(&sdk), &table).await.unwrap();
    let store = DynamoTenantStore::new(dynamodb::Client::new(&sdk), &table);
    let clock: std::sync::Arc<dyn tenancy::clock::Clock> = std::sync::Arc::new(tenancy::clock::SystemClock);
    let stripe = LocalStripe::open(None, "http://127.0.0.1:1", clock).unwrap();
    let catalog = Catalog::embedded().unwrap();

    // In step: the record says what Stripe says, and its service exists.
    let checkout: serde_json::Value =
        serde_json::from_str(&integration_tests::read_repo_file("events/01-checkout.session.completed.json"))
            .unwrap();
    let mut in_step =
        provisioning_record(&unique_checkout("instep"), &unique_name("instep").replace('_', "-"));
    let sub_id = in_step.signup.as_ref().unwrap().subscription.clone();
    assert!(stripe.adopt_checkout(&checkout).unwrap());
    let subscription = stripe.subscription(&sub_id).await.unwrap().unwrap();
    in_step.desired = Some(desired_from(&subscription, &catalog).unwrap());
    in_step.status = TenantStatus::Active;
    in_step.reached_generation = in_step.generation;
    let names = TenantNames::of(&in_step.id);
    service_named(&sdk, &names.service).await;
    in_step.resources.service_arn = Some("recorded".into());
    store.insert_tenant(&in_step).await.unwrap();

    // Drifted: Stripe says pro, the record ultimate; its service is gone.
    let mut drifted =
        provisioning_record(&unique_checkout("drifted"), &unique_name("drifted").replace('_', "-"));
    let mut desired = in_step.desired.clone().unwrap();
    desired.plan = catalog.plan("ultimate").unwrap();
    drifted.desired = Some(desired);
    drifted.status = TenantStatus::Active;
    drifted.reached_generation = drifted.generation;
    drifted.resources.service_arn = Some("arn:aws:ecs:us-east-1:123456789012:service/x/gone".into());
    store.insert_tenant(&drifted).await.unwrap();

    // Orphans: a service and a target group named for a tenant nobody has,
    // and a DNS record under the tenant domain no tenant names.
    let ghost = TenantNames::of(&TenantId::for_checkout(&unique_checkout("ghost")));
    service_named(&sdk, &ghost.service).await;
    elbv2::Client::new(&sdk)
        .create_target_group()
        .name(&ghost.target_group)
        .protocol(elbv2::types::ProtocolEnum::Http)
        .port(8080)
        .vpc_id(&resources.network.vpc_id)
        .target_type(elbv2::types::TargetTypeEnum::Ip)
        .send()
        .await
        .unwrap();
    let ghost_name = format!("{}.{}", unique_name("ghost").replace('_', "-"), resources.domain);
    integration_tests::put_record(
        &sdk,
        &resources.hosted_zone_id,
        &ghost_name,
        route53::types::RrType::A,
        "10.0.0.1",
    )
    .await;

    let lifecycle = crate::stage_events::state_machine(&sdk, &unique_name("lifecycle")).await;
    let stack = stack_with(
        &[
            ("StripeMode", "test".into()),
            ("HostedZoneId", resources.hosted_zone_id.clone()),
            ("TenantDomain", resources.domain.clone()),
            ("AlbListenerArn", resources.listener_arn.clone()),
        ],
        &[
            ("TenantTableName", table),
            ("TenantClusterName", resources.cluster_arn.clone()),
            ("LifecycleStateMachineArn", lifecycle.clone()),
        ],
    )
    .await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();
    let findings = reconcile(&store, &stripe, &catalog, &inventory(&stage).await.unwrap()).await.unwrap();
    let text = render(&findings);
    // Other tests share the emulator's cluster, balancer and zone: only what
    // this test made is asserted.
    let about = |subject: &str| {
        findings.iter().filter(|f| f.subject.contains(subject)).map(|f| f.kind).collect::<Vec<_>>()
    };
    assert_eq!(about(in_step.id.as_str()), [], "{text}");
    assert_eq!(about(drifted.id.as_str()), [FindingKind::Drift, FindingKind::Missing], "{text}");
    assert!(text.contains("Stripe says ACTIVE on pro, the record ACTIVE on ultimate"), "{text}");
    assert_eq!(about(&ghost.service), [FindingKind::Orphan], "{text}");
    assert_eq!(about(&ghost.target_group), [FindingKind::Orphan], "{text}");
    assert_eq!(about(&ghost_name), [FindingKind::Orphan], "{text}");
    // The daily function's entry point finds (at least) the same.
    let places = tenancy::reconcile::Places {
        cluster: resources.cluster_arn.clone(),
        hosted_zone_id: resources.hosted_zone_id.clone(),
        tenant_domain: resources.domain.clone(),
    };
    let watched = [lifecycle.clone()];
    let counted =
        tenancy::reconcile::scheduled(&sdk, &places, &store, &stripe, &catalog, &watched, 1_700_000_000)
            .await
            .unwrap();
    assert!(counted >= 5, "{counted} findings");

    // --fix, on this test's findings only: the drifted tenant converged once
    // (one lifecycle execution for its two findings), the ghost's service
    // and target group removed once, the record deleted.
    let subjects = [drifted.id.as_str(), &ghost.service, &ghost.target_group, &ghost_name];
    let ours: Vec<_> =
        findings.into_iter().filter(|f| subjects.iter().any(|s| f.subject.contains(s))).collect();
    let repaired = fix(&stage, &ours, 1_700_000_000).await.unwrap();
    let report = render_repairs(&repaired);
    assert_eq!(repaired.len(), 3, "{report}");
    assert!(repaired.iter().all(|r| r.done.is_some()), "{report}");
    let converge = format!("reconcile-{}-1700000000", drifted.id);
    assert!(report.contains(&converge), "{report}");
    let started = sfn::Client::new(&sdk)
        .describe_execution()
        .execution_arn(format!("{}:{converge}", lifecycle.replace(":stateMachine:", ":execution:")))
        .send()
        .await
        .unwrap();
    let input: serde_json::Value = serde_json::from_str(started.input().unwrap()).unwrap();
    assert_eq!(input, serde_json::json!({"tenant_id": drifted.id}));
    let after = reconcile(&store, &stripe, &catalog, &inventory(&stage).await.unwrap()).await.unwrap();
    for gone in [&ghost.service, &ghost.target_group, &ghost_name] {
        assert!(!after.iter().any(|f| f.subject.contains(gone.as_str())), "{gone}: {}", render(&after));
    }
    // Again, later: every removal finds nothing left and says done.
    let again = fix(&stage, &ours, 1_700_000_060).await.unwrap();
    assert!(again.iter().all(|r| r.done.is_some()), "{}", render_repairs(&again));
}

#[tokio::test]
async fn a_status_token_is_rotated_in_the_stages_table_and_a_lifecycle_execution_relaunches_the_app() {
    use tenancy::domain::StatusToken;
    use tenancy::domain::password::PasswordKey;
    use tenantctl::stage::status_token::rotate;
    let sdk = moto_config().await;
    let table = unique_name("rotate");
    create_table(&dynamodb::Client::new(&sdk), &table).await.unwrap();
    let store = DynamoTenantStore::new(dynamodb::Client::new(&sdk), &table);
    let subdomain = unique_name("rotate").replace('_', "-");
    let mut record = provisioning_record(&unique_checkout("rotate"), &subdomain);
    record.status = TenantStatus::Active;
    record.reached_generation = record.generation;
    assert!(record.status_token.is_none(), "a tenant from before status tokens");
    store.insert_tenant(&record).await.unwrap();
    let key_parameter = format!("/{}/tenant-key", unique_name("rotate"));
    crate::doctor::put(&key_parameter, "integration-test-password-key-000000000").await;
    let lifecycle = crate::stage_events::state_machine(&sdk, &unique_name("lifecycle")).await;
    let stack = stack_with(
        &[("StripeMode", "test".into()), ("TenantPasswordKeyParameter", key_parameter)],
        &[
            ("TenantTableName", table.clone()),
            ("LifecycleStateMachineArn", lifecycle.clone()),
            ("CheckoutApiUrl", "https://api.example.com".into()),
        ],
    )
    .await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();
    let secrets = tenancy::adapters::aws::secret_store(&sdk);
    let key = PasswordKey::parse("integration-test-password-key-000000000").unwrap();

    let first = rotate(&stage, &secrets, &subdomain, 1_800_000_000).await.unwrap();
    assert_eq!((first.tenant_id.clone(), first.token_generation), (record.id.clone(), 1));
    assert_eq!(first.execution, format!("rotate-status-token-{}-1800000000", record.id));
    let stored = store.get_tenant(&record.id).await.unwrap().unwrap();
    let one = StatusToken::derive(&key, &record.id, 1);
    assert!(stored.status_token.as_ref().is_some_and(|t| t.matches(&one)), "{:?}", stored.status_token);
    assert_eq!(stored.generation, record.generation + 1, "a converge is due");
    // The lifecycle execution converges the tenant by its id.
    let execution = format!("{}:{}", lifecycle.replace(":stateMachine:", ":execution:"), first.execution);
    let started = tenancy::adapters::aws::sdk::sfn::Client::new(&sdk)
        .describe_execution()
        .execution_arn(&execution)
        .send()
        .await
        .unwrap();
    let input: serde_json::Value = serde_json::from_str(started.input().unwrap_or_default()).unwrap();
    assert_eq!(input, serde_json::json!({"tenant_id": record.id}));

    // Again, by id: the next generation, the first token no longer current.
    let second = rotate(&stage, &secrets, record.id.as_str(), 1_800_000_060).await.unwrap();
    assert_eq!(second.token_generation, 2);
    let stored = store.get_tenant(&record.id).await.unwrap().unwrap();
    let recorded = stored.status_token.unwrap();
    assert!(!recorded.matches(&one) && recorded.matches(&StatusToken::derive(&key, &record.id, 2)));
    let unknown = rotate(&stage, &secrets, "nobody", 1_800_000_120).await.unwrap_err();
    assert!(unknown.to_string().contains("no tenant has"), "{unknown}");
}
