//! Forwarding a received message to the customer of each tenant it was
//! addressed to. SES's receipt rule stores the message and then hands us
//! its id and recipients ([`InboundNotice`]); a recipient that is no
//! tenant's address is dropped and counted, never forwarded. SES invokes at
//! least once: each (message, tenant) is forwarded once, through the same
//! mail reservation the workflow's mails use.

use serde::{Deserialize, Serialize};

use super::address::TenantMailAddresses;
use super::rewrite::{for_forwarding, is_from};
use crate::clock::Clock;
use crate::domain::{EmailAddress, ReceivedMessageId, TenantId, TenantStatus};
use crate::ports::{MailError, MailMarked, MailSlot, RawMailer, ReceivedMail, StoreError, TenantStore};

/// A reservation older than this is taken over (its holder died mid-send).
const STALE_RESERVATION_SECONDS: i64 = 300;

/// What SES tells the function of one received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundNotice {
    pub message_id: ReceivedMessageId,
    pub recipients: Vec<String>,
    pub scan: Scan,
}

/// What SES's scan of a message found. Mail it found to carry a virus or to
/// be spam is dropped: forwarding it would spend the sender's reputation
/// (and SES's receipt rule scans only when the rule asks it to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scan {
    NotFlagged,
    Spam,
    Virus,
}

#[derive(Deserialize)]
struct SesEvent {
    #[serde(rename = "Records")]
    records: Vec<SesRecord>,
}

#[derive(Deserialize)]
struct SesRecord {
    ses: SesPayload,
}

#[derive(Deserialize)]
struct SesPayload {
    mail: SesMail,
    receipt: SesReceipt,
}

#[derive(Deserialize)]
struct SesMail {
    #[serde(rename = "messageId")]
    message_id: ReceivedMessageId,
}

#[derive(Deserialize)]
struct SesReceipt {
    recipients: Vec<String>,
    #[serde(rename = "spamVerdict")]
    spam: Option<SesVerdict>,
    #[serde(rename = "virusVerdict")]
    virus: Option<SesVerdict>,
}

/// `PASS`, `FAIL`, `GRAY` or `PROCESSING_FAILED`: only `FAIL` is a finding.
#[derive(Deserialize)]
struct SesVerdict {
    status: String,
}

impl SesReceipt {
    fn scan(&self) -> Scan {
        let failed = |verdict: &Option<SesVerdict>| verdict.as_ref().is_some_and(|v| v.status == "FAIL");
        if failed(&self.virus) {
            Scan::Virus
        } else if failed(&self.spam) {
            Scan::Spam
        } else {
            Scan::NotFlagged
        }
    }
}

impl InboundNotice {
    /// The notices in an SES receipt event (its Lambda action's payload).
    pub fn from_ses_event(event: &serde_json::Value) -> Result<Vec<InboundNotice>, ForwardError> {
        let event = SesEvent::deserialize(event).map_err(|e| ForwardError::BadEvent(e.to_string()))?;
        Ok(event
            .records
            .into_iter()
            .map(|r| InboundNotice {
                scan: r.ses.receipt.scan(),
                message_id: r.ses.mail.message_id,
                recipients: r.ses.receipt.recipients,
            })
            .collect())
    }
}

/// What became of one recipient of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Delivery {
    Forwarded {
        recipient: String,
        tenant: TenantId,
        to: EmailAddress,
        message_id: String,
    },
    /// Forwarded by an earlier delivery of the same notice.
    AlreadyForwarded {
        recipient: String,
        tenant: TenantId,
    },
    Dropped {
        recipient: String,
        reason: String,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("not an SES receipt event: {0}")]
    BadEvent(String),
    #[error("message {0} is not stored where the receipt rule puts messages")]
    NotStored(ReceivedMessageId),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Mail(#[from] MailError),
    #[error("message {message_id} to {tenant} is being forwarded by another delivery")]
    Busy { message_id: ReceivedMessageId, tenant: TenantId },
}

impl ForwardError {
    /// The name Lambda reports as the error's type (and the log's
    /// `error_type`), in the steps' `Tenancy.` family.
    pub fn error_name(&self) -> &'static str {
        match self {
            ForwardError::BadEvent(_) => "Tenancy.BadEvent",
            ForwardError::NotStored(_) => "Tenancy.NotStored",
            ForwardError::Store(_) => "Tenancy.StoreUnavailable",
            ForwardError::Mail(MailError::Unavailable(_)) => "Tenancy.MailUnavailable",
            ForwardError::Mail(MailError::Rejected(_)) => "Tenancy.MailRejected",
            ForwardError::Busy { .. } => "Tenancy.ForwardBusy",
        }
    }
}

