//! Downloads into the store, verified, many at a time: each blob a build needs is
//! asked for once ([`Downloads::request`]), whoever needs it waits on the same
//! [`Pending`]; a blob stored in a pack comes with the pack, one request for all
//! the blobs in it. A finished download is a temp file beside where the blob goes
//! in the store, fsynced, whose sha256, blake3 and size matched: the step that
//! uses it moves it into the store ([`Store::adopt`]).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::Shared;
use crate::engine::store::blob_path_in;
use crate::oci::digest::HashingWriter;
use crate::remote::pack;
use crate::remote::pool::{IoPool, Pending};
use crate::remote::{BlobRef, RemoteError};

/// Why a blob is not usable.
#[derive(Clone, Debug)]
pub enum Problem {
    /// The remote failed (turns the tier off).
    Transport(String),
    /// The remote does not have it.
    Missing,
    /// Its bytes are not the ones named (a warning; the step builds locally).
    Mismatch(String),
}

impl From<RemoteError> for Problem {
    fn from(e: RemoteError) -> Self {
        Problem::Transport(e.to_string())
    }
}

/// A verified temp file, or why there is none.
pub type Fetched = Result<PathBuf, Problem>;

/// One blob asked for: where it comes from and the [`Pending`] its users wait on.
pub struct Slot {
    blake3: String,
    blob: BlobRef,
    pending: Pending<Fetched>,
    /// Set by whoever takes it out of its pack (a job, or a step that needs it now).
    claimed: AtomicBool,
}

impl Slot {
    pub fn pending(&self) -> &Pending<Fetched> {
        &self.pending
    }
}

/// A pack some blobs were asked from.
struct PackState {
    /// Blobs asked from it before it came.
    members: Vec<Arc<Slot>>,
    /// Once downloaded: its bytes (kept for blobs asked later), or the problem.
    done: Option<Result<Arc<Vec<u8>>, Problem>>,
}

/// Every download of one build.
pub struct Downloads {
    shared: Arc<Shared>,
    /// Requests (many: they wait on the network).
    net: Arc<IoPool>,
    /// Blobs written and fsynced (a few: more only queue up in the disk).
    disk: IoPool,
    /// `<target>/.scone`.
    root: PathBuf,
    blobs: Mutex<HashMap<String, Arc<Slot>>>,
    packs: Mutex<HashMap<String, PackState>>,
    /// Whether a blob was written (and so must be made durable).
    wrote: AtomicBool,
}

/// Blobs taken out of one pack per job.
const MEMBERS_PER_JOB: usize = 8;

/// Threads writing blobs.
const WRITERS: usize = 8;

impl Downloads {
    pub fn new(shared: Arc<Shared>, net: Arc<IoPool>, root: PathBuf) -> Downloads {
        Downloads {
            shared,
            net,
            disk: IoPool::new("remote-write", WRITERS),
            root,
            blobs: Mutex::default(),
            packs: Mutex::default(),
            wrote: AtomicBool::new(false),
        }
    }

    /// The download of blob `blake3` (named `blob` by the remote), started if it
    /// was not.
    pub fn request(self: &Arc<Self>, blake3: &str, blob: &BlobRef) -> Arc<Slot> {
        let slot = {
            let mut blobs = self.blobs.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = blobs.get(blake3) {
                return Arc::clone(slot);
            }
            let slot = Arc::new(Slot {
                blake3: blake3.to_string(),
                blob: blob.clone(),
                pending: Pending::new(),
                claimed: AtomicBool::new(false),
            });
            blobs.insert(blake3.to_string(), Arc::clone(&slot));
            slot
        };
        match &blob.pack {
            Some(at) => self.from_pack(&at.sha256, Arc::clone(&slot)),
            None => {
                let (me, slot) = (Arc::clone(self), Arc::clone(&slot));
                self.net
                    .spawn(move || slot.pending.set(me.single(&slot.blake3, &slot.blob)));
            }
        }
        slot
    }

