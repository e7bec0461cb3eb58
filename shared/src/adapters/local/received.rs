//! Received messages on a laptop, as SES's receipt rule would store them in
//! S3: one file per message under the state folder (`inbound/{id}.eml`), or
//! in memory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::ReceivedMessageId;
use crate::ports::{MailError, ReceivedMail};

pub struct LocalReceivedMail {
    dir: Option<PathBuf>,
    memory: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl LocalReceivedMail {
    pub fn open(dir: Option<&Path>) -> std::io::Result<Self> {
        let dir = dir.map(|d| d.join("inbound"));
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir)?;
        }
        Ok(LocalReceivedMail { dir, memory: Mutex::new(BTreeMap::new()) })
    }

    /// Stores a received message, as SES's S3 action would.
    pub fn store(&self, message_id: &ReceivedMessageId, raw: &[u8]) -> Result<(), MailError> {
        match &self.dir {
            Some(dir) => std::fs::write(dir.join(format!("{message_id}.eml")), raw)
                .map_err(|e| MailError::Unavailable(e.into())),
            None => {
                self.memory
                    .lock()
                    .map_err(|_| MailError::Unavailable("received mail store poisoned".into()))?
                    .insert(message_id.to_string(), raw.to_vec());
                Ok(())
            }
        }
    }
}

#[async_trait]
impl ReceivedMail for LocalReceivedMail {
    async fn raw_message(&self, message_id: &ReceivedMessageId) -> Result<Option<Vec<u8>>, MailError> {
        match &self.dir {
            Some(dir) => match std::fs::read(dir.join(format!("{message_id}.eml"))) {
                Ok(raw) => Ok(Some(raw)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(MailError::Unavailable(e.into())),
            },
            None => Ok(self
                .memory
                .lock()
                .map_err(|_| MailError::Unavailable("received mail store poisoned".into()))?
                .get(message_id.as_str())
                .cloned()),
        }
    }
}
