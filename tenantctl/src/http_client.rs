//! A small HTTP/1 client for talking to the local server.

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad request: {0}")]
    Request(#[from] http::Error),
    #[error("cannot reach {url}")]
    Connect {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("reading the answer from {url}")]
    Body {
        url: String,
        #[source]
        source: hyper::Error,
    },
}

#[derive(Clone)]
pub struct HttpClient {
    inner: Client<HttpConnector, Full<Bytes>>,
}

impl Default for HttpClient {
    fn default() -> Self {
        HttpClient { inner: Client::builder(TokioExecutor::new()).build_http() }
    }
}

impl HttpClient {
    /// Sends `request` and reads the whole answer.
    pub async fn call(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), HttpError> {
        let (status, _, body) = self.call_with_headers(request).await?;
        Ok((status, body))
    }

    /// [`Self::call`], with the answer's headers.
    pub async fn call_with_headers(
        &self,
        request: Request<Full<Bytes>>,
    ) -> Result<(StatusCode, http::HeaderMap, Bytes), HttpError> {
        let url = request.uri().to_string();
        let response = self
            .inner
            .request(request)
            .await
            .map_err(|source| HttpError::Connect { url: url.clone(), source })?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|source| HttpError::Body { url, source })?;
        Ok((parts.status, parts.headers, body.to_bytes()))
    }

    pub async fn get(&self, url: &str) -> Result<(StatusCode, Bytes), HttpError> {
        self.call(Request::get(url).body(Full::default())?).await
    }
}
