//! Where Stripe keys and webhook secrets live (SSM Parameter Store in AWS).

use std::fmt;

use async_trait::async_trait;

use super::BoxError;

/// A secret's plaintext. Never printed.
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: String) -> Self {
        SecretValue(value)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretStoreError {
    #[error("secret `{name}` does not exist")]
    NotFound { name: String },
    #[error("secret store unavailable while reading `{name}`")]
    Unavailable {
        name: String,
        #[source]
        source: BoxError,
    },
}

#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get_secret(&self, name: &str) -> Result<SecretValue, SecretStoreError>;
}
