//! `tenantctl local serve` over real HTTP on loopback.

use std::sync::Arc;

use http::StatusCode;
use integration_tests::{FIXTURE_SECRET, ingress_at, read_repo_file, repo_root};
use tenancy::adapters::local::LocalEventQueue;
use tenancy::stripe::WebhookSecret;
use tenantctl::http_client::HttpClient;
use tenantctl::local::{LocalStack, bind, serve};
use tenantctl::send::{Delivery, send_bytes, send_file};
use tokio::sync::oneshot;

const NOW: i64 = 1_763_800_100;

struct Server {
    base: String,
    queue: Arc<LocalEventQueue>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Server {
    async fn start() -> Server {
        let queue = Arc::new(LocalEventQueue::default());
        let stack = Arc::new(LocalStack { ingress: ingress_at(NOW, queue.clone()), queue: queue.clone() });
        let (listener, addr) = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, stack, async {
            let _ = stopped.await;
        }));
        Server { base: format!("http://{addr}"), queue, stop: Some(stop), task }
    }

    fn webhook(&self) -> String {
        format!("{}/stripe/webhook", self.base)
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn a_signed_sample_event_lands_on_the_local_queue_once() {
    let server = Server::start().await;
    let client = HttpClient::default();
    let secret = WebhookSecret::parse(FIXTURE_SECRET).unwrap();
    let url = server.webhook();
    let delivery = Delivery { url: &url, secret: &secret, timestamp: Some(NOW) };
    let file = repo_root().join("events/01-checkout.session.completed.json");

    let sent = send_file(&client, &delivery, &file).await.unwrap();
    assert_eq!((sent.status, sent.answer.as_str()), (StatusCode::OK, r#"{"received":true}"#));

    let queued = server.queue.snapshot();
    assert_eq!(queued.len(), 1);
    assert_eq!(queued[0].body, read_repo_file("events/01-checkout.session.completed.json"));

    let (status, listing) = client.get(&format!("{}/local/queue", server.base)).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    let listing: serde_json::Value = serde_json::from_slice(&listing).unwrap();
    assert_eq!(listing["queue"][0]["event_id"], "evt_1QAcmeCheckoutDone");
    assert_eq!(listing["queue"].as_array().unwrap().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn each_class_of_bad_request_gets_its_answer_over_http() {
    let server = Server::start().await;
    let client = HttpClient::default();
    let url = server.webhook();
    let good = WebhookSecret::parse(FIXTURE_SECRET).unwrap();
    let wrong = WebhookSecret::parse("whsec_not_the_right_one").unwrap();
    let body = read_repo_file("events/03-invoice.paid.json").into_bytes();
    let send = async |secret: &WebhookSecret, timestamp: i64, body: Vec<u8>| {
        let delivery = Delivery { url: &url, secret, timestamp: Some(timestamp) };
        send_bytes(&client, &delivery, body).await.unwrap()
    };

    let (status, answer) = send(&wrong, NOW, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("no v1 signature matches"), "{answer}");

    let (status, answer) = send(&good, NOW - 3600, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("3600s old"), "{answer}");

    let (status, answer) = send(&good, NOW + 3600, body.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("in the future"), "{answer}");

    let (status, answer) = send(&good, NOW, b"<xml/>".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("not a Stripe event"), "{answer}");

    let live =
        String::from_utf8(body.clone()).unwrap().replace(r#""livemode": false"#, r#""livemode": true"#);
    let (status, answer) = send(&good, NOW, live.into_bytes()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer.contains("livemode=true"), "{answer}");

    let (status, _) = send(&good, NOW, vec![b' '; 300 * 1024]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);

    let unsigned = http::Request::post(&url).body(http_body_util::Full::new(body.into())).unwrap();
    let (status, answer) = client.call(unsigned).await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer, r#"{"error":"missing Stripe-Signature header"}"#.as_bytes());

    let ignored = read_repo_file("events/08-charge.succeeded.json").into_bytes();
    let (status, answer) = send(&good, NOW, ignored).await;
    assert_eq!((status, answer.as_str()), (StatusCode::OK, r#"{"ignored":true,"received":true}"#));

    assert!(server.queue.is_empty(), "nothing refused or ignored may reach the queue");
    server.stop().await;
}
