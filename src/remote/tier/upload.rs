//! Uploads, beside the build. One thread ([`Writer`]) takes each result the build
//! made as it finishes, puts its small blobs into packs and hands every request to
//! the tier's pool: a pack once it is full (or at the end), a big blob on its own,
//! a step's entry once every blob it names is stored, so no reader ever finds an
//! entry whose blobs are not there. At the end ([`Writer::complete`]) the last pack
//! goes, and then the build index: every result of the build, cacheable steps
//! only, with where each blob lies.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use super::Shared;
use crate::engine::store::blob_path_in;
use crate::engine::ActionRecord;
use crate::oci::digest::digest_reader;
use crate::remote::index::Index;
use crate::remote::pack::{PackBuilder, PackInfo, Sealed, PACKED_MAX};
use crate::remote::pool::{IoPool, Pending};
use crate::remote::{BlobRef, Entry, RemoteError};

enum Msg {
    /// A result the build made: its record and its blobs (store digest, path).
    Offer(ActionRecord, Vec<(String, PathBuf)>),
    /// An upload of these blobs (a pack, or one blob) finished.
    Stored(Result<Vec<(String, BlobRef)>, RemoteError>),
    /// An entry or the index was stored (or not).
    Sent(Result<(), RemoteError>),
    /// The build is over: send what is left, then `index` if given.
    Complete {
        index: Option<(String, Vec<ActionRecord>)>,
        root: PathBuf,
        done: Pending<()>,
    },
}

/// See the module documentation.
pub struct Writer {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
}

impl Writer {
    /// Starts the writer's thread; `None` if the system refuses a thread.
    pub fn start(shared: Arc<Shared>, pool: Arc<IoPool>) -> Option<Writer> {
        let (tx, rx) = mpsc::channel();
        let state = State {
            shared,
            pool,
            tx: tx.clone(),
            pack: PackBuilder::default(),
            stored: HashMap::new(),
            assigned: HashSet::new(),
            waiting: Vec::new(),
            in_flight: 0,
            index: None,
            index_sent: false,
            done: None,
        };
        std::thread::Builder::new()
            .name("scone-uploads".into())
            .spawn(move || state.serve(&rx))
            .ok()?;
        Some(Writer {
            tx: Mutex::new(Some(tx)),
        })
    }

    /// Queues a result the build made (`root`: the store's, for its blobs).
    pub fn offer(&self, record: &ActionRecord, root: &Path) {
        let blobs: Vec<(String, PathBuf)> = record
            .blob_digests()
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|d| (d.clone(), blob_path_in(root, d)))
            .collect();
        self.send(Msg::Offer(record.clone(), blobs));
    }

    fn send(&self, msg: Msg) {
        if let Some(tx) = self
            .tx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            let _ = tx.send(msg);
        }
    }

    /// Sends what is left, and the build index of `index` (its scope and every
    /// result of the build) if given; waits until `deadline`. Whether everything
    /// was sent in time.
    pub fn complete(
        &self,
        index: Option<(String, Vec<ActionRecord>)>,
        root: &Path,
        deadline: Instant,
    ) -> bool {
        let done = Pending::new();
        self.send(Msg::Complete {
            index,
            root: root.to_path_buf(),
            done: done.clone(),
        });
        drop(
            self.tx
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take(),
        );
        done.wait_until(deadline).is_some()
    }
}

struct State {
    shared: Arc<Shared>,
    pool: Arc<IoPool>,
    tx: mpsc::Sender<Msg>,
    pack: PackBuilder,
    /// Blobs the remote has, by store digest.
    stored: HashMap<String, BlobRef>,
    /// Blobs in the pack being filled or in an upload under way.
    assigned: HashSet<String>,
    /// Entries whose blobs are not all stored yet.
    waiting: Vec<ActionRecord>,
    /// Requests under way.
    in_flight: usize,
    index: Option<(String, Vec<ActionRecord>)>,
    index_sent: bool,
    done: Option<Pending<()>>,
}

