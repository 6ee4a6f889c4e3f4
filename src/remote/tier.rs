//! [`Tier`]: a [`Backend`] behind the engine's remote-tier contract, built so that
//! filling a checkout from the remote never loses to building it.
//!
//! * **One request for the whole build.** [`Tier::begin`] asks, while the first
//!   steps start, for the build index of the plan ([`super::index`]): every entry
//!   of the last writing build of the same steps. A step whose fingerprint is in
//!   it needs no request of its own; once most of the first steps are found there,
//!   every pack the index names is downloaded at once ([`fetch::Downloads`]).
//!   Other steps ask for their entry by fingerprint, as before.
//! * **Many requests at a time.** Requests run on the tier's own pool, sized for
//!   latency, not cores ([`DOWNLOADERS`]); a step's blobs come in parallel, and a
//!   blob or pack many steps need is fetched once.
//! * **Never waiting longer than building.** A step waits for its remote result
//!   at most [`RemoteOptions::wait`], then builds locally; the download goes on and,
//!   if it arrives before the build ends ([`RemoteTier::finish`]), is stored (its
//!   blobs, and its action record unless the step made one).
//! * **Verified.** Every blob is checked against its sha256, blake3 and size before
//!   it enters the store; a mismatch is a miss with a warning, never a wrong result.
//! * **Writes** (only with `write`) overlap the build ([`upload::Writer`]): packs of
//!   small blobs, entries once their blobs are stored, the index at the end
//!   ([`Tier::complete`], after the build has reported its result).
//! * **Failures**: the first transport error (refused, timeout, 5xx) turns the tier
//!   off for the rest of the build, with one warning; the build goes on locally.
//!   A broken answer (a manifest that is not JSON, …) is a miss, the first named
//!   in one warning ([`shared::Shared::failed`]); a pack's problem is named once.

mod fetch;
mod shared;
mod upload;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use self::fetch::{adopt, Downloads, Problem};
use self::shared::{Failed, Shared};
use self::upload::Writer;
use super::index::Index;
use super::pool::{IoPool, Pending};
use super::{Backend, BlobRef, Entry, RemoteOptions};
use crate::engine::{ActionRecord, Lookup, RemoteTier, StepId, Store};

/// Threads for requests: enough to keep a distant remote busy (a round trip of
/// 50 ms and 64 requests at a time is ~1,300 requests a second).
pub const DOWNLOADERS: usize = 64;

/// How long the end of a build waits at least for results that came too late
/// for their steps (and at most a request's timeout).
const LATE_GRACE: Duration = Duration::from_secs(2);

/// Threads for uploads (their own: the end of a build does not wait for them).
const UPLOADERS: usize = 16;

/// Of the first lookups, how many must find their fingerprint in the build index
/// before all of its packs are fetched at once.
const PREFETCH_AFTER: usize = 4;

/// What the tier counted in one build.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TierStats {
    pub hits: u64,
    pub misses: u64,
    /// Steps not looked up: the remote was off by then (after a transport
    /// error), so they were not asked, and not missed either.
    pub unasked: u64,
    /// Hits that arrived after their step stopped waiting (stored, not used).
    pub late: u64,
    /// Steps found in the build index.
    pub indexed: u64,
    pub downloaded_bytes: u64,
    pub uploaded_entries: u64,
    pub uploaded_blobs: u64,
}

/// The build index as this build found it.
struct Found {
    entries: HashMap<String, Entry>,
    /// Every blob of every entry, for the prefetch.
    blobs: Vec<(String, BlobRef)>,
    asked: AtomicUsize,
    matched: AtomicUsize,
    prefetched: AtomicBool,
}

/// A result that came too late for its step: stored at the end if it comes.
struct Late {
    step: String,
    fingerprint: String,
    entry: LateEntry,
}

