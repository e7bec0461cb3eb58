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
