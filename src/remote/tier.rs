//! [`Tier`]: a [`Backend`] behind the engine's remote-tier contract.
//!
//! * **Reads** on a local miss: the entry, then every blob the local store
//!   lacks, streamed to a temp file while hashing sha256 (the remote's name)
//!   and blake3 (ours); both must match the entry before the blob enters the
//!   store. A mismatch is a miss with a warning: the step builds locally.
//! * **Writes** (only with `write`): built records go to a queue served by a
//!   few background threads, so uploads overlap the build; blobs first (HEAD,
//!   then PUT if missing), the entry last, so no reader sees an entry whose
//!   blobs are not there yet.
//! * **Failures**: the first transport error (refused, timeout, 5xx) turns
//!   the tier off for the rest of the build, with one warning; the build goes
//!   on locally. [`Tier::finish`] waits for uploads at most a bounded time.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::oci::digest::{digest_reader, HashingWriter};

use super::{Backend, BlobRef, Entry, RemoteError, RemoteOptions};
use crate::engine::{ActionRecord, Lookup, RemoteTier, Store};

/// Background upload threads.
const UPLOADERS: usize = 4;

/// What the tier counted in one build.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TierStats {
    pub hits: u64,
    pub misses: u64,
    pub downloaded_bytes: u64,
    pub uploaded_entries: u64,
    pub uploaded_blobs: u64,
}

struct Upload {
    record: ActionRecord,
    /// blake3 → path in the local store.
    blobs: Vec<(String, PathBuf)>,
}

struct Shared {
    backend: Box<dyn Backend>,
    url: String,
    off: AtomicBool,
    /// Warning texts already given (one per problem).
    warned: Mutex<BTreeSet<String>>,
    /// Warnings raised on upload threads, given at [`Tier::finish`].
    pending: Mutex<Vec<String>>,
    hits: AtomicU64,
    misses: AtomicU64,
    downloaded: AtomicU64,
    uploaded_entries: AtomicU64,
    uploaded_blobs: AtomicU64,
}

/// See the module documentation.
pub struct Tier {
    shared: Arc<Shared>,
    write: bool,
    timeout: Duration,
    queue: Mutex<Option<mpsc::Sender<Upload>>>,
    done: Mutex<Option<mpsc::Receiver<()>>>,
    workers: Mutex<usize>,
}

impl std::fmt::Debug for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tier")
            .field("url", &self.shared.url)
            .field("write", &self.write)
            .finish()
    }
}

impl Shared {
    /// Turns the tier off after a transport failure; the first one warns.
    fn trip(&self, err: &RemoteError) -> Option<String> {
        if self.off.swap(true, Ordering::SeqCst) {
            return None;
        }
        self.once(format!(
            "remote cache {} failed ({err}); building locally without it for the rest of this build",
            self.url
        ))
    }

    fn once(&self, message: String) -> Option<String> {
        let mut warned = self.warned.lock().unwrap_or_else(|e| e.into_inner());
        warned.insert(message.clone()).then_some(message)
    }