/// How far a late lookup had got.
enum LateEntry {
    /// Its entry was asked for.
    Asked(Pending<Result<Option<Vec<u8>>, Failed>>),
    /// Its entry is known; its blobs are on their way.
    Known(Box<Entry>),
}

/// See the module documentation.
pub struct Tier {
    shared: Arc<Shared>,
    write: bool,
    timeout: Duration,
    wait: Duration,
    pool: Arc<IoPool>,
    /// Made on first use, with the store's root.
    downloads: OnceLock<Arc<Downloads>>,
    writer: OnceLock<Option<Writer>>,
    index: Mutex<Option<Pending<Option<Arc<Found>>>>>,
    late: Mutex<Vec<Late>>,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("url", &self.shared.url)
            .field("write", &self.write)
            .finish()
    }
}

impl Tier {
    pub fn new(backend: Box<dyn Backend>, url: String, opts: &RemoteOptions) -> Tier {
        Tier {
            shared: Arc::new(Shared::new(backend, url)),
            write: opts.write,
            timeout: opts.timeout,
            wait: opts.wait,
            pool: Arc::new(IoPool::new("remote", DOWNLOADERS)),
            downloads: OnceLock::new(),
            writer: OnceLock::new(),
            index: Mutex::new(None),
            late: Mutex::default(),
        }
    }

    /// The URL, without credentials.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    /// Whether this build uploads what it makes.
    pub fn writes(&self) -> bool {
        self.write
    }

