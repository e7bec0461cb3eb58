//! The SQS adapter against moto's server, read back with the SDK.

use std::sync::Arc;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::MessageSystemAttributeName;
use http::{HeaderMap, StatusCode};
use integration_tests::{FIXTURE_SECRET, ingress_at, moto_config, read_repo_file, unique_name};
use tenancy::adapters::aws::SqsEventQueue;
use tenancy::config::{EVENT_QUEUE_URL, QueueUrl};
use tenancy::ports::queue::{ATTR_CREATED, ATTR_EVENT_ID, ATTR_EVENT_TYPE};
use tenancy::stripe::WebhookSecret;

const NOW: i64 = 1_763_800_100;

async fn new_queue(client: &Client) -> QueueUrl {
    let created = client.create_queue().queue_name(unique_name("stripe-events")).send().await.unwrap();
    let url = created.queue_url().unwrap().to_owned();
    QueueUrl::from_lookup(&|var: &str| (var == EVENT_QUEUE_URL).then(|| url.clone())).unwrap()
}

fn signed(body: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let signature = WebhookSecret::parse(FIXTURE_SECRET).unwrap().sign_header(NOW, body.as_bytes());
    headers.insert("stripe-signature", signature.parse().unwrap());
    headers
}

#[tokio::test]
async fn the_handler_puts_the_exact_body_and_attributes_on_sqs() {
    let client = Client::new(&moto_config().await);
    let queue_url = new_queue(&client).await;
    let ingress = ingress_at(NOW, Arc::new(SqsEventQueue::new(client.clone(), queue_url.clone())));
    let body = read_repo_file("events/04-customer.subscription.updated.json");

    let answer = ingress.handle(&signed(&body), body.as_bytes()).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);

    let received = client
        .receive_message()
        .queue_url(queue_url.as_str())
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::All)
        .send()
        .await
        .unwrap();
    let messages = received.messages();
    assert_eq!(messages.len(), 1, "exactly one message per accepted delivery");
    let message = &messages[0];
    assert_eq!(message.body(), Some(body.as_str()));
    let attributes = message.message_attributes().unwrap();
    let attr = |name: &str| attributes[name].string_value().unwrap().to_owned();
    assert_eq!(attr(ATTR_EVENT_ID), "evt_1QAcmeUpgraded");
    assert_eq!(attr(ATTR_EVENT_TYPE), "customer.subscription.updated");
    assert_eq!(attr(ATTR_CREATED), "1763886400");
    assert_eq!(attributes[ATTR_CREATED].data_type(), "Number");
}

#[tokio::test]
async fn an_unreachable_queue_answers_500_so_stripe_retries() {
    let client = Client::new(&moto_config().await);
    let queue_url = new_queue(&client).await;
    client.delete_queue().queue_url(queue_url.as_str()).send().await.unwrap();
    let ingress = ingress_at(NOW, Arc::new(SqsEventQueue::new(client, queue_url)));
    let body = read_repo_file("events/03-invoice.paid.json");

    let answer = ingress.handle(&signed(&body), body.as_bytes()).await;
    assert_eq!(answer.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(answer.body, r#"{"error":"event could not be queued; retry later"}"#);
}