impl From<ForwardError> for lambda_runtime::Diagnostic {
    fn from(error: ForwardError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.error_name().to_owned(),
            error_message: crate::telemetry::error_chain(&error),
        }
    }
}

/// Serves SES receiving's Lambda action with `forwarder`. A failed event is
/// retried by Lambda's asynchronous invocation, then sent to the stack's
/// on-failure destination; the stored message outlives both.
pub async fn serve(forwarder: &Forwarder<'_>) -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(
        async |event: lambda_runtime::LambdaEvent<serde_json::Value>| match forwarder
            .forward_event(&event.payload)
            .await
        {
            Ok(deliveries) => Ok(serde_json::json!({ "deliveries": deliveries })),
            Err(error) => {
                let chain = crate::telemetry::error_chain(&error);
                tracing::warn!(error_type = error.error_name(), error = %chain, "forwarding failed");
                Err(lambda_runtime::Diagnostic::from(error))
            }
        },
    ))
    .await
}

/// The parts forwarding works through.
pub struct Forwarder<'a> {
    pub store: &'a dyn TenantStore,
    pub received: &'a dyn ReceivedMail,
    pub mailer: &'a dyn RawMailer,
    pub clock: &'a dyn Clock,
    pub addresses: &'a TenantMailAddresses,
    /// The verified address forwarded mail is sent from.
    pub sender: &'a EmailAddress,
}

