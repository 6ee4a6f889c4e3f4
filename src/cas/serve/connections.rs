//! The connections `scone cas serve` keeps open, at most a fixed number. A new
//! connection past the cap closes the oldest one that is not in the middle of a
//! request (still in its TLS handshake, or idle between requests); when every
//! connection is in a request, the new one is refused at once. Idle or silent
//! connections, however many, thus cannot keep a real client out: the newest
//! connection always gets in while an older one is idle.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::Notify;

/// The open connections, in the order they were admitted.
#[derive(Debug)]
pub struct Connections {
    max: usize,
    table: Mutex<Table>,
    evicted: AtomicU64,
    refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    open: BTreeMap<u64, Entry>,
}

#[derive(Debug)]
struct Entry {
    requests: Arc<AtomicUsize>,
    evict: Arc<Notify>,
}

/// What [`Connections::admit`] decided.
#[derive(Debug)]
pub enum Admission {
    /// Admitted; `evicted` tells whether the oldest idle connection was closed for it.
    Admitted {
        /// The connection's place in the table.
        slot: Slot,
        /// Whether an older idle connection was closed to make room.
        evicted: bool,
    },
    /// Every connection is in a request: the new one is to be closed at once.
    Refused,
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    requests: Arc<AtomicUsize>,
    evict: Arc<Notify>,
    connections: Arc<Connections>,
}

impl Slot {
    /// The count of requests in progress on this connection, which [`Request`]
    /// guards keep.
    pub fn requests(&self) -> Arc<AtomicUsize> {
        self.requests.clone()
    }

    /// Completes when the connection is closed to make room for a newer one.
    pub async fn evicted(&self) {
        self.evict.notified().await;
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.lock().open.remove(&self.id);
    }
}

/// Marks a connection as in a request while it lives (from the request's headers
/// to the last byte of its answer).
#[derive(Debug)]
pub struct Request(Arc<AtomicUsize>);

impl Request {
    /// Starts a request on the connection whose count is `requests`.
    pub fn start(requests: &Arc<AtomicUsize>) -> Request {
        requests.fetch_add(1, Ordering::AcqRel);
        Request(requests.clone())
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Connections {
    /// A table of at most `max` connections (at least one).
    pub fn new(max: usize) -> Arc<Connections> {
        Arc::new(Connections {
            max: max.max(1),
            table: Mutex::new(Table::default()),
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a new connection, closing the oldest idle one when the table is full.
    pub fn admit(self: &Arc<Self>) -> Admission {
        let mut table = self.lock();
        let mut evicted = false;
        if table.open.len() >= self.max {
            let oldest_idle = table
                .open
                .iter()
                .find(|(_, entry)| entry.requests.load(Ordering::Acquire) == 0)
                .map(|(&id, _)| id);
            let Some(id) = oldest_idle.and_then(|id| table.open.remove(&id)) else {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Admission::Refused;
            };
            id.evict.notify_one();
            self.evicted.fetch_add(1, Ordering::Relaxed);
            evicted = true;
        }
        let id = table.next;
        table.next += 1;
        let (requests, evict) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        table.open.insert(
            id,
            Entry {
                requests: requests.clone(),
                evict: evict.clone(),
            },
        );
        Admission::Admitted {
            slot: Slot {
                id,
                requests,
                evict,
                connections: self.clone(),
            },
            evicted,
        }
    }

    /// How many connections are open.
    pub fn open(&self) -> usize {
        self.lock().open.len()
    }

    /// How many idle connections were closed to admit newer ones so far.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// How many connections were refused (every one was in a request) so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(admission: Admission) -> (Slot, bool) {
        match admission {
            Admission::Admitted { slot, evicted } => (slot, evicted),
            Admission::Refused => panic!("refused"),
        }
    }

    #[tokio::test]
    async fn the_oldest_idle_connection_makes_room_and_busy_ones_stay() {
        let connections = Connections::new(3);
        let (a, _) = slot(connections.admit());
        let (b, _) = slot(connections.admit());
        let (c, evicted) = slot(connections.admit());
        assert!(!evicted);
        assert_eq!(connections.open(), 3);

        // `a` is in a request: the oldest idle one, `b`, is closed for `d`.
        let in_request = Request::start(&a.requests());
        let (d, evicted) = slot(connections.admit());
        assert!(evicted);
        b.evicted().await; // notified
        assert_eq!(connections.open(), 3);
        drop(b); // its task ends: nothing else leaves the table
        assert_eq!(connections.open(), 3);

        // Every connection in a request: the next one is refused.
        let _c_busy = Request::start(&c.requests());
        let _d_busy = Request::start(&d.requests());
        assert!(matches!(connections.admit(), Admission::Refused));
        assert_eq!((connections.evicted(), connections.refused()), (1, 1));

        // `a`'s request ends: `a` is the oldest idle and makes room.
        drop(in_request);
        let (_e, evicted) = slot(connections.admit());
        assert!(evicted);
        a.evicted().await;
        drop(a);
        assert_eq!(connections.open(), 3);
    }
}
