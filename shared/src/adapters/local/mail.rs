use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::persisted::Persisted;
use crate::clock::Clock;
use crate::ports::{Mail, MailError, Mailer};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentMail {
    pub message_id: String,
    pub sent_at: i64,
    #[serde(flatten)]
    pub mail: Mail,
}

/// An outbox on a laptop (like a mail catcher): every mail is kept, in order.
pub struct LocalOutbox {
    sent: Persisted<Vec<SentMail>>,
    clock: Arc<dyn Clock>,
}

impl LocalOutbox {
    pub fn open(dir: Option<&Path>, clock: Arc<dyn Clock>) -> std::io::Result<Self> {
        Ok(LocalOutbox { sent: Persisted::open(dir, "emails.json")?, clock })
    }

    pub fn sent(&self) -> Vec<SentMail> {
        self.sent.read(Vec::clone)
    }
}

#[async_trait]
impl Mailer for LocalOutbox {
    async fn send(&self, mail: &Mail) -> Result<String, MailError> {
        let now = self.clock.now_unix();
        self.sent
            .update(|sent| {
                let message_id = format!("local-{:06}", sent.len() + 1);
                sent.push(SentMail { message_id: message_id.clone(), sent_at: now, mail: mail.clone() });
                message_id
            })
            .map_err(|e| MailError::Unavailable(e.into()))
    }
}
