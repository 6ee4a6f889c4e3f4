//! The remote tier's own threads: requests wait on the network, not on a core, so
//! the tier runs them on a pool sized for latency ([`IoPool`]), and whoever needs
//! a result waits on a [`Pending`] (with a deadline) instead of holding one of the
//! build's workers for the whole round trip.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Instant;

/// A result that another thread will set once.
pub struct Pending<T> {
    slot: Arc<(Mutex<Option<T>>, Condvar)>,
}

impl<T> Clone for Pending<T> {
    fn clone(&self) -> Self {
        Pending {
            slot: Arc::clone(&self.slot),
        }
    }
}

impl<T: Clone> Default for Pending<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Clone> Pending<T> {
    pub fn new() -> Pending<T> {
        Pending {
            slot: Arc::new((Mutex::new(None), Condvar::new())),
        }
    }

    /// Sets the result (the first one wins) and wakes whoever waits.
    pub fn set(&self, value: T) {
        let (lock, cv) = &*self.slot;
        let mut slot = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(value);
        }
        cv.notify_all();
    }

    /// The result if it is there.
    pub fn get(&self) -> Option<T> {
        let (lock, _) = &*self.slot;
        lock.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits for the result until `deadline`; `None` if it is not there by then.
    pub fn wait_until(&self, deadline: Instant) -> Option<T> {
        let (lock, cv) = &*self.slot;
        let mut slot = lock.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(value) = slot.as_ref() {
                return Some(value.clone());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            slot = cv
                .wait_timeout(slot, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

type Job = Box<dyn FnOnce() + Send>;

struct Queue {
    jobs: VecDeque<Job>,
    closed: bool,
    /// Jobs queued or running.
    busy: usize,
}

/// A fixed set of threads running queued jobs in order of submission.
pub struct IoPool {
    shared: Arc<Shared>,
}

struct Shared {
    queue: Mutex<Queue>,
    /// A job was queued (one idle thread is woken per job).
    work: Condvar,
    /// Nothing is queued or running any more.
    idle: Condvar,
}

impl IoPool {
    /// Starts `threads` threads named `scone-{name}-N` (fewer if the system refuses
    /// some; with none at all, jobs run on the caller's thread).
    pub fn new(name: &str, threads: usize) -> IoPool {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                jobs: VecDeque::new(),
                closed: false,
                busy: 0,
            }),
            work: Condvar::new(),
            idle: Condvar::new(),
        });
        let mut started = 0;
        for i in 0..threads {
            let shared = Arc::clone(&shared);
            let spawned = std::thread::Builder::new()
                .name(format!("scone-{name}-{i}"))
                .spawn(move || worker(&shared));
            if spawned.is_ok() {
                started += 1;
            }
        }
        if started == 0 {
            shared
                .queue
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .closed = true;
        }
        IoPool { shared }
    }

    /// Queues `job`.
    pub fn spawn(&self, job: impl FnOnce() + Send + 'static) {
        let mut queue = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if queue.closed {
            drop(queue);
            job();
            return;
        }
        queue.busy += 1;
        queue.jobs.push_back(Box::new(job));
        self.shared.work.notify_one();
    }

    /// Runs `f` on the pool; its result arrives in the returned [`Pending`].
    pub fn run<T: Clone + Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Pending<T> {
        let pending = Pending::new();
        let out = pending.clone();
        self.spawn(move || out.set(f()));
        pending
    }

    /// Waits until every queued job has run, or `deadline`; whether all did.
    pub fn wait_idle(&self, deadline: Instant) -> bool {
        let mut queue = self
            .shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while queue.busy > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queue = self
                .shared
                .idle
                .wait_timeout(queue, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        true
    }
}

impl Drop for IoPool {
    fn drop(&mut self) {
        self.shared
            .queue
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.shared.work.notify_all();
    }
}

fn worker(shared: &Shared) {
    loop {
        let job = {
            let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                if let Some(job) = queue.jobs.pop_front() {
                    break job;
                }
                if queue.closed {
                    return;
                }
                queue = shared
                    .work
                    .wait(queue)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        job();
        let mut queue = shared.queue.lock().unwrap_or_else(PoisonError::into_inner);
        queue.busy -= 1;
        if queue.busy == 0 {
            shared.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn jobs_run_in_parallel_and_results_arrive() {
        let pool = IoPool::new("test", 8);
        // Eight jobs that each wait for all the others: only threads running at the
        // same time can finish them.
        let gate = Arc::new(std::sync::Barrier::new(8));
        let results: Vec<Pending<usize>> = (0..8)
            .map(|i| {
                let gate = Arc::clone(&gate);
                pool.run(move || {
                    gate.wait();
                    i * 2
                })
            })
            .collect();
        let far = Instant::now() + Duration::from_secs(60);
        let got: Vec<Option<usize>> = results.iter().map(|p| p.wait_until(far)).collect();
        assert_eq!(got, (0..8).map(|i| Some(i * 2)).collect::<Vec<_>>());
        assert!(pool.wait_idle(far));
    }

    #[test]
    fn a_wait_ends_at_its_deadline_and_the_first_value_wins() {
        let pending: Pending<u8> = Pending::new();
        assert_eq!(pending.wait_until(Instant::now()), None);
        pending.set(1);
        pending.set(2);
        assert_eq!(pending.get(), Some(1));
        assert_eq!(pending.wait_until(Instant::now()), Some(1));
    }
}