    fn upload(&self, job: &Upload) -> Result<(), RemoteError> {
        let mut blobs = BTreeMap::new();
        for (blake3, path) in &job.blobs {
            let (sha256, size) = sha256_file(path)?;
            if !self.backend.has_blob(&sha256)? {
                self.backend.put_blob(&sha256, size, path)?;
                self.uploaded_blobs.fetch_add(1, Ordering::Relaxed);
            }
            blobs.insert(blake3.clone(), BlobRef { sha256, size });
        }
        let entry = Entry::new(job.record.clone(), blobs);
        self.backend.put_entry(&job.record.fingerprint, &entry)?;
        self.uploaded_entries.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// The hex sha256 and size of a file (the remote's name for it).
fn sha256_file(path: &std::path::Path) -> io::Result<(String, u64)> {
    let (digest, size) = digest_reader(File::open(path)?)?;
    Ok((digest.trim_start_matches("sha256:").to_string(), size))
}

/// Hashes (blake3) what passes through on its way to `inner`; sha256 and the
/// byte count come from the [`HashingWriter`] around it.
struct Blake3Writer<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Blake3Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why one blob is not usable.
enum BlobProblem {
    Transport(RemoteError),
    Missing,
    Mismatch(String),
}

impl Tier {
    pub fn new(backend: Box<dyn Backend>, url: String, opts: &RemoteOptions) -> Tier {
        Tier {
            shared: Arc::new(Shared {
                backend,
                url,
                off: AtomicBool::new(false),
                warned: Mutex::default(),
                pending: Mutex::default(),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                downloaded: AtomicU64::new(0),
                uploaded_entries: AtomicU64::new(0),
                uploaded_blobs: AtomicU64::new(0),
            }),
            write: opts.write,
            timeout: opts.timeout,
            queue: Mutex::new(None),
            done: Mutex::new(None),
            workers: Mutex::new(0),
        }
    }

    /// The URL, without credentials.
    pub fn url(&self) -> &str {
        &self.shared.url
    }

    pub fn stats(&self) -> TierStats {
        let s = &self.shared;
        TierStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            downloaded_bytes: s.downloaded.load(Ordering::Relaxed),
            uploaded_entries: s.uploaded_entries.load(Ordering::Relaxed),
            uploaded_blobs: s.uploaded_blobs.load(Ordering::Relaxed),
        }
    }

    /// Downloads one blob into the store, verified.
    fn download(&self, store: &Store, blake3: &str, blob: &BlobRef) -> Result<(), BlobProblem> {
        let tmp = store
            .temp_blob_path(blake3)
            .map_err(|e| BlobProblem::Transport(e.into()))?;
        let result = (|| {
            let file = File::create(&tmp).map_err(|e| BlobProblem::Transport(e.into()))?;
            let mut out = HashingWriter::new(Blake3Writer {
                inner: BufWriter::new(file),
                hasher: blake3::Hasher::new(),
            });
            match self.shared.backend.get_blob(&blob.sha256, &mut out) {
                Ok(true) => {}
                Ok(false) => return Err(BlobProblem::Missing),
                Err(e) => return Err(BlobProblem::Transport(e)),
            }
            out.flush().map_err(|e| BlobProblem::Transport(e.into()))?;
            let (written, sha256, size) = out.finish();
            let sha256 = sha256.trim_start_matches("sha256:").to_string();
            let actual = written.hasher.finalize().to_hex().to_string();
            drop(written);
            if sha256 != blob.sha256 || actual != blake3 || size != blob.size {
                return Err(BlobProblem::Mismatch(format!(
                    "blob sha256:{} does not match its digest (got sha256:{sha256}, {size} bytes)",
                    blob.sha256
                )));
            }
            store
                .adopt(&tmp, blake3)
                .map_err(|e| BlobProblem::Transport(e.into()))?;
            self.shared
                .downloaded
                .fetch_add(blob.size, Ordering::Relaxed);
            Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    fn miss(&self) -> Lookup {
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss
    }

    fn start_workers(&self) -> Option<mpsc::Sender<Upload>> {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = queue.as_ref() {
            return Some(tx.clone());
        }
        let (tx, rx) = mpsc::channel::<Upload>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let rx = Arc::new(Mutex::new(rx));
        let mut started = 0;
        for i in 0..UPLOADERS {
            let rx = Arc::clone(&rx);
            let done = done_tx.clone();
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name(format!("scone-upload-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok(job) = job else { break };
                        if shared.off.load(Ordering::SeqCst) {
                            continue;
                        }
                        if let Err(err) = shared.upload(&job) {
                            if let Some(w) = shared.trip(&err) {
                                shared
                                    .pending
                                    .lock()
                                    .unwrap_or_else(|e| e.into_inner())
                                    .push(w);
                            }
                        }
                    }
                    let _ = done.send(());
                });
            if spawned.is_ok() {
                started += 1;
            }
        }
        if started == 0 {
            return None;
        }
        *self.workers.lock().unwrap_or_else(|e| e.into_inner()) = started;
        *self.done.lock().unwrap_or_else(|e| e.into_inner()) = Some(done_rx);
        *queue = Some(tx.clone());
        Some(tx)
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
        let shared = &self.shared;
        if shared.off.load(Ordering::SeqCst) {
            return self.miss();
        }
        let bytes = match shared.backend.get_entry(fingerprint) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return self.miss(),
            Err(err) => {
                if let Some(w) = shared.trip(&err) {
                    warn(w);
                }
                return self.miss();
            }
        };
        let entry = match Entry::parse(&bytes, fingerprint) {
            Ok(entry) if entry.record.step == step => entry,
            Ok(entry) => {
                let problem = format!("it is for step {}", entry.record.step);
                if let Some(w) = shared.once(format!(
                    "remote cache {}: the entry for {step} is not usable ({problem}); building it locally",
                    shared.url
                )) {
                    warn(w);
                }
                return self.miss();
            }
            Err(problem) => {
                if let Some(w) = shared.once(format!(
                    "remote cache {}: the entry for {step} is not usable ({problem}); building it locally",
                    shared.url
                )) {
                    warn(w);
                }
                return self.miss();
            }
        };
        let digests: BTreeSet<&String> = entry.record.blob_digests().collect();
        for blake3 in digests {
            if store.blob_intact(blake3) {
                continue;
            }
            let Some(blob) = entry.blobs.get(blake3.as_str()) else {
                return self.miss();
            };
            match self.download(store, blake3, blob) {
                Ok(()) => {}
                Err(BlobProblem::Missing) => return self.miss(),
                Err(BlobProblem::Transport(err)) => {
                    if let Some(w) = shared.trip(&err) {
                        warn(w);
                    }
                    return self.miss();
                }
                Err(BlobProblem::Mismatch(problem)) => {
                    warn(format!(
                        "remote cache {}: {problem}; building {step} locally",
                        shared.url
                    ));
                    return self.miss();
                }
            }
        }
        shared.hits.fetch_add(1, Ordering::Relaxed);
        Lookup::Hit(entry.record)
    }

    fn offer(&self, record: &ActionRecord, store: &Store) {
        if !self.write || self.shared.off.load(Ordering::SeqCst) {
            return;
        }
        let blobs: BTreeSet<&String> = record.blob_digests().collect();
        let job = Upload {
            record: record.clone(),
            blobs: blobs
                .into_iter()
                .map(|d| (d.clone(), store.blob_path(d)))
                .collect(),
        };
        if let Some(tx) = self.start_workers() {
            let _ = tx.send(job);
        }
    }

    fn finish(&self) -> Vec<String> {
        // Closing the queue lets the workers drain it and stop.
        drop(self.queue.lock().unwrap_or_else(|e| e.into_inner()).take());
        let workers = std::mem::take(&mut *self.workers.lock().unwrap_or_else(|e| e.into_inner()));
        let done = self.done.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut warnings = Vec::new();
        if let Some(done) = done {
            // Each request is bounded by the timeout; the whole wait by a few of them.
            let deadline = Instant::now() + self.timeout * 4;
            let mut finished = 0;
            while finished < workers {
                let left = deadline.saturating_duration_since(Instant::now());
                match done.recv_timeout(left) {
                    Ok(()) => finished += 1,
                    Err(_) => {
                        self.shared.off.store(true, Ordering::SeqCst);
                        warnings.push(format!(
                            "remote cache {}: uploads did not finish within {} s; the rest are skipped",
                            self.shared.url,
                            (self.timeout * 4).as_secs()
                        ));
                        break;
                    }
                }
            }
        }
        let mut pending = std::mem::take(
            &mut *self
                .shared
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        pending.append(&mut warnings);
        pending
    }
}
