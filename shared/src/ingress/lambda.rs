//! API Gateway (HTTP API, payload v2) glue for the webhook handler.

use std::convert::Infallible;

use lambda_http::{Body, Request, Response};

use super::WebhookIngress;

/// The Lambda handler: `lambda_http` has already decoded a base64 body
/// (`isBase64Encoded`) into the bytes Stripe sent.
pub async fn handle(ingress: &WebhookIngress, request: Request) -> Result<Response<Body>, Infallible> {
    let answer = ingress.handle(request.headers(), request.body().as_ref()).await;
    let mut response = Response::new(Body::Text(answer.body));
    *response.status_mut() = answer.status;
    response
        .headers_mut()
        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    Ok(response)
}
