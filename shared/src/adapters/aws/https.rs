//! The one HTTPS client all of a process's AWS SDK clients share.
//!
//! Left to themselves, each SDK client (SSM, SQS, …) builds a connector of
//! its own, and each connector parses every CA certificate the OS keeps: on
//! Debian the bundle file, then a folder of one file per certificate holding
//! the same ones again. At a cold start that was most of the webhook's own
//! time (BENCHMARKS.md, section 2). Here they are read once per process, from
//! one bundle file where the OS has one (Amazon Linux, Lambda's OS, does:
//! /etc/pki/tls/certs/ca-bundle.crt), or the file `SSL_CERT_FILE` names.
//! Without either, the SDK's own search of the OS's store is kept.
//!
//! And they are parsed once, when the first request needs a connection: the
//! SDK builds a connector, certificates and all, to check the client's
//! configuration each time a client is made (the SSM and SQS clients, the
//! STS client inside the credentials chain), then throws it away.

use std::path::{Path, PathBuf};

use aws_sdk_ssm::config::SharedHttpClient;
use aws_smithy_http_client::tls::rustls_provider::CryptoMode;
use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_http_client::{Builder, HttpClientError};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::connector_metadata::ConnectorMetadata;
use aws_smithy_runtime_api::client::http::{HttpClient, HttpConnectorSettings, SharedHttpConnector};
use aws_smithy_runtime_api::client::runtime_components::{RuntimeComponents, RuntimeComponentsBuilder};
use aws_smithy_types::config_bag::ConfigBag;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;

/// Where operating systems keep their CA bundle file, most common first:
/// Debian and Ubuntu, Amazon Linux / RHEL / Fedora (and its extracted
/// form), SUSE, Alpine.
pub const OS_CA_BUNDLES: [&str; 5] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// The HTTPS client for an [`aws_config::SdkConfig`], so every client made
/// from it shares one connector, its certificates and its connections.
pub fn shared_https_client() -> Result<SharedHttpClient, HttpClientError> {
    let context = TlsContext::builder().with_trust_store(trust_store()).build()?;
    let https = Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::AwsLc))
        .tls_context(context)
        .build_https();
    Ok(SharedHttpClient::new(ConnectorOnFirstUse(https)))
}

/// The SDK's HTTPS client, less its check at each client's making, which
/// builds (and drops) a whole connector: with a trust store of its own, every
/// certificate decoded again each time. Its connectors are made, once per
/// setting of timeouts and cached, when a request first needs one, so a
/// broken TLS set-up still fails the first call, with the SDK's error.
#[derive(Debug)]
struct ConnectorOnFirstUse(SharedHttpClient);

impl HttpClient for ConnectorOnFirstUse {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        self.0.http_connector(settings, components)
    }

    fn validate_base_client_config(
        &self,
        _: &RuntimeComponentsBuilder,
        _: &ConfigBag,
    ) -> Result<(), BoxError> {
        Ok(())
    }

    fn connector_metadata(&self) -> Option<ConnectorMetadata> {
        self.0.connector_metadata()
    }
}

/// The bundle file to trust: `SSL_CERT_FILE`'s, else the OS's.
fn bundle_path() -> Option<PathBuf> {
    match std::env::var_os("SSL_CERT_FILE") {
        Some(path) if !path.is_empty() => Some(PathBuf::from(path)),
        _ => OS_CA_BUNDLES.iter().map(Path::new).find(|path| path.is_file()).map(Path::to_path_buf),
    }
}

fn trust_store() -> TrustStore {
    let Some(path) = bundle_path() else { return TrustStore::default() };
    match std::fs::read(&path) {
        Ok(pem) => match usable_certificates(&pem) {
            Some(usable) => TrustStore::empty().with_pem_certificate(usable),
            None => {
                tracing::warn!(path = %path.display(), "CA bundle holds no usable certificate; using the OS's store");
                TrustStore::default()
            }
        },
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "CA bundle unreadable; using the OS's store");
            TrustStore::default()
        }
    }
}

/// The PEM certificates of `bundle` that rustls can use as trust anchors,
/// or None if there are none. The SDK panics on one it cannot parse, and
/// OS bundles may hold such (or other PEM sections): those are left out.
/// Decoded with a fast base64 decoder: these are public certificates, and
/// the SDK's own constant-time one, run again on what is kept, is the
/// slower by far.
fn usable_certificates(bundle: &[u8]) -> Option<Vec<u8>> {
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let mut usable = Vec::with_capacity(bundle.len());
    let mut rest = bundle;
    let mut encoded = Vec::with_capacity(4096);
    while let Some(end) = memchr::memmem::find(rest, END) {
        let (before, section_end) = (&rest[..end], end + END.len());
        let begin = memchr::memmem::rfind(before, BEGIN);
        let section = begin.map(|begin| (&rest[begin..section_end], &before[begin + BEGIN.len()..]));
        rest = &rest[section_end..];
        let Some((section, body)) = section else { continue };
        encoded.clear();
        encoded.extend(body.iter().filter(|byte| !byte.is_ascii_whitespace()));
        let Ok(der) = STANDARD.decode(&encoded) else { continue };
        if RootCertStore::empty().add(CertificateDer::from(der)).is_ok() {
            usable.extend_from_slice(section);
            usable.push(b'\n');
        }
    }
    (!usable.is_empty()).then_some(usable)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use rustls::pki_types::pem::PemObject;

    use super::*;

    /// An HTTP client that counts the checks of it made as SDK clients are made.
    #[derive(Debug, Default)]
    struct CountingClient(Arc<AtomicUsize>);

    impl HttpClient for CountingClient {
        fn http_connector(&self, _: &HttpConnectorSettings, _: &RuntimeComponents) -> SharedHttpConnector {
            unreachable!("no request is sent")
        }

        fn validate_base_client_config(
            &self,
            _: &RuntimeComponentsBuilder,
            _: &ConfigBag,
        ) -> Result<(), BoxError> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    #[test]
    fn making_sdk_clients_builds_no_connector() {
        let checks = Arc::new(AtomicUsize::new(0));
        let counting = || CountingClient(Arc::clone(&checks));
        let config = |client: SharedHttpClient| {
            aws_config::SdkConfig::builder()
                .http_client(client)
                .behavior_version(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new("us-east-1"))
                .build()
        };
        // The SDK's own clients check their HTTP client as they are made:
        let direct = config(SharedHttpClient::new(counting()));
        let _ = aws_sdk_ssm::Client::new(&direct);
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        // ours does not pass the check on to the connector-building client.
        let ours = config(SharedHttpClient::new(ConnectorOnFirstUse(SharedHttpClient::new(counting()))));
        let _ = (aws_sdk_ssm::Client::new(&ours), aws_sdk_sqs::Client::new(&ours));
        assert_eq!(checks.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn a_bundle_keeps_its_usable_certificates_and_drops_the_rest() {
        let Some(path) = OS_CA_BUNDLES.iter().find(|path| Path::new(path).is_file()) else {
            panic!("this machine has no CA bundle file in {OS_CA_BUNDLES:?}");
        };
        let bundle = std::fs::read(path).unwrap();
        let count = |pem: &[u8]| CertificateDer::pem_slice_iter(pem).filter(|c| c.is_ok()).count();
        let broken = b"-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n";
        let mixed = [broken.as_slice(), b"# a comment\n", &bundle, broken].concat();
        let usable = usable_certificates(&mixed).unwrap();
        assert_eq!(count(&usable), count(&bundle));
        assert!(count(&bundle) > 50, "{path}");
        assert_eq!(usable_certificates(broken), None);
        assert_eq!(usable_certificates(b""), None);
    }
}
