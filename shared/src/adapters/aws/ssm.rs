use async_trait::async_trait;
use aws_sdk_ssm::Client;
use aws_sdk_ssm::error::SdkError;

use crate::ports::{SecretStore, SecretStoreError, SecretValue};

/// Secrets in SSM Parameter Store, as SecureString parameters.
#[derive(Debug, Clone)]
pub struct SsmSecretStore {
    client: Client,
}

impl SsmSecretStore {
    pub fn new(client: Client) -> Self {
        SsmSecretStore { client }
    }
}

#[async_trait]
impl SecretStore for SsmSecretStore {
    async fn get_secret(&self, name: &str) -> Result<SecretValue, SecretStoreError> {
        let output =
            self.client.get_parameter().name(name).with_decryption(true).send().await.map_err(|error| {
                match &error {
                    SdkError::ServiceError(service) if service.err().is_parameter_not_found() => {
                        SecretStoreError::NotFound { name: name.to_owned() }
                    }
                    _ => SecretStoreError::Unavailable { name: name.to_owned(), source: error.into() },
                }
            })?;
        output
            .parameter
            .and_then(|parameter| parameter.value)
            .map(SecretValue::new)
            .ok_or_else(|| SecretStoreError::NotFound { name: name.to_owned() })
    }
}
