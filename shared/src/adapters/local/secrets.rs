use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::ports::{SecretStore, SecretStoreError, SecretValue};

/// Secrets held in memory, standing in for SSM Parameter Store.
#[derive(Debug, Default)]
pub struct InMemorySecretStore {
    values: Mutex<HashMap<String, String>>,
}

impl InMemorySecretStore {
    pub fn put(&self, name: &str, value: &str) {
        self.values.lock().unwrap_or_else(PoisonError::into_inner).insert(name.to_owned(), value.to_owned());
    }
}

#[async_trait]
impl SecretStore for InMemorySecretStore {
    async fn get_secret(&self, name: &str) -> Result<SecretValue, SecretStoreError> {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values
            .get(name)
            .map(|value| SecretValue::new(value.clone()))
            .ok_or_else(|| SecretStoreError::NotFound { name: name.to_owned() })
    }
}