    /// Takes `slot` out of its pack now, on the caller's thread, if the pack is
    /// here and nobody has started on it: a step waiting for it goes first.
    pub fn hurry(&self, slot: &Slot) {
        let Some(at) = &slot.blob.pack else {
            return;
        };
        let bytes = match self
            .packs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&at.sha256)
        {
            Some(PackState {
                done: Some(Ok(bytes)),
                ..
            }) => Arc::clone(bytes),
            _ => return,
        };
        if !slot.claimed.swap(true, Ordering::SeqCst) {
            slot.pending
                .set(self.take_out(&bytes, &slot.blake3, &slot.blob));
        }
    }

    /// Starts the downloads of `blobs` the store lacks (a build index's: the blobs
    /// a build will most likely want), packs first come first served.
    pub fn prefetch<'b>(
        self: &Arc<Self>,
        blobs: impl IntoIterator<Item = (&'b String, &'b BlobRef)>,
    ) {
        for (blake3, blob) in blobs {
            if !blob_path_in(&self.root, blake3).exists() {
                self.request(blake3, blob);
            }
        }
    }

    fn from_pack(self: &Arc<Self>, pack_sha: &str, slot: Arc<Slot>) {
        let mut packs = self.packs.lock().unwrap_or_else(PoisonError::into_inner);
        match packs.get_mut(pack_sha) {
            Some(PackState {
                done: Some(done), ..
            }) => {
                let done = done.clone();
                drop(packs);
                self.take_out_later(done, vec![slot]);
            }
            Some(state) => state.members.push(slot),
            None => {
                let size = slot.blob.pack.as_ref().map_or(0, |p| p.size);
                packs.insert(
                    pack_sha.to_string(),
                    PackState {
                        members: vec![slot],
                        done: None,
                    },
                );
                drop(packs);
                let (me, sha) = (Arc::clone(self), pack_sha.to_string());
                self.net.spawn(move || me.download_pack(&sha, size));
            }
        }
    }

    /// Downloads a pack, then hands its blobs out to the writers.
    fn download_pack(self: &Arc<Self>, sha256: &str, size: u64) {
        let result = self.fetch_bytes(sha256, size).map(Arc::new);
        let members = {
            let mut packs = self.packs.lock().unwrap_or_else(PoisonError::into_inner);
            let Some(state) = packs.get_mut(sha256) else {
                return;
            };
            state.done = Some(result.clone());
            std::mem::take(&mut state.members)
        };
        self.take_out_later(result, members);
    }

    /// Queues the blobs `slots` of a pack (or its problem) for the writers.
    fn take_out_later(
        self: &Arc<Self>,
        pack: Result<Arc<Vec<u8>>, Problem>,
        slots: Vec<Arc<Slot>>,
    ) {
        let bytes = match pack {
            Ok(bytes) => bytes,
            Err(problem) => {
                for slot in slots {
                    slot.pending.set(Err(problem.clone()));
                }
                return;
            }
        };
        let mut slots = slots.into_iter().peekable();
        while slots.peek().is_some() {
            let chunk: Vec<Arc<Slot>> = slots.by_ref().take(MEMBERS_PER_JOB).collect();
            let (me, bytes) = (Arc::clone(self), Arc::clone(&bytes));
            self.disk.spawn(move || {
                for slot in chunk {
                    if !slot.claimed.swap(true, Ordering::SeqCst) {
                        slot.pending
                            .set(me.take_out(&bytes, &slot.blake3, &slot.blob));
                    }
                }
            });
        }
    }

    /// A whole remote blob in memory. A pack is not checked as a whole: each blob
    /// taken out of it is ([`pack::member`]), so a damaged byte costs only the
    /// blob it is in.
    fn fetch_bytes(&self, sha256: &str, size: u64) -> Result<Vec<u8>, Problem> {
        if self.shared.off.load(Ordering::SeqCst) {
            return Err(Problem::Missing);
        }
        let mut out = Capped {
            bytes: Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(64 << 20)),
            limit: size,
            over: false,
        };
        match self.shared.backend.get_blob(sha256, &mut out) {
            Ok(true) => {}
            Ok(false) => return Err(Problem::Missing),
            // Longer than the entry says: not the pack it names (and never held
            // in memory beyond its size).
            Err(_) if out.over => {
                return Err(Problem::Mismatch(format!(
                    "pack sha256:{sha256} is longer than its {size} bytes"
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let bytes = out.bytes;
        self.shared
            .downloaded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        Ok(bytes)
    }

    /// One blob out of its pack's bytes, into a verified temp file.
    fn take_out(&self, pack_bytes: &[u8], blake3: &str, blob: &BlobRef) -> Fetched {
        let bytes = pack::member(pack_bytes, blake3, blob).map_err(Problem::Mismatch)?;
        let (tmp, mut file) = self.temp_file(blake3)?;
        let written = (|| {
            file.write_all(bytes)?;
            finish_blob(&file, &tmp)
        })();
        self.wrote.store(true, Ordering::SeqCst);
        match written {
            Ok(()) => Ok(tmp),
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                Err(Problem::Transport(format!(
                    "writing a downloaded blob: {e}"
                )))
            }
        }
    }

    /// One blob stored on its own, streamed into a verified temp file.
    fn single(&self, blake3: &str, blob: &BlobRef) -> Fetched {
        if self.shared.off.load(Ordering::SeqCst) {
            return Err(Problem::Missing);
        }
        let (tmp, file) = self.temp_file(blake3)?;
        self.wrote.store(true, Ordering::SeqCst);
        let result = (|| {
            let mut out = HashingWriter::new(Blake3Writer {
                inner: BufWriter::new(file),
                hasher: blake3::Hasher::new(),
            });
            match self.shared.backend.get_blob(&blob.sha256, &mut out) {
                Ok(true) => {}
                Ok(false) => return Err(Problem::Missing),
                Err(e) => return Err(e.into()),
            }
            out.flush()
                .map_err(|e| Problem::from(RemoteError::from(e)))?;
            let (written, sha256, size) = out.finish();
            let sha256 = sha256.trim_start_matches("sha256:").to_string();
            let actual = written.hasher.finalize().to_hex().to_string();
            let file = written
                .inner
                .into_inner()
                .map_err(|e| Problem::from(RemoteError::from(e.into_error())))?;
            if sha256 != blob.sha256 || actual != blake3 || size != blob.size {
                return Err(Problem::Mismatch(format!(
                    "blob sha256:{} does not match its digest (got sha256:{sha256}, {size} bytes)",
                    blob.sha256
                )));
            }
            finish_blob(&file, &tmp).map_err(|e| Problem::from(RemoteError::from(e)))?;
            self.shared.downloaded.fetch_add(size, Ordering::Relaxed);
            Ok(tmp.clone())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// A new temporary file beside where blob `blake3` goes
    /// ([`crate::durable::create_temp`]).
    fn temp_file(&self, blake3: &str) -> Result<(PathBuf, File), Problem> {
        let dest = blob_path_in(&self.root, blake3);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Problem::Transport(format!("creating the store: {e}")))?;
        }
        crate::durable::create_temp(&dest)
            .map_err(|e| Problem::Transport(format!("creating a file in the store: {e}")))
    }

    /// Whether any blob was written.
    pub fn wrote_any(&self) -> bool {
        self.wrote.load(Ordering::SeqCst)
    }

    /// Makes every blob written so far durable: one `syncfs` of the store's
    /// filesystem, or, if that fails, an fsync of each.
    pub fn make_durable(&self) -> std::io::Result<()> {
        if !self.wrote_any() || crate::durable::sync_filesystem(&self.root).is_ok() {
            return Ok(());
        }
        let blobs: Vec<String> = self
            .blobs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        for blake3 in blobs {
            match File::open(blob_path_in(&self.root, &blake3)) {
                Ok(file) => file.sync_all()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Waits (until `deadline`) for the writers, removes the temp files nobody
    /// moved into the store, and forgets the packs' bytes.
    pub fn clean_up(&self, deadline: std::time::Instant) {
        self.disk.wait_idle(deadline);
        let blobs = std::mem::take(&mut *self.blobs.lock().unwrap_or_else(PoisonError::into_inner));
        for slot in blobs.into_values() {
            if let Some(Ok(tmp)) = slot.pending.get() {
                let _ = std::fs::remove_file(tmp);
            }
        }
        self.packs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Gives a written blob the mode and mtime the store gives its blobs. It is not
/// fsynced here: the tier makes every download durable at once before the build
/// writes the state that vouches for them ([`Downloads::make_durable`]).
fn finish_blob(file: &File, path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
    crate::engine::stat::pin_mtime(path)
}

/// A pack's bytes in memory, refusing any byte past the size its entry gives.
struct Capped {
    bytes: Vec<u8>,
    limit: u64,
    /// Whether more than `limit` bytes came.
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let room = self.limit.saturating_sub(self.bytes.len() as u64);
        if buf.len() as u64 > room {
            self.over = true;
            return Err(std::io::Error::other("longer than its size"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Hashes (blake3) what passes through on its way to `inner`; sha256 and the
/// byte count come from the [`HashingWriter`] around it.
struct Blake3Writer<W> {
    inner: W,
    hasher: blake3::Hasher,
}

impl<W: Write> Write for Blake3Writer<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Moves a verified download into the store; another step that needed the same
/// blob may have moved it already.
pub fn adopt(store: &crate::engine::Store, tmp: &Path, blake3: &str) -> std::io::Result<()> {
    if store.blob_intact(blake3) {
        return Ok(());
    }
    match store.adopt_synced(tmp, blake3) {
        Err(_) if store.blob_intact(blake3) => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pack_longer_than_its_entry_says_is_refused_not_kept() {
        let mut out = Capped {
            bytes: Vec::new(),
            limit: 4,
            over: false,
        };
        assert!(out.write_all(b"abc").is_ok());
        assert!(out.write_all(b"de").is_err(), "a fifth byte is refused");
        assert!(out.over);
        assert_eq!(out.bytes, b"abc", "nothing past the limit is kept");
    }
}
