//! Mail to a tenant's own address on moto's server: the message where SES's
//! receipt rule stores it (S3), the tenant's address mapped through the
//! table (DynamoDB), and the copy sent on (SES v2), each read back.

use integration_tests::{emulator, lookup, moto_config, provisioning_record, unique_checkout, unique_name};
use serde_json::json;
use tenancy::adapters::aws::{self, S3ReceivedMail};
use tenancy::clock::FixedClock;
use tenancy::domain::{ReceivedMessageId, Subdomain};
use tenancy::inbound::address::TenantMailAddresses;
use tenancy::inbound::forward::{Delivery, Forwarder};
use tenancy::ports::{MailError, ReceivedMail, TenantStore};

const NOW: i64 = 1_763_800_100;

fn message_id() -> ReceivedMessageId {
    ReceivedMessageId::parse(&unique_name("msg")).unwrap()
}

/// Puts `raw` where the receipt rule's S3 action would.
async fn store_as_ses_would(received: &S3ReceivedMail, id: &ReceivedMessageId, raw: Vec<u8>) {
    let s3 = aws::s3_client(&moto_config().await);
    s3.put_object().bucket(received.bucket()).key(received.key(id)).body(raw.into()).send().await.unwrap();
}

#[tokio::test]
async fn a_stored_message_is_read_back_whole_and_a_missing_one_is_none() {
    let resources = emulator().await;
    let sdk = moto_config().await;
    let received = aws::received_mail(&sdk, &lookup(&resources.environment("app:1"))).unwrap();
    assert_eq!(received.bucket(), resources.inbound_bucket);

    // 10 MB, with every byte value: what is read is what SES stored.
    let raw: Vec<u8> = (0..10 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let id = message_id();
    store_as_ses_would(&received, &id, raw.clone()).await;
    let read = received.raw_message(&id).await.unwrap().expect("stored");
    assert_eq!(read.len(), raw.len());
    assert!(read == raw, "byte for byte");

    assert_eq!(received.raw_message(&message_id()).await.unwrap(), None);

    // A bucket the stack does not have is its settings' fault, not the message's.
    let elsewhere = S3ReceivedMail::new(aws::s3_client(&sdk), "no-such-inbound-bucket", "inbound/").unwrap();
    let error = elsewhere.raw_message(&id).await.unwrap_err();
    assert!(matches!(&error, MailError::Rejected(reason) if reason.contains("NoSuchBucket")), "{error:?}");
}

#[tokio::test]
async fn a_received_message_reaches_the_tenants_customer_once_however_often_ses_invokes() {
    let resources = emulator().await;
    let sdk = moto_config().await;
    let env = resources.environment("app:1");
    let store = aws::tenant_store(&sdk, &lookup(&env)).unwrap();
    let received = aws::received_mail(&sdk, &lookup(&env)).unwrap();
    let mailer = aws::mailer(&sdk, &lookup(&env)).unwrap();

    let name = unique_name("mail").replace('-', "");
    let subdomain = Subdomain::parse(&name[..name.len().min(30)]).unwrap();
    let record = provisioning_record(&unique_checkout("mail"), subdomain.as_str());
    store.record_signup(&subdomain, &record, None, NOW).await.unwrap();

    let addresses =
        TenantMailAddresses::new("{subdomain}_app", &format!("mail.{}", resources.domain)).unwrap();
    let address = addresses.address_for(&subdomain).unwrap();
    let subject = unique_name("order");
    let raw = format!(
        "From: Zoe <zoe@cafe.example>\r\nTo: {address}\r\nSubject: {subject}\r\nDKIM-Signature: v=1; b=x\r\n\r\nHello\r\n"
    );
    let id = message_id();
    store_as_ses_would(&received, &id, raw.into_bytes()).await;

    let clock = FixedClock(NOW);
    let forwarder = Forwarder {
        store: &store,
        received: &received,
        mailer: &mailer,
        clock: &clock,
        addresses: &addresses,
        sender: mailer.sender(),
    };
    // SES's Lambda action payload, as the receipt rule sends it.
    let event = json!({"Records": [{"eventSource": "aws:ses", "eventVersion": "1.0", "ses": {
        "mail": {"messageId": id.as_str(), "source": "zoe@cafe.example", "destination": [address.as_str()]},
        "receipt": {"recipients": [address.as_str(), format!("nobody_app@mail.{}", resources.domain)],
                    "spamVerdict": {"status": "PASS"}, "virusVerdict": {"status": "PASS"}}}}]});
    let first = forwarder.forward_event(&event).await.unwrap();
    let Delivery::Forwarded { to, .. } = &first[0] else { panic!("{first:?}") };
    assert_eq!(to, &record.signup.as_ref().unwrap().admin_email);
    assert!(matches!(&first[1], Delivery::Dropped { .. }), "{first:?}");
    let again = forwarder.forward_event(&event).await.unwrap();
    assert!(matches!(&again[0], Delivery::AlreadyForwarded { .. }), "{again:?}");

    let sent: Vec<_> = integration_tests::raw_messages_holding(&subject).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let text = sent[0]["raw_data"].as_str().unwrap();
    assert!(text.starts_with(&format!("From: Zoe via {}_app <{}>", subdomain, mailer.sender())), "{text}");
    assert!(text.contains("Reply-To: Zoe <zoe@cafe.example>") && !text.contains("DKIM"), "{text}");
}

/// `tenantctl --stage … mail forward`: after SES's event failed for good,
/// the operator forwards the stored message from the stage's bucket, and
/// doing it twice sends one copy.
#[tokio::test]
async fn an_operator_forwards_a_stored_message_again_and_it_goes_out_once() {
    use tenantctl::stage::{Stage, StageName, mail};
    let resources = emulator().await;
    let sdk = moto_config().await;
    let env = resources.environment("app:1");
    let store = aws::tenant_store(&sdk, &lookup(&env)).unwrap();
    let received = aws::received_mail(&sdk, &lookup(&env)).unwrap();
    let name = unique_name("again").replace('-', "");
    let subdomain = Subdomain::parse(&name[..name.len().min(30)]).unwrap();
    let record = provisioning_record(&unique_checkout("again"), subdomain.as_str());
    store.record_signup(&subdomain, &record, None, NOW).await.unwrap();
    let domain = format!("mail.{}", resources.domain);
    let stack = crate::doctor::stack_with(
        &[
            ("StripeMode", "test".to_owned()),
            ("TenantMailDomain", domain.clone()),
            ("TenantMailPattern", "{subdomain}-desk".to_owned()),
            ("MailSender", resources.sender.to_string()),
            ("SesConfigurationSet", String::new()),
        ],
        &[
            ("TenantTableName", resources.table.clone()),
            ("InboundMailBucketName", resources.inbound_bucket.clone()),
        ],
    )
    .await;
    let stage = Stage::find(StageName::Test, &stack, &sdk).await.unwrap();

    let address = format!("{subdomain}-desk@{domain}");
    let subject = unique_name("again");
    let id = message_id();
    let raw = format!("From: Zoe <zoe@cafe.example>\r\nTo: {address}\r\nSubject: {subject}\r\n\r\nHello\r\n");
    store_as_ses_would(&received, &id, raw.into_bytes()).await;
    let recipients = [address.clone(), format!("{subdomain}_app@{domain}")];
    let first = mail::forward(&stage, id.as_str(), &recipients).await.unwrap();
    assert!(matches!(&first[0], Delivery::Forwarded { .. }), "{first:?}");
    assert!(matches!(&first[1], Delivery::Dropped { .. }), "the stage's pattern, not the default: {first:?}");
    let again = mail::forward(&stage, id.as_str(), &recipients).await.unwrap();
    assert!(matches!(&again[0], Delivery::AlreadyForwarded { .. }), "{again:?}");
    let sent = integration_tests::raw_messages_holding(&subject).await.len();
    assert_eq!(sent, 1);

    let missing = mail::forward(&stage, message_id().as_str(), &recipients).await.unwrap_err();
    assert!(missing.to_string().contains("is not stored"), "{missing}");
    let bad = mail::forward(&stage, "../other", &recipients).await.unwrap_err();
    assert!(bad.to_string().contains("not a received message's id"), "{bad}");
}
