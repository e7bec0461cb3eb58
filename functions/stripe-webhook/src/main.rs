use std::sync::Arc;

use tenancy::adapters::aws::{SqsEventQueue, sdk_config, secret_store};
use tenancy::clock::SystemClock;
use tenancy::config::{ProcessEnv, QueueUrl, WebhookConfig};
use tenancy::ingress::{WebhookIngress, lambda};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    tenancy::telemetry::init_json_logs();
    let config = WebhookConfig::from_lookup(&ProcessEnv)?;
    tenancy::domain::Catalog::embedded()?; // a catalog that does not parse does not start
    let queue_url = QueueUrl::from_lookup(&ProcessEnv)?;
    let aws = sdk_config(None).await;
    let secrets = Arc::new(secret_store(&aws));
    let verifier = config.verifier(secrets.as_ref()).await?;
    let queue = SqsEventQueue::new(aws_sdk_sqs::Client::new(&aws), queue_url);
    let ingress = WebhookIngress::new(verifier, config.mode, Arc::new(queue), Arc::new(SystemClock))
        .reloading_secrets(config, secrets);
    lambda_http::run(lambda_http::service_fn(|request| lambda::handle(&ingress, request))).await
}
