//! The key that binds what a build trusts under `target/.scone` to the user
//! who built it. The state (head, patches, fresh list), the parse cache and
//! the sign step's memos are sealed with it ([`super::wire::seal`], a keyed
//! blake3), and the action cache names its records by it
//! ([`action_name`]). It lives in the user cache —
//! `$SCONE_CACHE_DIR/seal-key`, else `~/.cache/scone/seal-key` — made once
//! from the system's random source, readable by its owner alone, and never
//! under `target/`.
//!
//! So a `target/.scone` that comes from anywhere else — a repository that
//! commits one with records of outputs its sources never built, an
//! archive, another user — reads as no state and no cache: its builds run,
//! none is taken on trust (docs/security.md). Blobs need no key: each is
//! named by the digest of its content and checked against it.
//!
//! Where the key cannot be read or made (a read-only home), a build warns
//! and uses a key of its own process: nothing it writes is trusted by the
//! next build, so every build is a full one, and still right.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::OnceLock;

/// The key's file name in the user cache.
pub const FILE: &str = "seal-key";

/// A blake3 key.
pub type Key = [u8; 32];

/// This user's key, read (or made) on first use.
pub fn key() -> &'static Key {
    static KEY: OnceLock<Key> = OnceLock::new();
    KEY.get_or_init(|| {
        if cfg!(test) {
            // Unit tests never touch the user's folders; `load_or_make` is
            // tested on folders of their own.
            return [0x5c; 32];
        }
        let dir = crate::oci::base::default_cache_dir();
        load_or_make(&dir).unwrap_or_else(|e| {
            // Not `eprintln!`: a stderr nobody reads must not end the build.
            let _ = writeln!(
                io::stderr(),
                "warning: cannot read or make scone's key {}: {e}\n\
                 help: until it can, nothing under target/.scone is reused (every \
                 build is a full build); remove what is there or make its folder \
                 writable, or set SCONE_CACHE_DIR to a folder of yours",
                dir.join(FILE).display()
            );
            random().unwrap_or_else(|_| unforeseeable())
        })
    })
}

/// The name under which the action cache keeps the record of `fingerprint`:
/// the keyed hash of it, so that a record placed by anyone without the key
/// is never looked up.
pub fn action_name(fingerprint: &str) -> String {
    blake3::keyed_hash(key(), fingerprint.as_bytes())
        .to_hex()
        .to_string()
}

/// The key in `dir`, made there if it is missing or is not a key (32 bytes).
/// Two builds making it at once agree on one: it is linked into place,
/// never renamed over a key.
pub fn load_or_make(dir: &Path) -> io::Result<Key> {
    let path = dir.join(FILE);
    if let Some(key) = read(&path)? {
        return Ok(key);
    }
    fs::create_dir_all(dir)?;
    let key = random()?;
    let tmp = crate::durable::temp_sibling(&path);
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(&key)?;
        file.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let placed = match fs::hard_link(&tmp, &path) {
        // Not a key (cut short, or something else): replaced.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => match read(&path)? {
            Some(theirs) => {
                let _ = fs::remove_file(&tmp);
                return Ok(theirs);
            }
            None => fs::rename(&tmp, &path),
        },
        placed => placed,
    };
    let _ = fs::remove_file(&tmp);
    placed.map(|()| key)
}

/// The key at `path`; `None` if there is none, or it is not a file of 32
/// bytes (a FIFO there is opened without blocking, and is not a key).
fn read(path: &Path) -> io::Result<Option<Key>> {
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(33);
    file.take(33).read_to_end(&mut bytes)?;
    Ok(Key::try_from(bytes.as_slice()).ok())
}

/// A key for this process alone when the system's random source fails: never
/// one anybody knows in advance (a fixed key would let files planted in
/// `target/.scone` be taken on trust), from what no repository can foresee —
/// the time to the nanosecond, the process id, and where this process's
/// stack and heap were placed.
fn unforeseeable() -> Key {
    let on_stack = 0u8;
    let on_heap = Box::new(0u8);
    let mut hasher = blake3::Hasher::new_derive_key("scone seal key, without a random source");
    hasher.update(&crate::engine::stat::now_ns().to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(&(std::ptr::addr_of!(on_stack) as usize).to_le_bytes());
    hasher.update(&(std::ptr::addr_of!(*on_heap) as usize).to_le_bytes());
    *hasher.finalize().as_bytes()
}

fn random() -> io::Result<Key> {
    let mut key = [0; 32];
    getrandom::fill(&mut key).map_err(|e| io::Error::other(e.to_string()))?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_key_without_a_random_source_is_never_a_known_one() {
        let (a, b) = (unforeseeable(), unforeseeable());
        assert_ne!(a, [0; 32]);
        assert_ne!(a, b, "taken at another nanosecond, another key");
    }

    #[test]
    fn a_key_is_made_once_for_its_owner_alone_and_then_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let first = load_or_make(&cache).unwrap();
        assert_ne!(first, [0; 32]);
        let mode = fs::metadata(cache.join(FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "readable by its owner alone");
        assert_eq!(load_or_make(&cache).unwrap(), first, "kept");
        let names: Vec<_> = fs::read_dir(&cache).unwrap().collect();
        assert_eq!(names.len(), 1, "no temp file left: {names:?}");
        // Another user's cache has another key.
        assert_ne!(load_or_make(&dir.path().join("other")).unwrap(), first);
    }

    #[test]
    fn what_is_not_a_key_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        for junk in [&b""[..], b"short", &[7; 40]] {
            fs::write(dir.path().join(FILE), junk).unwrap();
            let key = load_or_make(dir.path()).unwrap();
            assert_eq!(fs::read(dir.path().join(FILE)).unwrap(), key);
        }
    }

    #[test]
    fn a_fifo_in_its_place_is_not_waited_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        let made = std::process::Command::new("mkfifo").arg(&path).status();
        assert!(made.unwrap().success());
        let key = load_or_make(dir.path()).unwrap();
        assert_eq!(fs::read(&path).unwrap(), key, "a file now");
    }

    #[test]
    fn builds_making_the_key_at_once_agree_on_one() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<Key> = std::thread::scope(|s| {
            let made: Vec<_> = (0..8)
                .map(|_| s.spawn(|| load_or_make(dir.path()).unwrap()))
                .collect();
            made.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let on_disk = fs::read(dir.path().join(FILE)).unwrap();
        assert!(keys.iter().all(|k| k[..] == on_disk[..]), "one key");
    }

    #[test]
    fn an_action_is_named_by_the_key() {
        let name = action_name("ab12");
        assert_eq!(name.len(), 64);
        assert_ne!(name, blake3::hash(b"ab12").to_hex().to_string());
        assert_eq!(name, action_name("ab12"));
    }
}
