use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::ports::queue::sqs_refuses;
use crate::ports::{EventQueue, QueueError, QueuedEvent};

/// A first-in, first-out queue in memory, standing in for SQS.
#[derive(Debug, Default)]
pub struct LocalEventQueue {
    messages: Mutex<Messages>,
    arrived: Notify,
}

#[derive(Debug, Default)]
struct Messages {
    waiting: VecDeque<QueuedEvent>,
    /// Taken by a consumer and not yet [`LocalEventQueue::done`] (SQS's
    /// in-flight messages).
    in_flight: usize,
}

impl LocalEventQueue {
    fn messages(&self) -> MutexGuard<'_, Messages> {
        // A panic while holding the lock cannot leave the queue half-updated.
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The messages waiting, oldest first.
    pub fn snapshot(&self) -> Vec<QueuedEvent> {
        self.messages().waiting.iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.messages().waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages().waiting.is_empty()
    }

    /// Nothing waiting and nothing taken but unfinished: every message has
    /// been handled (read under one lock, so no message is ever between the
    /// two counts).
    pub fn is_idle(&self) -> bool {
        let messages = self.messages();
        messages.waiting.is_empty() && messages.in_flight == 0
    }

    /// Takes the oldest message, waiting for one if the queue is empty. The
    /// consumer calls [`Self::done`] once it has handled it.
    pub async fn next(&self) -> QueuedEvent {
        loop {
            let arrived = self.arrived.notified();
            {
                let mut messages = self.messages();
                if let Some(event) = messages.waiting.pop_front() {
                    messages.in_flight += 1;
                    return event;
                }
            }
            arrived.await;
        }
    }

    /// A message taken with [`Self::next`] is handled (or was put back).
    pub fn done(&self) {
        let mut messages = self.messages();
        messages.in_flight = messages.in_flight.saturating_sub(1);
    }
}

#[async_trait]
impl EventQueue for LocalEventQueue {
    async fn enqueue(&self, event: &QueuedEvent) -> Result<(), QueueError> {
        if let Some(reason) = sqs_refuses(&event.body) {
            return Err(QueueError::Refused(reason));
        }
        self.messages().waiting.push_back(event.clone());
        self.arrived.notify_one();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::stripe::{EventType, StripeEventId};

    fn event(n: u32) -> QueuedEvent {
        QueuedEvent {
            event_id: StripeEventId::parse(&format!("evt_{n}")).unwrap(),
            event_type: EventType::InvoicePaid,
            created: 1,
            body: format!("{{\"n\":{n}}}"),
        }
    }

    #[tokio::test]
    async fn delivers_in_order_and_wakes_a_waiting_consumer() {
        let queue = Arc::new(LocalEventQueue::default());
        let consumer = tokio::spawn({
            let queue = queue.clone();
            async move { (queue.next().await, queue.next().await) }
        });
        tokio::task::yield_now().await;
        queue.enqueue(&event(1)).await.unwrap();
        queue.enqueue(&event(2)).await.unwrap();
        let (first, second) = consumer.await.unwrap();
        assert_eq!((first, second), (event(1), event(2)));
        assert!(queue.is_empty());
        assert!(!queue.is_idle(), "two taken, not yet done");
        queue.done();
        queue.done();
        assert!(queue.is_idle());
    }
}
