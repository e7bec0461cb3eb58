//! `tenantctl local serve`: the webhook behind the same handler code as in
//! Lambda, with local adapters in place of AWS.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Serialize;
use tenancy::adapters::local::LocalEventQueue;
use tenancy::ingress::WebhookIngress;
use tokio::net::TcpListener;

/// API Gateway refuses payloads over 10 MB before Lambda sees them; the
/// handler's own, smaller limit answers 413 below that.
const TRANSPORT_BODY_LIMIT: usize = 10 * 1024 * 1024;

/// Everything the local server holds.
pub struct LocalStack {
    pub ingress: WebhookIngress,
    pub queue: Arc<LocalEventQueue>,
}

pub fn router(stack: Arc<LocalStack>) -> Router {
    Router::new()
        .route("/stripe/webhook", post(stripe_webhook))
        .route("/local/queue", get(queued_events))
        .layer(DefaultBodyLimit::max(TRANSPORT_BODY_LIMIT))
        .with_state(stack)
}

async fn stripe_webhook(State(stack): State<Arc<LocalStack>>, headers: HeaderMap, body: Bytes) -> Response {
    let answer = stack.ingress.handle(&headers, &body).await;
    (answer.status, [(header::CONTENT_TYPE, "application/json")], answer.body).into_response()
}

/// What `GET /local/queue` shows of each waiting message.
#[derive(Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct QueuedView {
    pub event_id: String,
    pub event_type: String,
    pub created: i64,
    pub body_bytes: usize,
}

async fn queued_events(State(stack): State<Arc<LocalStack>>) -> impl IntoResponse {
    let events: Vec<QueuedView> = stack
        .queue
        .snapshot()
        .into_iter()
        .map(|event| QueuedView {
            event_id: event.event_id.to_string(),
            event_type: event.event_type.to_string(),
            created: event.created,
            body_bytes: event.body.len(),
        })
        .collect();
    (StatusCode::OK, axum::Json(serde_json::json!({ "queue": events })))
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address.
pub async fn bind(addr: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Serves until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    stack: Arc<LocalStack>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(stack)).with_graceful_shutdown(shutdown).await
}
