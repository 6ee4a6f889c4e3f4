//! The sign step's memos: results of pure functions of content-addressed bytes (a
//! base layer's index, a file read out of a layer, an enclave's measurement, the hash
//! state of an enclave's first pages, a SIGSTRUCT), kept in `<target>/.scone/memo/`
//! under a digest of everything they depend on. A service whose entry binary and
//! enclave settings did not change is then signed without reading its base layer or
//! measuring its enclave again, and the services of a mesh that share an interpreter
//! share one measurement.
//!
//! A memo is only a cache: each file is sealed with a blake3 checksum (a damaged or
//! torn one reads as absent), whoever reads one checks the blobs it names in the
//! store before using them, and anything missing is computed again. Nothing secret
//! is kept (a SIGSTRUCT is public; the signing key enters a key only as a digest).
//! `scone clean --gc` removes them all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use crate::durable;
use crate::engine::dep_memo::DIR;
use crate::engine::wire;

/// Bumped when what a memo holds changes meaning: older memos are then never read.
const VERSION: &[u8] = b"scone sign memo v1";

/// A digest of a memo's kind and everything its value depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) struct Key([u8; 32]);

impl Key {
    /// The key of `kind` for `parts` (each length-prefixed: no two lists collide).
    pub fn new(kind: &str, parts: &[&[u8]]) -> Key {
        let mut h = blake3::Hasher::new();
        for part in [VERSION, kind.as_bytes()]
            .into_iter()
            .chain(parts.iter().copied())
        {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        Key(*h.finalize().as_bytes())
    }
}

/// The memo folder of one store.
pub(super) struct Memo {
    dir: PathBuf,
}

impl Memo {
    pub fn new(store_root: &Path) -> Memo {
        Memo {
            dir: store_root.join(DIR),
        }
    }

    fn path(&self, kind: &str, key: &Key) -> PathBuf {
        self.dir.join(format!("{kind}-{}", hex::encode(key.0)))
    }

    /// The value kept for `key`, if present and whole.
    pub fn get(&self, kind: &str, key: &Key) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.path(kind, key)).ok()?;
        wire::unseal(&bytes).map(<[u8]>::to_vec)
    }

    /// Keeps `value` for `key`. A memo that cannot be written is simply not kept:
    /// the next build computes it again.
    pub fn put(&self, kind: &str, key: &Key, value: &[u8]) {
        let mut bytes = Vec::with_capacity(value.len() + 32);
        bytes.extend_from_slice(value);
        wire::seal(&mut bytes);
        // Into a real folder: a link planted in its place is replaced, never
        // written through.
        if durable::real_dir(&self.dir).is_ok() {
            let _ = durable::write_checked(&self.path(kind, key), &bytes);
        }
    }
}

/// Runs `f` for `key` while no other thread of this process runs one for the same
/// key: the sign steps of a cold build start together, and the first reads the
/// shared base layer while the others wait for its memo instead of each reading it.
/// `f` must not use rayon: steps run on a rayon pool, and a worker waiting inside
/// `f` for a parallel loop could pick up another step that waits for this key.
pub(super) fn one_at_a_time<T>(key: &Key, f: impl FnOnce() -> T) -> T {
    static BUSY: Mutex<Option<HashMap<Key, Arc<Mutex<()>>>>> = Mutex::new(None);
    let gate = {
        let mut busy = BUSY.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            busy.get_or_insert_with(HashMap::new)
                .entry(*key)
                .or_default(),
        )
    };
    let out = {
        let _held = gate.lock().unwrap_or_else(PoisonError::into_inner);
        f()
    };
    let mut busy = BUSY.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(map) = busy.as_mut() {
        // Ours and the map's: nobody else waits for this key.
        if Arc::strong_count(&gate) == 2 {
            map.remove(key);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_kinds_and_part_boundaries() {
        let a = Key::new("enclave", &[b"ab", b"c"]);
        assert_eq!(a, Key::new("enclave", &[b"ab", b"c"]));
        assert_ne!(a, Key::new("enclave", &[b"a", b"bc"]));
        assert_ne!(a, Key::new("prefix", &[b"ab", b"c"]));
    }

    #[test]
    fn a_memo_reads_back_and_a_damaged_one_is_absent() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let memo = Memo::new(tmp.path());
        let key = Key::new("file", &[b"x"]);
        assert_eq!(memo.get("file", &key), None);
        memo.put("file", &key, b"value");
        assert_eq!(memo.get("file", &key).as_deref(), Some(&b"value"[..]));
        assert_eq!(memo.get("enclave", &key), None, "kinds do not mix");
        let path = memo.path("file", &key);
        let mut bytes = std::fs::read(&path).expect("memo file");
        bytes[0] ^= 1;
        std::fs::write(&path, &bytes).expect("damage it");
        assert_eq!(memo.get("file", &key), None);
    }

    #[test]
    fn one_computation_per_key_at_a_time() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let key = Key::new("test", &[b"one at a time"]);
        let inside = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    one_at_a_time(&key, || {
                        let now = inside.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(5));
                        inside.fetch_sub(1, Ordering::SeqCst);
                    })
                });
            }
        });
        assert_eq!(most.load(Ordering::SeqCst), 1);
    }
}
