use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::ports::{EventQueue, QueueError, QueuedEvent};

/// A first-in, first-out queue in memory, standing in for SQS.
#[derive(Debug, Default)]
pub struct LocalEventQueue {
    messages: Mutex<VecDeque<QueuedEvent>>,
    arrived: Notify,
}

impl LocalEventQueue {
    fn messages(&self) -> MutexGuard<'_, VecDeque<QueuedEvent>> {
        // A panic while holding the lock cannot leave a VecDeque half-updated.
        self.messages.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The messages waiting, oldest first.
    pub fn snapshot(&self) -> Vec<QueuedEvent> {
        self.messages().iter().cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.messages().len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages().is_empty()
    }

    /// Takes the oldest message, waiting for one if the queue is empty.
    pub async fn next(&self) -> QueuedEvent {
        loop {
            let arrived = self.arrived.notified();
            if let Some(event) = self.messages().pop_front() {
                return event;
            }
            arrived.await;
        }
    }
}

#[async_trait]
impl EventQueue for LocalEventQueue {
    async fn enqueue(&self, event: &QueuedEvent) -> Result<(), QueueError> {
        self.messages().push_back(event.clone());
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
    }
}
