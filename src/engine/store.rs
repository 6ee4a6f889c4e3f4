//! The content-addressed store under `target/.scone/`: blobs and action
//! records (see [`super::state`] for the whole folder and its rules).
//!
//! A cache hit counts only when the action record parses and every blob it
//! names is present with the right digest (checked through the path table, so
//! an untouched blob is not re-read, and a flipped byte is seen).

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::id::StepId;
pub use super::record::{ActionRecord, Published};
use super::stat::{hash_file, pin_mtime};
use super::state::{BuildState, PathTable, StepEntry};
use crate::durable;

/// See the module documentation.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// The last build's state: its steps' results.
    state: Arc<BuildState>,
    /// The stat cache, seeded from the state's path table.
    paths: PathTable,
}

fn fan_out(dir: &Path, key: &str, suffix: &str) -> PathBuf {
    let prefix = key.get(..2).unwrap_or("xx");
    dir.join(prefix).join(format!("{key}{suffix}"))
}

/// Copies `source` to `to` through `buf` (grown to 256 KiB on first use),
/// returning the blake3 of the bytes written.
fn copy_hashed(source: &mut File, to: &mut File, buf: &mut Vec<u8>) -> io::Result<blake3::Hash> {
    use std::io::{Read, Write};
    buf.resize(256 * 1024, 0);
    let mut hasher = blake3::Hasher::new();
    loop {
        let n = match source.read(buf) {
            Ok(0) => return Ok(hasher.finalize()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
    }
}

/// Where blob `digest` lives in the store whose root (`<target>/.scone`) is `root`
/// (for writers that run beside a build: the remote tier's downloads).
pub fn blob_path_in(root: &Path, digest: &str) -> PathBuf {
    fan_out(&root.join("blobs"), digest, "")
}

impl Store {
    /// Opens (creating) the store in `<target>/.scone`, with the last
    /// build's `state`.
    /// The store in `target_dir` (its folders made), with the last build's
    /// state.
    pub fn open(target_dir: &Path, state: Arc<BuildState>) -> io::Result<Store> {
        Store::create(target_dir)?;
        Ok(Store::new(target_dir, state))
    }

    /// Makes the store's folders in `target_dir`: real folders, a link in
    /// the place of one replaced (never written through, see
    /// [`durable::real_dir`]).
    pub fn create(target_dir: &Path) -> io::Result<()> {
        let root = target_dir.join(".scone");
        fs::create_dir_all(&root)?;
        for folder in ["blobs", "actions"] {
            durable::real_dir(&root.join(folder))?;
        }
        Ok(())
    }

    /// The store in `target_dir`, whose folders [`Store::create`] made.
    pub fn new(target_dir: &Path, state: Arc<BuildState>) -> Store {
        let root = target_dir.join(".scone");
        let paths = PathTable::new(Arc::clone(&state), &root);
        Store { root, state, paths }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The stat cache.
    pub fn paths(&self) -> &PathTable {
        &self.paths
    }

    /// The last build's state.
    pub fn state(&self) -> &Arc<BuildState> {
        &self.state
    }

    /// The last result of step `id`.
    pub fn previous(&self, id: &StepId) -> Option<&StepEntry> {
        self.state.step(id)
    }

    /// The store's parts, for writing the next state.
    pub fn into_paths(self) -> PathTable {
        self.paths
    }

    /// Empties `tmp/` (left-overs of an interrupted build) and returns it.
    pub fn reset_tmp(&self) -> io::Result<PathBuf> {
        let tmp = self.root.join("tmp");
        durable::remove_all(&tmp)?;
        fs::create_dir_all(&tmp)?;
        Ok(tmp)
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        blob_path_in(&self.root, digest)
    }

    /// Whether the blob is present with the right content.
    pub fn blob_intact(&self, digest: &str) -> bool {
        match self.paths.digest(&self.blob_path(digest)) {
            Ok(d) => d.digest == digest,
            Err(_) => false,
        }
    }

    /// Moves a finished file into the store; returns its digest.
    pub fn ingest_move(&self, path: &Path) -> io::Result<String> {
        let digest = hash_file(path)?.0.to_hex().to_string();
        let dest = self.blob_path(&digest);
        if self.blob_intact(&digest) {
            fs::remove_file(path)?;
            return Ok(digest);
        }
        File::open(path)?.sync_all()?;
        self.place(path, &dest, &digest)?;
        Ok(digest)
    }

    /// Puts bytes made in memory into the store; returns their digest. Bytes
    /// the store already holds are not written at all (a chart whose files
    /// mostly did not change).
    pub fn ingest_bytes(&self, bytes: &[u8]) -> io::Result<String> {
        let digest = blake3::hash(bytes).to_hex().to_string();
        if self.blob_intact(&digest) {
            return Ok(digest);
        }
        let (tmp, mut file) = self.temp_blob(&digest)?;
        let written = (|| {
            std::io::Write::write_all(&mut file, bytes)?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        self.place_beside(&tmp, &self.blob_path(&digest), &digest)?;
        Ok(digest)
    }

    /// Copies a file into the store (the original stays); returns its digest.
    pub fn ingest_copy(&self, path: &Path) -> io::Result<String> {
        let digest = hash_file(path)?.0.to_hex().to_string();
        self.ingest_copies(&[(path, &digest)])?;
        Ok(digest)
    }

    /// Stores copies of `files`, each with the digest the caller hashed it
    /// to (the copy step's inputs, hashed through the path table): a blob
    /// the store holds intact is not read again; the others are copied to
    /// temporary files beside their places, each checked against its digest
    /// (a file that changed since it was hashed is refused), made durable
    /// together — one flush of the disk for a folder of thousands of files
    /// ([`durable::sync_filesystem`]; a flush each was most of the 13.7 s a
    /// cold build of 20,000 small files took, docs/performance.md) — and only
    /// then put in place.
    pub fn ingest_copies(&self, files: &[(&Path, &str)]) -> io::Result<()> {
        let mut staged: Vec<(PathBuf, &str)> = Vec::new();
        let mut buf = Vec::new();
        let result = (|| {
            for &(path, digest) in files {
                if self.blob_intact(digest) {
                    continue;
                }
                let mut source = super::stat::open_regular(path)?;
                let (tmp, mut copy) = self.temp_blob(digest)?;
                staged.push((tmp, digest));
                // What is written is what is hashed: one pass, not a copy
                // read back.
                if copy_hashed(&mut source, &mut copy, &mut buf)?
                    .to_hex()
                    .as_str()
                    != digest
                {
                    return Err(io::Error::other(format!(
                        "{} changed during the build; build again",
                        path.display()
                    )));
                }
            }
            // One file: its fsync. More: one `syncfs`, or, if that fails
            // (a writeback error of another file counts), an fsync of each.
            let synced = staged.len() > 1 && durable::sync_filesystem(&self.root).is_ok();
            if !synced {
                for (tmp, _) in &staged {
                    File::open(tmp)?.sync_all()?;
                }
            }
            for (tmp, digest) in &staged {
                self.place_beside(tmp, &self.blob_path(digest), digest)?;
            }
            Ok(())
        })();
        if result.is_err() {
            for (tmp, _) in &staged {
                let _ = fs::remove_file(tmp);
            }
        }
        result
    }

    /// A new temporary file beside where blob `digest` goes (its folder
    /// made; [`durable::create_temp`]), for bytes moved into place once
    /// written and verified.
    pub fn temp_blob(&self, digest: &str) -> io::Result<(PathBuf, File)> {
        let dest = self.blob_path(digest);
        fan_out_folder(&dest)?;
        durable::create_temp(&dest)
    }

    /// Moves a downloaded file whose blake3 the caller has verified to be
    /// `digest` into the store (fsynced first).
    pub fn adopt(&self, path: &Path, digest: &str) -> io::Result<()> {
        File::open(path)?.sync_all()?;
        self.adopt_synced(path, digest)
    }

    /// [`Store::adopt`] of a file the caller has already fsynced (each fsync
    /// flushes the disk's cache, even of a clean file: downloads fsync on their
    /// own threads, many at a time).
    pub fn adopt_synced(&self, path: &Path, digest: &str) -> io::Result<()> {
        if self.blob_intact(digest) {
            return fs::remove_file(path);
        }
        self.place(path, &self.blob_path(digest), digest)
    }

    fn place(&self, from: &Path, dest: &Path, digest: &str) -> io::Result<()> {
        fan_out_folder(dest)?;
        self.place_beside(from, dest, digest)
    }

    /// [`Store::place`] of a file already in `dest`'s fan-out folder (made
    /// by [`Store::temp_blob`]).
    fn place_beside(&self, from: &Path, dest: &Path, digest: &str) -> io::Result<()> {
        let mut perms = fs::metadata(from)?.permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
        fs::set_permissions(from, perms)?;
        pin_mtime(from)?;
        // Linked, not renamed, into place: a step storing the same content at
        // the same time (every image's `oci-layout`) must not swap the inode
        // under the hard links already published from it. A damaged blob is
        // replaced.
        match fs::hard_link(from, dest) {
            Ok(()) => fs::remove_file(from)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                if self.blob_intact(digest) {
                    fs::remove_file(from)?;
                    return Ok(());
                }
                fs::rename(from, dest)?;
            }
            Err(_) => fs::rename(from, dest)?,
        }
        self.paths.record_written(dest, digest)
    }

    /// Where the record of `fingerprint` is kept: under a name only this
    /// user's builds can compute ([`super::seal_key::action_name`]).
    fn action_path(&self, fingerprint: &str) -> PathBuf {
        let name = super::seal_key::action_name(fingerprint);
        fan_out(&self.root.join("actions"), &name, ".json")
    }

    /// The action record for a fingerprint, if present and whole.
    pub fn load_action(&self, fingerprint: &str) -> Option<ActionRecord> {
        let bytes = fs::read(self.action_path(fingerprint)).ok()?;
        let rec: ActionRecord = serde_json::from_slice(&bytes).ok()?;
        (rec.fingerprint == fingerprint).then_some(rec)
    }

    /// The action record of a step of the last state: from the state's
    /// log, else (it does not read) from the action cache.
    pub fn record(&self, entry: &super::state::StepEntry) -> Option<Arc<ActionRecord>> {
        entry
            .record(self.state())
            .or_else(|| self.load_action(&entry.fingerprint).map(Arc::new))
    }

    /// Whether every blob of a record is present and intact.
    pub fn action_intact(&self, rec: &ActionRecord) -> bool {
        rec.blob_digests().all(|d| self.blob_intact(d))
    }

    pub fn save_action(&self, rec: &ActionRecord) -> io::Result<()> {
        let bytes = serde_json::to_vec_pretty(rec).map_err(io::Error::other)?;
        // No fsync: a record is used only if it parses whole and names its own
        // fingerprint, and every blob it names is checked by digest; a record
        // torn by a power loss is a miss.
        let path = self.action_path(&rec.fingerprint);
        fan_out_folder(&path)?;
        durable::write_checked(&path, &bytes)
    }

    /// Removes one action record (e.g. for `clean -p`).
    pub fn remove_action(&self, fingerprint: &str) -> io::Result<()> {
        durable::remove_all(&self.action_path(fingerprint))
    }
}

/// Makes the fan-out folder of a blob or action record at `path`
/// (`blobs/<2 hex>/`) a real folder: a link in its place is replaced, never
/// written through ([`durable::real_dir`]).
fn fan_out_folder(path: &Path) -> io::Result<()> {
    let Some(fan) = path.parent() else {
        return Ok(());
    };
    if let Some(kind) = fan.parent() {
        fs::create_dir_all(kind)?;
    }
    durable::real_dir(fan)
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
