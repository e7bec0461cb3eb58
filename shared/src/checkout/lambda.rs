//! API Gateway (HTTP API) glue.

use std::convert::Infallible;

use lambda_http::{Body, Request, Response};

use super::CheckoutApi;

pub async fn handle(api: &CheckoutApi, request: Request) -> Result<Response<Body>, Infallible> {
    let answer =
        api.handle(request.method(), request.uri().path(), request.headers(), request.body().as_ref()).await;
    let mut response = Response::new(Body::Text(answer.body));
    *response.status_mut() = answer.status;
    for (name, value) in answer.headers {
        if let Ok(value) = http::HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}
