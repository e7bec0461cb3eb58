//! `tenantctl send`: sign an event file like Stripe and POST it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use tenancy::clock::{Clock, SystemClock};
use tenancy::stripe::WebhookSecret;

use crate::http_client::HttpClient;

/// One event to deliver, and how to sign it.
pub struct Delivery<'a> {
    pub url: &'a str,
    pub secret: &'a WebhookSecret,
    /// Unix seconds for `t=`; now when `None`.
    pub timestamp: Option<i64>,
}

/// The outcome of one delivery, for printing.
#[derive(Debug)]
pub struct Sent {
    pub file: PathBuf,
    pub status: StatusCode,
    pub answer: String,
}

/// Reads `file` (the body is sent byte for byte), signs it and posts it.
pub async fn send_file(client: &HttpClient, delivery: &Delivery<'_>, file: &Path) -> Result<Sent> {
    let body = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let (status, answer) = send_bytes(client, delivery, body).await?;
    Ok(Sent { file: file.to_owned(), status, answer })
}

pub async fn send_bytes(
    client: &HttpClient,
    delivery: &Delivery<'_>,
    body: Vec<u8>,
) -> Result<(StatusCode, String)> {
    let timestamp = delivery.timestamp.unwrap_or_else(|| SystemClock.now_unix());
    let signature = delivery.secret.sign_header(timestamp, &body);
    let request = Request::post(delivery.url)
        .header("content-type", "application/json; charset=utf-8")
        .header("stripe-signature", signature)
        .header("user-agent", "Stripe/1.0 (+https://stripe.com/docs/webhooks)")
        .body(Full::new(Bytes::from(body)))?;
    let (status, answer) = client.call(request).await?;
    Ok((status, String::from_utf8_lossy(&answer).into_owned()))
}
