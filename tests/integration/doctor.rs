//! `tenantctl --stage … doctor` against a stage on moto's server: a healthy
//! stage passes, and a deliberately broken one lists each break with its fix.

use integration_tests::{emulator, moto_config, unique_name};
use serde_json::{Map, Value, json};
use tenancy::adapters::aws::sdk::elbv2;
use tenantctl::stage::doctor::{Verdict, all_passed, doctor, render};
use tenantctl::stage::{Stage, StageName};

/// A stack on moto whose parameters are `parameters` (all strings) and whose
/// outputs are `outputs`.
pub async fn stack_with(parameters: &[(&str, String)], outputs: &[(&str, String)]) -> String {
    stack_on(&moto_config().await, parameters, outputs).await
}

/// [`stack_with`] on the moto server `sdk` points at.
pub async fn stack_on(
    sdk: &tenancy::adapters::aws::sdk::aws_config::SdkConfig,
    parameters: &[(&str, String)],
    outputs: &[(&str, String)],
) -> String {
    let name = unique_name("tenancy-doctor");
    let declared: Map<String, Value> =
        parameters.iter().map(|(key, _)| ((*key).to_owned(), json!({"Type": "String"}))).collect();
    let template = json!({
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": declared,
        "Resources": {"Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": format!("{name}-q")}}},
        "Outputs": outputs.iter().map(|(key, value)| ((*key).to_owned(), json!({"Value": value}))).collect::<Map<String, Value>>(),
    });
    let mut create = aws_sdk_cloudformation::Client::new(sdk)
        .create_stack()
        .stack_name(&name)
        .template_body(template.to_string());
    for (key, value) in parameters {
        create = create.parameters(
            aws_sdk_cloudformation::types::Parameter::builder()
                .parameter_key(*key)
                .parameter_value(value)
                .build(),
        );
    }
    create.send().await.expect("moto creates the stack");
    name
}

/// An SSM SecureString, as the operator puts it.
pub async fn put(name: &str, value: &str) {
    aws_sdk_ssm::Client::new(&moto_config().await)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .overwrite(true)
        .send()
        .await
        .expect("moto stores the parameter");
}

pub async fn topic(subscribed: bool) -> String {
    let sns = aws_sdk_sns::Client::new(&moto_config().await);
    let arn = sns.create_topic().name(unique_name("alarms")).send().await.unwrap().topic_arn.unwrap();
    if subscribed {
        sns.subscribe().topic_arn(&arn).protocol("email").endpoint("ops@example.com").send().await.unwrap();
    }
    arn
}

/// An HTTPS:443 listener on the emulator's load balancer with an ACM
/// certificate for `*.{domain}`.
pub async fn https_listener(domain: &str) -> String {
    https_listener_on(&emulator().await.load_balancer_arn, domain).await
}

/// The same on the load balancer `load_balancer_arn`.
pub async fn https_listener_on(load_balancer_arn: &str, domain: &str) -> String {
    let sdk = moto_config().await;
    let certificate = aws_sdk_acm::Client::new(&sdk)
        .request_certificate()
        .domain_name(format!("*.{domain}"))
        .send()
        .await
        .expect("moto issues the certificate")
        .certificate_arn
        .unwrap();
    let elb = elbv2::Client::new(&sdk);
    let not_found = elbv2::types::FixedResponseActionConfig::builder().status_code("404").build();
    let created = elb
        .create_listener()
        .load_balancer_arn(load_balancer_arn)
        .protocol(elbv2::types::ProtocolEnum::Https)
        .port(443)
        .certificates(elbv2::types::Certificate::builder().certificate_arn(certificate).build())
        .default_actions(
            elbv2::types::Action::builder()
                .r#type(elbv2::types::ActionTypeEnum::FixedResponse)
                .fixed_response_config(not_found)
                .build(),
        )
        .send()
        .await
        .expect("moto makes the listener");
    created.listeners()[0].listener_arn().unwrap().to_owned()
}

/// A second load balancer of the emulator's network, for a pool of two.
async fn second_balancer() -> String {
    let resources = emulator().await;
    let elb = elbv2::Client::new(&moto_config().await);
    let name = format!("doctor-{}", std::process::id() % 100_000);
    tenantctl::emulator::ensure_load_balancer(&elb, &name, &resources.network).await.unwrap().arn
}

