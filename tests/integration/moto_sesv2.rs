//! Mail through SES v2 on moto's server; what was sent is read from moto's
//! own store of sent messages.

use aws_sdk_sesv2::Client;
use integration_tests::{emulator, lookup, moto_config, moto_models, unique_name};
use tenancy::adapters::aws::SesMailer;
use tenancy::domain::EmailAddress;
use tenancy::ports::{Mail, MailError, Mailer};
use tenantctl::emulator::ensure_sender;

fn welcome(to: &str) -> Mail {
    Mail {
        to: EmailAddress::parse(to).unwrap(),
        subject: format!("Bienvenue chez Zoë’s Café — {}", unique_name("welcome")),
        text: "Your site is ready: https://acme.tenancy.test\nUser: dana@acme.example\n".into(),
    }
}

#[tokio::test]
async fn a_mail_from_the_verified_sender_is_sent_once_as_written() {
    let resources = emulator().await;
    let client = Client::new(&moto_config().await);
    let mailer = SesMailer::from_lookup(client, &lookup(&resources.environment("app:1"))).unwrap();
    assert_eq!(mailer.sender(), &resources.sender);

    let mail = welcome("dana@acme.example");
    let id = mailer.send(&mail).await.unwrap();
    assert!(!id.is_empty());

    let sent: Vec<_> = moto_models("ses", "Message")
        .await
        .into_iter()
        .filter(|m| m["subject"] == mail.subject.as_str())
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    let message = &sent[0];
    assert_eq!(message["id"], id.as_str());
    assert_eq!(message["source"], resources.sender.as_str());
    assert_eq!(message["body"], mail.text.as_str());
    assert_eq!(message["destinations"]["ToAddresses"], serde_json::json!(["dana@acme.example"]));
}

#[tokio::test]
async fn a_sender_that_is_not_verified_is_rejected() {
    let client = Client::new(&moto_config().await);
    let stranger = EmailAddress::parse(&format!("{}@unverified.example", unique_name("nobody"))).unwrap();
    let mailer = SesMailer::new(client.clone(), stranger, None);
    let error = mailer.send(&welcome("dana@acme.example")).await.unwrap_err();
    assert!(matches!(&error, MailError::Rejected(reason) if reason.contains("MessageRejected")), "{error:?}");

    // Verified, the same sender gets through.
    let sender = EmailAddress::parse(&format!("{}@verified.example", unique_name("ops"))).unwrap();
    ensure_sender(&client, &sender).await.unwrap();
    ensure_sender(&client, &sender).await.unwrap();
    SesMailer::new(client, sender, None).send(&welcome("dana@acme.example")).await.unwrap();
}

/// A received message forwarded as it is: SES v2's raw content, from the
/// verified sender its rewritten From names, to the customer only.
#[tokio::test]
async fn a_received_message_is_forwarded_raw_and_read_back_whole() {
    use tenancy::ports::RawMailer;
    let resources = emulator().await;
    let client = Client::new(&moto_config().await);
    let mailer = SesMailer::from_lookup(client, &lookup(&resources.environment("app:1"))).unwrap();
    let subject = unique_name("forwarded");
    let received = format!(
        "From: =?UTF-8?Q?Zo=C3=AB?= <zoe@cafe.example>\r\nTo: acme_app@mail.example.com\r\nSubject: {subject}\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\n\
         Bonjour\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAECAwQF\r\n--b--\r\n"
    );
    let via = EmailAddress::parse("acme_app@mail.example.com").unwrap();
    let forwarded =
        tenancy::inbound::rewrite::for_forwarding(received.as_bytes(), mailer.sender(), &via).unwrap();
    let customer = EmailAddress::parse("dana@acme.example").unwrap();
    let id = mailer.send_raw(&customer, &forwarded).await.unwrap();

    let sent: Vec<_> = integration_tests::raw_messages_holding(&subject).await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["id"], id.as_str());
    assert_eq!(sent[0]["source"], resources.sender.as_str());
    // moto adds the message's To header to the envelope (SES sends to
    // `Destination` only); the forwarder drops a message from its own
    // sender, so a copy back to the tenant's address cannot loop.
    assert_eq!(sent[0]["destinations"][0], "dana@acme.example");
    assert_eq!(sent[0]["raw_data"].as_str().unwrap().as_bytes(), forwarded.as_slice(), "byte for byte");
}
