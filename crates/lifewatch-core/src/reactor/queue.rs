//! The delivery queue: events wait here, in the order the reactor's turns produced them,
//! until the consumer drains them. One notification per batch, however many events and
//! however slow the consumer; nothing is ever dropped.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::event::{Event, Events};

pub type Notify = Box<dyn Fn() + Send + Sync>;

pub struct Queue {
    events: Mutex<Vec<Event>>,
    /// A notification went out and the consumer has not drained since.
    pending: AtomicBool,
    notify: Notify,
    /// Batches handed over: notifications raised plus deliveries the consumer took itself.
    deliveries: AtomicU64,
}

impl Queue {
    pub fn new(notify: Notify) -> Queue {
        Queue {
            events: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            notify,
            deliveries: AtomicU64::new(0),
        }
    }

    fn events(&self) -> std::sync::MutexGuard<'_, Vec<Event>> {
        self.events.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Appends a turn's events and notifies the consumer (once until it drains).
    pub fn publish(&self, events: Events) {
        if events.is_empty() {
            return;
        }
        self.events().extend(events);
        self.ring();
    }

    /// Appends a reactor turn's events without notifying the consumer, while the consumer keeps
    /// draining (see `notify_held`).
    pub fn append(&self, events: Events) {
        self.events().extend(events);
    }

    /// Notifies the consumer of events appended without a notification, if any are left.
    pub fn notify_held(&self) {
        if !self.is_empty() {
            self.ring();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.events().is_empty()
    }

    /// Takes every queued event. Clears the pending flag first, so an event queued while
    /// draining raises a fresh notification instead of waiting for the next one.
    pub fn drain(&self) -> Vec<Event> {
        self.pending.store(false, Ordering::SeqCst);
        std::mem::take(&mut *self.events())
    }

    /// Puts events a consumer drained but could not deliver back at the head of the queue.
    pub fn requeue(&self, mut events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        {
            let mut queue = self.events();
            events.append(&mut queue);
            *queue = events;
        }
        self.ring();
    }

    /// A delivery the consumer made itself (one N-API call in the binding).
    pub fn count_delivery(&self) {
        self.deliveries.fetch_add(1, Ordering::Relaxed);
    }

    pub fn deliveries(&self) -> u64 {
        self.deliveries.load(Ordering::Relaxed)
    }

    pub fn clear(&self) {
        self.events().clear();
    }

    fn ring(&self) {
        if !self.pending.swap(true, Ordering::SeqCst) {
            self.deliveries.fetch_add(1, Ordering::Relaxed);
            (self.notify)();
        }
    }
}
