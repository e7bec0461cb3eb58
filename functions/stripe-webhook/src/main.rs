use std::sync::Arc;

use tenancy::adapters::aws::{SqsEventQueue, sdk_config, secret_store};
use tenancy::clock::SystemClock;
use tenancy::config::{ProcessEnv, QueueUrl, WebhookConfig};
use tenancy::ingress::{WebhookIngress, lambda};
use tenancy::telemetry::InitPhases;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_http::Error> {
    let mut init = InitPhases::start();
    tenancy::telemetry::init_json_logs();
    let config = WebhookConfig::from_lookup(&ProcessEnv)?;
    tenancy::domain::Catalog::embedded()?; // a catalog that does not parse does not start
    let queue_url = QueueUrl::from_lookup(&ProcessEnv)?;
    init.mark("config");
    let aws = sdk_config(None).await;
    let secrets = Arc::new(secret_store(&aws));
    init.mark("sdk");
    // The SQS client is built while the SSM read waits for its answer.
    let queue = async { SqsEventQueue::new(aws_sdk_sqs::Client::new(&aws), queue_url) };
    let (verifier, queue) = tokio::join!(config.verifier(secrets.as_ref()), queue);
    let ingress = WebhookIngress::new(verifier?, config.mode, Arc::new(queue), Arc::new(SystemClock))
        .reloading_secrets(config, secrets);
    init.mark("secrets");
    init.finish();
    lambda_http::run(lambda_http::service_fn(|request| lambda::handle(&ingress, request))).await
}