    pub fn stats(&self) -> TierStats {
        let s = &self.shared;
        TierStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            unasked: s.unasked.load(Ordering::Relaxed),
            late: s.late.load(Ordering::Relaxed),
            indexed: s.indexed.load(Ordering::Relaxed),
            downloaded_bytes: s.downloaded.load(Ordering::Relaxed),
            uploaded_entries: s.uploaded_entries.load(Ordering::Relaxed),
            uploaded_blobs: s.uploaded_blobs.load(Ordering::Relaxed),
        }
    }

    /// Starts fetching the build index of the plan `planned` (cacheable steps and
    /// the others alike: the plan's shape), for the store under `root`
    /// (`<target>/.scone`). Call before the build's steps start.
    pub fn begin(&self, planned: &[StepId], root: &Path) {
        self.downloads(root);
        let scope = super::index::scope(planned);
        let shared = Arc::clone(&self.shared);
        let pending = self.pool.run(move || {
            if shared.off.load(Ordering::SeqCst) {
                return None;
            }
            let bytes = match shared.backend.get_index(&scope) {
                Ok(Some(bytes)) => bytes,
                Ok(None) => return None,
                Err(e) => {
                    if let Some(w) = shared.failed(&Failed::from(e)) {
                        shared.later(w);
                    }
                    return None;
                }
            };
            let index = match Index::parse(&bytes, &scope) {
                Ok(index) => index,
                Err(problem) => {
                    if let Some(w) = shared.once(format!(
                        "remote cache {}: the build index is not usable ({problem}); looking steps up one by one",
                        shared.url
                    )) {
                        shared.later(w);
                    }
                    return None;
                }
            };
            let mut blobs = Vec::new();
            let mut entries = HashMap::with_capacity(index.entries.len());
            for entry in index.entries {
                blobs.extend(entry.blobs.iter().map(|(k, v)| (k.clone(), v.clone())));
                entries.insert(entry.record.fingerprint.clone(), entry);
            }
            Some(Arc::new(Found {
                entries,
                blobs,
                asked: AtomicUsize::new(0),
                matched: AtomicUsize::new(0),
                prefetched: AtomicBool::new(false),
            }))
        });
        *self.index.lock().unwrap_or_else(PoisonError::into_inner) = Some(pending);
    }

    fn downloads(&self, root: &Path) -> &Arc<Downloads> {
        self.downloads.get_or_init(|| {
            Arc::new(Downloads::new(
                Arc::clone(&self.shared),
                Arc::clone(&self.pool),
                root.to_path_buf(),
            ))
        })
    }

    fn writer(&self) -> Option<&Writer> {
        self.writer
            .get_or_init(|| {
                let pool = Arc::new(IoPool::new("upload", UPLOADERS));
                Writer::start(Arc::clone(&self.shared), pool)
            })
            .as_ref()
    }

    /// Sends what is left to upload and, given the scope and every cacheable
    /// result of the build, its build index; waits at most a few request timeouts.
    /// Returns the warnings of the uploads. Call after the build's result is out.
    pub fn complete(
        &self,
        index: Option<(&[StepId], Vec<ActionRecord>)>,
        root: &Path,
    ) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.write && !self.shared.off.load(Ordering::SeqCst) {
            if let Some(writer) = self.writer() {
                let index = index.map(|(planned, records)| (super::index::scope(planned), records));
                let limit = self.timeout * 4;
                if !writer.complete(index, root, Instant::now() + limit) {
                    self.shared.off.store(true, Ordering::SeqCst);
                    warnings.push(format!(
                        "remote cache {}: uploads did not finish within {} s; the rest are skipped",
                        self.shared.url,
                        limit.as_secs()
                    ));
                }
            }
        }
        let mut pending = std::mem::take(
            &mut *self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        pending.append(&mut warnings);
        pending
    }

    fn miss(&self) -> Lookup {
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss
    }

    /// A step not looked up, as the remote is off: a miss to the build,
    /// counted apart.
    fn unasked(&self) -> Lookup {
        self.shared.unasked.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss
    }

    /// The build index's entry for `fingerprint`, waiting for the index (until
    /// `deadline`) if it is on its way.
    fn indexed(&self, fingerprint: &str, deadline: Instant) -> Option<Entry> {
        let pending = self
            .index
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()?;
        let found = pending.wait_until(deadline)??;
        let entry = found.entries.get(fingerprint).cloned();
        let asked = found.asked.fetch_add(1, Ordering::Relaxed) + 1;
        let matched = found.matched.load(Ordering::Relaxed) + usize::from(entry.is_some());
        if entry.is_some() {
            found.matched.fetch_add(1, Ordering::Relaxed);
            self.shared.indexed.fetch_add(1, Ordering::Relaxed);
        }
        // Most of the first steps are there: so will the others be. Fetch it all.
        let sure = asked >= PREFETCH_AFTER.min(found.entries.len()) && 2 * matched > asked;
        if sure && !found.prefetched.swap(true, Ordering::SeqCst) {
            if let Some(downloads) = self.downloads.get() {
                downloads.prefetch(found.blobs.iter().map(|(k, v)| (k, v)));
            }
        }
        entry
    }

    /// The entry for `fingerprint`, asked by itself (until `deadline`).
    fn entry_alone(
        &self,
        step: &str,
        fingerprint: &str,
        deadline: Instant,
        warn: &mut dyn FnMut(String),
    ) -> Option<Entry> {
        if self.shared.off.load(Ordering::SeqCst) {
            return None;
        }
        let shared = Arc::clone(&self.shared);
        let fp = fingerprint.to_string();
        let pending = self
            .pool
            .run(move || shared.backend.get_entry(&fp).map_err(Failed::from));
        let Some(answer) = pending.wait_until(deadline) else {
            // Slow: the step builds locally; the result is kept if it comes.
            // An entry is a small answer: the next steps do not wait again.
            // (With `wait-ms = 0` no step waits anyway.)
            if !self.wait.is_zero() && !self.shared.stalled.swap(true, Ordering::SeqCst) {
                if let Some(w) = self.shared.once(format!(
                    "remote cache {}: no answer within {} ms; the next steps build without \
                     waiting for it (what it sends before the build ends is kept)",
                    self.shared.url,
                    self.wait.as_millis()
                )) {
                    warn(w);
                }
            }
            self.later(step, fingerprint, LateEntry::Asked(pending));
            return None;
        };
        let bytes = match answer {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return None,
            Err(failed) => {
                if let Some(w) = self.shared.failed(&failed) {
                    warn(w);
                }
                return None;
            }
        };
        match Entry::parse(&bytes, fingerprint) {
            Ok(entry) => Some(entry),
            Err(problem) => {
                self.unusable(step, &problem.to_string(), warn);
                None
            }
        }
    }

    fn later(&self, step: &str, fingerprint: &str, entry: LateEntry) {
        self.late
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Late {
                step: step.to_string(),
                fingerprint: fingerprint.to_string(),
                entry,
            });
    }

    /// Waits (until `deadline`) for a result that came too late for its step and
    /// stores it: its blobs, verified, and its action record unless the step made
    /// one. Whether it was stored.
    fn store_late(&self, late: Late, store: &Store, deadline: Instant) -> bool {
        let entry = match late.entry {
            LateEntry::Known(entry) => *entry,
            LateEntry::Asked(pending) => match pending.wait_until(deadline) {
                Some(Ok(Some(bytes))) => match Entry::parse(&bytes, &late.fingerprint) {
                    Ok(entry) => entry,
                    Err(_) => return false,
                },
                // A request that failed late fails like any other: one warning.
                Some(Err(failed)) => {
                    if let Some(w) = self.shared.failed(&failed) {
                        self.shared.later(w);
                    }
                    return false;
                }
                _ => return false,
            },
        };
        if entry.record.step != late.step {
            return false;
        }
        let downloads = self.downloads(store.root());
        let mut blobs = Vec::new();
        for blake3 in entry.record.blob_digests().collect::<BTreeSet<_>>() {
            if store.blob_intact(blake3) {
                continue;
            }
            let Some(blob) = entry.blobs.get(blake3.as_str()) else {
                return false;
            };
            blobs.push((blake3.clone(), downloads.request(blake3, blob)));
        }
        for (blake3, slot) in &blobs {
            downloads.hurry(slot);
            match slot.pending().wait_until(deadline) {
                Some(Ok(tmp)) if adopt(store, &tmp, blake3).is_ok() => {}
                _ => return false,
            }
        }
        let record = entry.record;
        if store.action_intact(&record) && store.load_action(&record.fingerprint).is_none() {
            let _ = store.save_action(&record);
        }
        true
    }

    fn unusable(&self, step: &str, problem: &str, warn: &mut dyn FnMut(String)) {
        if let Some(w) = self.shared.once(format!(
            "remote cache {}: the entry for {step} is not usable ({problem}); building it locally",
            self.shared.url
        )) {
            warn(w);
        }
    }
}