impl Forwarder<'_> {
    /// SES receiving's Lambda action: every message an SES receipt event
    /// names, forwarded. An error is for SES's invocation to retry (the
    /// message stays stored); what can never be forwarded is dropped instead.
    pub async fn forward_event(&self, event: &serde_json::Value) -> Result<Vec<Delivery>, ForwardError> {
        let mut deliveries = Vec::new();
        for notice in InboundNotice::from_ses_event(event)? {
            deliveries.extend(self.forward(&notice).await?);
        }
        Ok(deliveries)
    }

    /// Forwards `notice`'s message to each of its recipients' customers.
    pub async fn forward(&self, notice: &InboundNotice) -> Result<Vec<Delivery>, ForwardError> {
        let mut raw: Option<Vec<u8>> = None;
        let mut deliveries = Vec::new();
        for recipient in &notice.recipients {
            let delivery = self.deliver(notice, recipient, &mut raw).await?;
            if let Delivery::Dropped { recipient, reason } = &delivery {
                // Counted: the stack's metric filter reads `dropped_mail`.
                tracing::warn!(dropped_mail = 1, message_id = %notice.message_id, recipient, reason, "mail dropped");
            }
            deliveries.push(delivery);
        }
        Ok(deliveries)
    }

    async fn deliver(
        &self,
        notice: &InboundNotice,
        recipient: &str,
        raw: &mut Option<Vec<u8>>,
    ) -> Result<Delivery, ForwardError> {
        let dropped = |reason: String| Ok(Delivery::Dropped { recipient: recipient.to_owned(), reason });
        match notice.scan {
            Scan::NotFlagged => {}
            Scan::Spam => return dropped("SES's scan found it to be spam".into()),
            Scan::Virus => return dropped("SES's scan found a virus in it".into()),
        }
        let Some(subdomain) = self.addresses.subdomain_of(recipient) else {
            return dropped("not a tenant's address".into());
        };
        let Some(tenant) = self.store.subdomain_holder(&subdomain).await? else {
            return dropped(format!("no tenant holds `{subdomain}`"));
        };
        let record = self.store.get_tenant(&tenant).await?;
        let Some(signup) =
            record.as_ref().filter(|r| r.status != TenantStatus::Failed).and_then(|r| r.signup.as_ref())
        else {
            return dropped(format!("tenant {tenant} has no customer to forward to"));
        };
        let Some(via) = self.addresses.address_for(&subdomain) else {
            return dropped(format!("`{subdomain}` is too long for a mail address"));
        };
        if raw.is_none() {
            let stored = self.received.raw_message(&notice.message_id).await?;
            *raw = Some(stored.ok_or_else(|| ForwardError::NotStored(notice.message_id.clone()))?);
        }
        let received = raw.as_deref().unwrap_or_default();
        if is_from(received, self.sender) {
            return dropped("sent by the forwarder itself (a loop)".into());
        }
        let message = match for_forwarding(received, self.sender, &via) {
            Ok(message) => message,
            // Never forwardable: trying again changes nothing.
            Err(error) => return dropped(error.to_string()),
        };
        let key = format!("forward:{}", notice.message_id);
        let owner = format!("forward-{}", notice.message_id);
        let now = self.clock.now_unix();
        match self.store.reserve_mail(&tenant, &key, &owner, now, STALE_RESERVATION_SECONDS).await? {
            MailSlot::Sent { .. } => {
                return Ok(Delivery::AlreadyForwarded { recipient: recipient.to_owned(), tenant });
            }
            MailSlot::HeldBy { .. } => {
                return Err(ForwardError::Busy { message_id: notice.message_id.clone(), tenant });
            }
            MailSlot::Reserved => {}
        }
        let to = signup.admin_email.clone();
        let message_id = self.mailer.send_raw(&to, &message).await?;
        let marked = self.store.mail_sent(&tenant, &key, &owner, &message_id, self.clock.now_unix()).await?;
        if let MailMarked::SentBefore { message_id: first } = marked {
            tracing::warn!(tenant_id = %tenant, first, again = %message_id, "a received message was forwarded twice");
        }
        Ok(Delivery::Forwarded { recipient: recipient.to_owned(), tenant, to, message_id })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::adapters::local::{LocalOutbox, LocalReceivedMail, LocalTenantStore};
    use crate::clock::FixedClock;
    use crate::domain::{Failure, Subdomain, TenantRecord};

    const NOW: i64 = 1_763_800_000;
    const MESSAGE: &[u8] =
        b"From: Zoe <zoe@cafe.example>\r\nTo: acme_app@mail.example.com\r\nSubject: Order\r\n\r\nHello\r\n";

    struct World {
        store: LocalTenantStore,
        received: LocalReceivedMail,
        outbox: LocalOutbox,
        clock: FixedClock,
        addresses: TenantMailAddresses,
        sender: EmailAddress,
    }

    impl World {
        async fn new() -> World {
            let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
            let store = LocalTenantStore::open(None, clock.clone()).unwrap();
            let signup: crate::domain::CheckoutSignup = serde_json::from_value(json!({
                "checkout_session": "cs_test_acme", "customer": "cus_Acme", "subscription": "sub_Acme",
                "admin_email": "dana@acme.example", "subdomain": "acme",
                "plan": {"key": "pro", "name": "Pro", "tier": 2, "limits": {"activities": 15}},
                "billing": "monthly", "organization": "Acme", "amount_total": 5000, "currency": "cad"
            }))
            .unwrap();
            let record = TenantRecord::provisioning(signup, "$argon2id$x".into(), NOW);
            store.record_signup(&Subdomain::parse("acme").unwrap(), &record, None, NOW).await.unwrap();
            let failure = Failure { error: "x".into(), cause: "y".into(), at: NOW };
            let failed = TenantRecord::rejected(
                TenantId::parse("tnt_00000000000000000009").unwrap(),
                None,
                None,
                failure,
            );
            store.record_signup(&Subdomain::parse("broken").unwrap(), &failed, None, NOW).await.unwrap();
            World {
                store,
                received: LocalReceivedMail::open(None).unwrap(),
                outbox: LocalOutbox::open(None, clock).unwrap(),
                clock: FixedClock(NOW),
                addresses: TenantMailAddresses::new("{subdomain}_app", "mail.example.com").unwrap(),
                sender: EmailAddress::parse("forwarder@mail.example.com").unwrap(),
            }
        }

        fn forwarder(&self) -> Forwarder<'_> {
            Forwarder {
                store: &self.store,
                received: &self.received,
                mailer: &self.outbox,
                clock: &self.clock,
                addresses: &self.addresses,
                sender: &self.sender,
            }
        }
    }

    fn id(raw: &str) -> ReceivedMessageId {
        ReceivedMessageId::parse(raw).unwrap()
    }

    fn notice_of(message_id: &str, recipients: &[&str]) -> InboundNotice {
        InboundNotice {
            message_id: id(message_id),
            recipients: recipients.iter().map(|r| (*r).to_owned()).collect(),
            scan: Scan::NotFlagged,
        }
    }

    fn notice(recipients: &[&str]) -> InboundNotice {
        notice_of("m0001", recipients)
    }

    #[tokio::test]
    async fn a_message_to_a_tenants_address_reaches_its_customer_once_however_often_ses_says_so() {
        let world = World::new().await;
        world.received.store(&id("m0001"), MESSAGE).unwrap();
        let first = world.forwarder().forward(&notice(&["Acme_App@mail.example.com"])).await.unwrap();
        let Delivery::Forwarded { to, .. } = &first[0] else { panic!("{first:?}") };
        assert_eq!(to.as_str(), "dana@acme.example");
        let again = world.forwarder().forward(&notice(&["acme_app@mail.example.com"])).await.unwrap();
        assert!(matches!(again[0], Delivery::AlreadyForwarded { .. }), "{again:?}");
        let sent = world.outbox.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].mail.to.as_str(), "dana@acme.example");
        assert!(
            sent[0].mail.text.starts_with("From: Zoe via acme_app <forwarder@mail.example.com>"),
            "{}",
            sent[0].mail.text
        );
        assert_eq!(sent[0].mail.subject, "Order");
    }

    #[tokio::test]
    async fn mail_to_an_address_no_tenant_has_is_dropped_never_forwarded() {
        let world = World::new().await;
        world.received.store(&id("m0001"), MESSAGE).unwrap();
        let recipients = [
            "acme_app@elsewhere.example",
            "nobody_app@mail.example.com",
            "broken_app@mail.example.com",
            "postmaster@mail.example.com",
            "acme_app@mail.example.com",
        ];
        let deliveries = world.forwarder().forward(&notice(&recipients)).await.unwrap();
        let dropped: Vec<&str> = deliveries
            .iter()
            .filter_map(|d| match d {
                Delivery::Dropped { recipient, .. } => Some(recipient.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(dropped, &recipients[..4]);
        assert_eq!(world.outbox.sent().len(), 1, "only Acme's customer gets it");

        // A message not where the receipt rule puts messages is an error to retry, not a drop.
        let missing = notice_of("m0002", &["acme_app@mail.example.com"]);
        assert!(matches!(world.forwarder().forward(&missing).await, Err(ForwardError::NotStored(_))));
        // A forwarded copy that came back is not forwarded again.
        let forwarded = world.outbox.sent()[0].mail.text.clone() + "\r\n\r\nHello\r\n";
        world.received.store(&id("m0004"), forwarded.as_bytes()).unwrap();
        let back = notice_of("m0004", &["acme_app@mail.example.com"]);
        assert!(
            matches!(&world.forwarder().forward(&back).await.unwrap()[0], Delivery::Dropped { reason, .. } if reason.contains("loop"))
        );
        // Unreadable mail is dropped: retrying cannot help.
        world.received.store(&id("m0003"), b"no header at all").unwrap();
        let junk = notice_of("m0003", &["acme_app@mail.example.com"]);
        assert!(matches!(world.forwarder().forward(&junk).await.unwrap()[0], Delivery::Dropped { .. }));
    }

    #[tokio::test]
    async fn a_released_name_takes_its_address_with_it() {
        let world = World::new().await;
        world.received.store(&id("m0001"), MESSAGE).unwrap();
        let acme = Subdomain::parse("acme").unwrap();
        let tenant = world.store.subdomain_holder(&acme).await.unwrap().unwrap();
        world.store.release_subdomain(&acme, &tenant).await.unwrap();
        let deliveries = world.forwarder().forward(&notice(&["acme_app@mail.example.com"])).await.unwrap();
        assert!(
            matches!(&deliveries[0], Delivery::Dropped { reason, .. } if reason.contains("no tenant holds"))
        );
    }

    #[test]
    fn each_failure_has_its_own_name_for_lambda() {
        let busy = ForwardError::Busy {
            message_id: id("m0001"),
            tenant: TenantId::parse("tnt_00000000000000000009").unwrap(),
        };
        assert_eq!(busy.error_name(), "Tenancy.ForwardBusy");
        assert_eq!(ForwardError::NotStored(id("m0001")).error_name(), "Tenancy.NotStored");
        let diagnostic =
            lambda_runtime::Diagnostic::from(ForwardError::Mail(MailError::Rejected("no".into())));
        assert_eq!(diagnostic.error_type, "Tenancy.MailRejected");
        assert_eq!(diagnostic.error_message, "mail refused: no");
    }

    #[test]
    fn an_ses_receipt_event_names_the_message_and_its_recipients() {
        let event = json!({"Records": [{"eventSource": "aws:ses", "eventVersion": "1.0", "ses": {
            "mail": {"timestamp": "2026-11-27T10:00:00.000Z", "source": "zoe@cafe.example",
                     "messageId": "o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1", "destination": ["acme_app@mail.example.com"],
                     "headersTruncated": false, "headers": [], "commonHeaders": {}},
            "receipt": {"timestamp": "2026-11-27T10:00:00.000Z", "processingTimeMillis": 222,
                        "recipients": ["acme_app@mail.example.com"], "spamVerdict": {"status": "PASS"},
                        "virusVerdict": {"status": "PASS"}, "spfVerdict": {"status": "PASS"},
                        "dkimVerdict": {"status": "PASS"}, "dmarcVerdict": {"status": "PASS"},
                        "action": {"type": "Lambda", "functionArn": "arn:aws:lambda:us-east-1:1:function:f", "invocationType": "Event"}}}}]});
        let notices = InboundNotice::from_ses_event(&event).unwrap();
        assert_eq!(
            notices,
            [InboundNotice {
                message_id: id("o3vrnil0e2ic28trm7dfhrc2v0cnbeccl4nbp0g1"),
                recipients: vec!["acme_app@mail.example.com".into()],
                scan: Scan::NotFlagged,
            }]
        );
        // What SES's scan found travels with the notice; a virus outranks spam.
        let mut flagged = event.clone();
        flagged["Records"][0]["ses"]["receipt"]["spamVerdict"]["status"] = json!("FAIL");
        assert_eq!(InboundNotice::from_ses_event(&flagged).unwrap()[0].scan, Scan::Spam);
        flagged["Records"][0]["ses"]["receipt"]["virusVerdict"]["status"] = json!("FAIL");
        assert_eq!(InboundNotice::from_ses_event(&flagged).unwrap()[0].scan, Scan::Virus);
        // A message id that is no safe object key is refused at the edge.
        let mut bad = event.clone();
        bad["Records"][0]["ses"]["mail"]["messageId"] = json!("../other/key");
        assert!(InboundNotice::from_ses_event(&bad).is_err());
        assert!(InboundNotice::from_ses_event(&json!({"Records": [{"ses": {}}]})).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

        /// SES delivers a notice up to four times while a third of the
        /// table's, the store's and the mailer's calls fail (before their
        /// effect, after it, or timing out either way), each delivery
        /// retried until it succeeds: the customer gets the message, and a
        /// second copy only where a fault after a send's effect explains it.
        #[test]
        fn under_faults_and_duplicates_a_message_is_forwarded_once_unless_a_fault_explains_another(
            seed in proptest::prelude::any::<u64>(),
            deliveries in 1usize..5,
            store_faults in proptest::prelude::any::<bool>(),
        ) {
            use crate::adapters::faults::{FaultPlan, wrap};
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async {
                let world = World::new().await;
                world.received.store(&id("m0001"), MESSAGE).unwrap();
                let plan = Arc::new(FaultPlan::new(0.3, seed).unwrap().with_timeout_delay(std::time::Duration::ZERO));
                let clock: Arc<dyn Clock> = Arc::new(FixedClock(NOW));
                let store = LocalTenantStore::open(None, clock.clone()).unwrap();
                // The same tenant, in a store the faults go through.
                let acme = Subdomain::parse("acme").unwrap();
                let tenant = world.store.subdomain_holder(&acme).await.unwrap().unwrap();
                let record = world.store.get_tenant(&tenant).await.unwrap().unwrap();
                store.record_signup(&acme, &record, None, NOW).await.unwrap();

                // With the table faultless, only a send that took effect but
                // reported failure can explain a second copy: the bound is tight.
                let store_plan = store_faults.then_some(&plan);
                let store: Arc<dyn TenantStore> = wrap::<dyn TenantStore>(Arc::new(store), store_plan);
                let outbox = Arc::new(LocalOutbox::open(None, clock).unwrap());
                let mailer = wrap::<dyn RawMailer>(outbox.clone(), Some(&plan));
                let received: Arc<dyn ReceivedMail> = Arc::new(world.received);
                let received = wrap::<dyn ReceivedMail>(received, Some(&plan));
                let forwarder = Forwarder {
                    store: store.as_ref(),
                    received: received.as_ref(),
                    mailer: mailer.as_ref(),
                    clock: &world.clock,
                    addresses: &world.addresses,
                    sender: &world.sender,
                };
                for _ in 0..deliveries {
                    let mut attempts = 0;
                    while forwarder.forward(&notice(&["acme_app@mail.example.com"])).await.is_err() {
                        attempts += 1;
                        assert!(attempts < 500, "a delivery kept failing");
                    }
                }
                let report = plan.report();
                let explained = report.ports.get("raw_mailer").map_or(0, |c| c.after + c.timeout_with_effect)
                    + report.ports.get("tenant_store").map_or(0, |c| c.injected());
                let sent = outbox.sent().len() as u64;
                assert!(sent >= 1, "the customer got it");
                assert!(sent - 1 <= explained, "{sent} copies, {explained} faults to explain extras");
            });
        }
    }
}