#[tokio::test]
async fn doctor_passes_a_ready_stage_and_names_each_break_of_a_broken_one_with_its_fix() {
    let resources = emulator().await;
    let sdk = moto_config().await;
    let secrets = tenancy::adapters::aws::secret_store(&sdk);
    let prefix = format!("/{}", unique_name("doctor"));
    put(&format!("{prefix}/stripe-key"), "sk_test_51QDoctorKey000000000000001").await;
    put(&format!("{prefix}/webhook"), "whsec_doctor_new_000000000001,whsec_doctor_old_000000000001").await;
    put(&format!("{prefix}/tenant-key"), "v2:doctor-tenant-key-0123456789abcdefghij").await;
    let ready = vec![
        ("StripeMode", "test".to_owned()),
        ("StripeSecretKeyParameter", format!("{prefix}/stripe-key")),
        ("StripeWebhookSecretParameter", format!("{prefix}/webhook")),
        ("TenantPasswordKeyParameter", format!("{prefix}/tenant-key")),
        ("HostedZoneId", resources.hosted_zone_id.clone()),
        ("TenantDomain", resources.domain.clone()),
        ("AlbListenerArn", https_listener(&resources.domain).await),
        // A pool of two: the second on a load balancer of its own.
        ("MoreAlbListenerArns", https_listener_on(&second_balancer().await, &resources.domain).await),
        ("MailSender", resources.sender.to_string()),
        ("SesSandbox", "true".to_owned()),
    ];
    let cluster = ("TenantClusterName", resources.cluster_arn.clone());
    let stack = stack_with(&ready, &[("AlarmTopicArn", topic(true).await), cluster.clone()]).await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();
    let checks = doctor(&stage, &secrets, 1).await;
    let text = render(&checks);
    assert!(all_passed(&checks), "{text}");
    let passed = checks.iter().filter(|c| c.verdict == Verdict::Pass).count();
    // moto does not answer SES GetAccount: that one is ⚠, never a guess.
    assert_eq!(passed, checks.len() - 1, "{text}");
    assert!(text.contains("⚠ SES production"), "{text}");
    assert!(text.contains("holds 2 signing secret(s)") && text.contains("current version v2"), "{text}");
    assert!(text.contains("all 2 listeners of the pool HTTPS:443"), "{text}");

    // Broken on purpose: a live key on a test stage, no webhook secret, a
    // short tenant key, a zone of another domain, a plain-HTTP listener in
    // the pool, an unverified sender, nobody on the alarm topic.
    put(&format!("{prefix}/live-key"), "sk_live_51QDoctorKey000000000000001").await;
    put(&format!("{prefix}/short-key"), "short").await;
    let broken = vec![
        ("StripeMode", "test".to_owned()),
        ("StripeSecretKeyParameter", format!("{prefix}/live-key")),
        ("StripeWebhookSecretParameter", format!("{prefix}/no-such-parameter")),
        ("TenantPasswordKeyParameter", format!("{prefix}/short-key")),
        ("HostedZoneId", resources.hosted_zone_id.clone()),
        ("TenantDomain", "apps.elsewhere.example".to_owned()),
        ("AlbListenerArn", resources.listener_arn.clone()),
        ("MoreAlbListenerArns", https_listener(&resources.domain).await),
        ("MailSender", "nobody@unverified.example".to_owned()),
        ("SesSandbox", "true".to_owned()),
    ];
    // And more tenants expected than any quota leaves room for.
    let stack = stack_with(&broken, &[("AlarmTopicArn", topic(false).await), cluster]).await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();
    let checks = doctor(&stage, &secrets, 1_000_000).await;
    let text = render(&checks);
    assert!(!all_passed(&checks));
    let failed: Vec<&str> = checks.iter().filter(|c| c.verdict == Verdict::Fail).map(|c| c.name).collect();
    assert_eq!(
        failed,
        [
            "Stripe key",
            "webhook secrets",
            "tenant key",
            "hosted zone",
            "load balancer",
            "SES identity",
            "alarm topic",
            "quotas"
        ],
        "{text}"
    );
    let fix = |name: &str| checks.iter().find(|c| c.name == name).unwrap().fix.clone().unwrap();
    assert!(fix("Stripe key").contains(&format!("--name {prefix}/live-key --value 'sk_test_…'")));
    assert_eq!(fix("webhook secrets"), "tenantctl --stage test stripe register-webhook");
    assert!(fix("alarm topic").contains("aws sns subscribe"));
    let quotas = checks.iter().find(|c| c.name == "quotas").unwrap();
    assert!(quotas.detail.contains("1000000 expected: places on the pool's load balancers "), "{text}");
    assert!(quotas.detail.contains("/200"), "two load balancers of 100 places each: {text}");
    let balancer = checks.iter().find(|c| c.name == "load balancer").unwrap();
    assert!(balancer.detail.starts_with("listener 1 of 2 in the pool: listener is HTTP:80"), "{text}");
    assert!(fix("quotas").contains("add one to the pool"), "{text}");
    assert!(!text.contains("51QDoctorKey"), "no key is ever printed: {text}");
}