impl State {
    fn serve(mut self, rx: &mpsc::Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            let off = self.shared.off.load(Ordering::SeqCst);
            match msg {
                Msg::Offer(_, _) if off => {}
                Msg::Offer(record, blobs) => {
                    for (digest, path) in blobs {
                        self.add_blob(digest, &path);
                    }
                    self.waiting.push(record);
                }
                Msg::Stored(result) => {
                    self.in_flight -= 1;
                    match result {
                        Ok(blobs) => {
                            for (digest, blob) in blobs {
                                self.assigned.remove(&digest);
                                self.stored.insert(digest, blob);
                            }
                        }
                        Err(e) => self.shared.trip_later(&e),
                    }
                }
                Msg::Sent(result) => {
                    self.in_flight -= 1;
                    if let Err(e) = result {
                        self.shared.trip_later(&e);
                    }
                }
                Msg::Complete { index, root, done } => {
                    if let Some((_, records)) = &index {
                        for record in records {
                            for digest in record.blob_digests() {
                                self.add_blob(digest.clone(), &blob_path_in(&root, digest));
                            }
                        }
                    }
                    self.index = index;
                    self.done = Some(done);
                    self.seal();
                }
            }
            if !self.shared.off.load(Ordering::SeqCst) {
                self.send_ready_entries();
                self.send_index();
            }
            let finished = self.shared.off.load(Ordering::SeqCst)
                || (self.in_flight == 0
                    && self.waiting.is_empty()
                    && self.pack.is_empty()
                    && (self.index.is_none() || self.index_sent));
            if finished && self.in_flight == 0 {
                if let Some(done) = &self.done {
                    done.set(());
                    return;
                }
            }
        }
    }

    /// Puts a blob in the pack being filled, or uploads it alone if it is big.
    fn add_blob(&mut self, digest: String, path: &Path) {
        if self.stored.contains_key(&digest) || self.assigned.contains(&digest) {
            return;
        }
        let size = std::fs::metadata(path).map_or(u64::MAX, |m| m.len());
        if size > PACKED_MAX {
            self.assigned.insert(digest.clone());
            let (shared, path) = (Arc::clone(&self.shared), path.to_path_buf());
            self.request(move || {
                let (sha256, size) = sha256_file(&path)?;
                if !shared.backend.has_blob(&sha256)? {
                    shared.backend.put_blob(&sha256, size, &path)?;
                    shared.uploaded_blobs.fetch_add(1, Ordering::Relaxed);
                }
                let blob = BlobRef {
                    sha256,
                    size,
                    pack: None,
                };
                Ok(Msg::Stored(Ok(vec![(digest, blob)])))
            });
            return;
        }
        match std::fs::read(path) {
            Ok(bytes) => {
                self.pack.add(&digest, &bytes);
                self.assigned.insert(digest);
                if self.pack.full() {
                    self.seal();
                }
            }
            Err(e) => self.shared.trip_later(&RemoteError::Io(e)),
        }
    }

    /// Uploads the pack being filled, if it holds anything.
    fn seal(&mut self) {
        if self.pack.is_empty() {
            return;
        }
        let Sealed {
            bytes,
            info,
            members,
        } = self.pack.seal();
        let shared = Arc::clone(&self.shared);
        self.request(move || {
            if !shared.backend.has_blob(&info.sha256)? {
                shared.backend.put_bytes(&info.sha256, &bytes)?;
                shared.uploaded_blobs.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Msg::Stored(Ok(members)))
        });
    }

    fn send_ready_entries(&mut self) {
        let (ready, waiting): (Vec<ActionRecord>, Vec<ActionRecord>) =
            std::mem::take(&mut self.waiting)
                .into_iter()
                .partition(|r| r.blob_digests().all(|d| self.stored.contains_key(d)));
        self.waiting = waiting;
        for record in ready {
            let entry = self.with_blobs(Entry::new(record, Default::default()));
            let shared = Arc::clone(&self.shared);
            self.request(move || {
                shared
                    .backend
                    .put_entry(&entry.record.fingerprint, &entry)?;
                shared.uploaded_entries.fetch_add(1, Ordering::Relaxed);
                Ok(Msg::Sent(Ok(())))
            });
        }
    }

    /// `entry` with the remote name of each of its record's blobs.
    fn with_blobs(&self, mut entry: Entry) -> Entry {
        entry.blobs = entry
            .record
            .blob_digests()
            .filter_map(|d| Some((d.clone(), self.stored.get(d)?.clone())))
            .collect();
        entry
    }

    fn send_index(&mut self) {
        if self.index_sent || self.in_flight > 0 || !self.pack.is_empty() {
            return;
        }
        let Some((scope, records)) = &self.index else {
            return;
        };
        if !records
            .iter()
            .all(|r| r.blob_digests().all(|d| self.stored.contains_key(d)))
        {
            return;
        }
        self.index_sent = true;
        let entries: Vec<Entry> = records
            .iter()
            .map(|r| self.with_blobs(Entry::new(r.clone(), Default::default())))
            .collect();
        let mut stored: Vec<PackInfo> = Vec::new();
        let mut seen = HashSet::new();
        for entry in &entries {
            for blob in entry.blobs.values() {
                let (sha256, size) = match &blob.pack {
                    Some(p) => (p.sha256.clone(), p.size),
                    None => (blob.sha256.clone(), blob.size),
                };
                if seen.insert(sha256.clone()) {
                    stored.push(PackInfo { sha256, size });
                }
            }
        }
        let packs: Vec<PackInfo> = stored
            .iter()
            .filter(|p| {
                entries
                    .iter()
                    .flat_map(|e| e.blobs.values())
                    .any(|b| b.pack.as_ref().is_some_and(|at| at.sha256 == p.sha256))
            })
            .cloned()
            .collect();
        let index = Index::new(scope.clone(), entries, packs);
        let scope = scope.clone();
        let shared = Arc::clone(&self.shared);
        self.request(move || {
            shared
                .backend
                .put_index(&scope, &index.to_bytes(), &stored)?;
            Ok(Msg::Sent(Ok(())))
        });
    }

    /// Runs `job` on the pool; its message (or its error, as a failed upload)
    /// comes back to this thread.
    fn request(&mut self, job: impl FnOnce() -> Result<Msg, RemoteError> + Send + 'static) {
        self.in_flight += 1;
        let tx = self.tx.clone();
        self.pool.spawn(move || {
            let msg = job().unwrap_or_else(|e| Msg::Sent(Err(e)));
            let _ = tx.send(msg);
        });
    }
}

/// The hex sha256 and size of a file (the remote's name for it).
fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    let (digest, size) = digest_reader(std::fs::File::open(path)?)?;
    Ok((digest.trim_start_matches("sha256:").to_string(), size))
}