impl RemoteTier for Tier {
    fn fetch(
        &self,
        step: &str,
        fingerprint: &str,
        store: &Store,
        warn: &mut dyn FnMut(String),
    ) -> Lookup {
        if self.shared.off.load(Ordering::SeqCst) {
            return self.unasked();
        }
        // A stalled remote is not waited for: what has come is taken.
        let deadline = if self.shared.stalled.load(Ordering::SeqCst) {
            Instant::now()
        } else {
            Instant::now() + self.wait
        };
        let entry = match self.indexed(fingerprint, deadline) {
            Some(entry) => match entry.check(fingerprint) {
                Ok(()) => Some(entry),
                Err(problem) => {
                    self.unusable(step, &problem.to_string(), warn);
                    None
                }
            },
            // The build index failed with a transport error meanwhile.
            None if self.shared.off.load(Ordering::SeqCst) => return self.unasked(),
            None => self.entry_alone(step, fingerprint, deadline, warn),
        };
        let Some(entry) = entry else {
            return self.miss();
        };
        if entry.record.step != step {
            self.unusable(step, &format!("it is for step {}", entry.record.step), warn);
            return self.miss();
        }
        let downloads = self.downloads(store.root());
        let mut blobs = Vec::new();
        for blake3 in entry.record.blob_digests().collect::<BTreeSet<_>>() {
            if store.blob_intact(blake3) {
                continue;
            }
            let Some(blob) = entry.blobs.get(blake3.as_str()) else {
                return self.miss();
            };
            blobs.push((blake3.clone(), downloads.request(blake3, blob)));
        }
        let mut ready = Vec::with_capacity(blobs.len());
        for (blake3, slot) in &blobs {
            downloads.hurry(slot);
            match slot.pending().wait_until(deadline) {
                None => {
                    // Slow: the step builds locally; the result is kept if it comes.
                    self.later(step, fingerprint, LateEntry::Known(Box::new(entry)));
                    return self.miss();
                }
                Some(Ok(tmp)) => ready.push((blake3, tmp)),
                Some(Err(Problem::Missing)) => return self.miss(),
                Some(Err(Problem::Transport(err))) => {
                    if let Some(w) = self.shared.trip(&err) {
                        warn(w);
                    }
                    return self.miss();
                }
                Some(Err(Problem::Mismatch(problem))) => {
                    // Once per problem: a pack many steps need is one problem.
                    if self.shared.first(&problem) {
                        warn(format!(
                            "remote cache {}: {problem}; building {step} locally (and any \
                             other step that needs it)",
                            self.shared.url
                        ));
                    }
                    return self.miss();
                }
            }
        }
        for (blake3, tmp) in ready {
            if adopt(store, &tmp, blake3).is_err() {
                return self.miss();
            }
        }
        self.shared.hits.fetch_add(1, Ordering::Relaxed);
        Lookup::Hit(entry.record)
    }