/// The tenants' own addresses: the stack's receipt rule must be in the
/// region's active rule set, the mail domain's MX must point at SES, and the
/// domain must be verified. Each break is named with its fix, then mended.
#[tokio::test]
async fn doctor_checks_that_ses_receives_for_the_tenants_addresses() {
    use tenancy::adapters::aws::sdk::{route53, sesv2};
    let resources = emulator().await;
    let sdk = moto_config().await;
    let ses = aws_sdk_ses::Client::new(&sdk);
    let domain = format!("{}.{}", unique_name("mail"), resources.domain);
    let (set, rule) = (unique_name("tenant-mail"), unique_name("tenant-mail-rule"));
    ses.create_receipt_rule_set().rule_set_name(&set).send().await.unwrap();
    let receipt_rule = aws_sdk_ses::types::ReceiptRule::builder()
        .name(&rule)
        .enabled(true)
        .recipients(&domain)
        .build()
        .unwrap();
    ses.create_receipt_rule().rule_set_name(&set).rule(receipt_rule).send().await.unwrap();
    let stack = stack_with(
        &[
            ("StripeMode", "test".to_owned()),
            ("TenantMailDomain", domain.clone()),
            ("HostedZoneId", resources.hosted_zone_id.clone()),
        ],
        &[("TenantMailReceiptRuleSetName", set.clone()), ("TenantMailReceiptRuleName", rule.clone())],
    )
    .await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();
    let mail_checks = async || {
        let checks = tenantctl::stage::receiving::tenant_mail(&stage).await;
        let text = render(&checks);
        (checks, text)
    };

    // Another stack's rule set is active (SES has one per region): ours is not receiving.
    let other = unique_name("someone-elses");
    ses.create_receipt_rule_set().rule_set_name(&other).send().await.unwrap();
    ses.set_active_receipt_rule_set().rule_set_name(&other).send().await.unwrap();
    let (checks, text) = mail_checks().await;
    assert!(checks.iter().all(|c| c.verdict == Verdict::Fail), "{text}");
    let fix = |name: &str| checks.iter().find(|c| c.name == name).unwrap().fix.clone().unwrap();
    assert!(fix("mail receiving").contains(&format!("MailReceiptRuleSet={other}")), "{text}");
    assert!(
        fix("mail receiving").contains(&format!("set-active-receipt-rule-set --rule-set-name {set}")),
        "{text}"
    );
    assert!(fix("mail MX record").contains("CreateMailMxRecord=true"), "{text}");
    assert!(fix("mail domain").contains(&format!("verify {domain}")), "{text}");

    // Mended: ours active, the MX to SES in this region, the domain verified.
    ses.set_active_receipt_rule_set().rule_set_name(&set).send().await.unwrap();
    let mx = "10 inbound-smtp.us-east-1.amazonaws.com";
    integration_tests::put_record(&sdk, &resources.hosted_zone_id, &domain, route53::types::RrType::Mx, mx)
        .await;
    sesv2::Client::new(&sdk).create_email_identity().email_identity(&domain).send().await.unwrap();
    let (checks, text) = mail_checks().await;
    assert!(checks.iter().all(|c| c.verdict == Verdict::Pass), "{text}");
    assert_eq!(checks.len(), 3, "{text}");
    assert!(text.contains(&format!("{domain} MX → inbound-smtp.us-east-1.amazonaws.com")), "{text}");
    // Leave SES as other tests expect it: no rule set active.
    ses.set_active_receipt_rule_set().send().await.unwrap();
}