    fn offer(&self, record: &ActionRecord, store: &Store) {
        if !self.write || self.shared.off.load(Ordering::SeqCst) {
            return;
        }
        if let Some(writer) = self.writer() {
            writer.offer(record, store.root());
        }
    }

    fn finish(&self, store: &Store) -> Vec<String> {
        // Results that came too late for their step: kept for the next build.
        let late = std::mem::take(&mut *self.late.lock().unwrap_or_else(PoisonError::into_inner));
        // The build's steps are done: late results are worth a short wait
        // (a step's, at least LATE_GRACE), not a request's whole timeout.
        let deadline = Instant::now() + self.wait.max(LATE_GRACE).min(self.timeout);
        for late in late {
            if self.store_late(late, store, deadline) {
                self.shared.late.fetch_add(1, Ordering::Relaxed);
            }
        }
        if let Some(downloads) = self.downloads.get() {
            let soon = Instant::now() + Duration::from_millis(100);
            self.pool.wait_idle(soon);
            // Durable before the build's state vouches for them.
            if let Err(e) = downloads.make_durable() {
                let w = format!(
                    "remote cache {}: the downloaded results could not be flushed to the disk \
                     ({e}); if this machine loses power before it writes them, run `scone clean`",
                    self.shared.url
                );
                self.shared
                    .pending
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(w);
            }
            // Nothing else is waiting: what is left goes, and so do its temp files.
            downloads.clean_up(soon);
        }
        std::mem::take(
            &mut *self
                .shared
                .pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }
}

/// Every cacheable result of a build (`results` and the reused steps' records
/// from `state`), for its build index.
pub fn index_records(
    cacheable: &std::collections::HashSet<StepId>,
    results: &std::collections::BTreeMap<StepId, Arc<ActionRecord>>,
    reused: &[(StepId, Option<Arc<ActionRecord>>)],
) -> Option<Vec<ActionRecord>> {
    let mut records = Vec::with_capacity(cacheable.len());
    for (id, record) in results {
        if cacheable.contains(id) {
            records.push(ActionRecord::clone(record));
        }
    }
    for (id, record) in reused {
        if cacheable.contains(id) {
            records.push(ActionRecord::clone(record.as_ref()?));
        }
    }
    Some(records)
}
