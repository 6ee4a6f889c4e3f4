//! What a plan reads of `scone.lock` (the digests bases are pinned at, the
//! sessions' hashes on CAS), read before the rest.
//!
//! A lock of a thousand services is mostly its image table, which a build
//! needs only at its end (to write the new lock). [`Lockfile::read_in_background`]
//! reads the pins first, from the text without that table, and the whole
//! lock after them; the caller checks that the whole lock has the pins it
//! planned with ([`Reading::finish`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use super::{read_text, text, BaseLock, LockError, Lockfile, SessionLock};

/// The parts of a lock a plan reads (see `plan::Settings`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pins {
    pub base: BTreeMap<String, BaseLock>,
    pub session: BTreeMap<String, SessionLock>,
}

impl Lockfile {
    pub fn pins(&self) -> Pins {
        Pins {
            base: self.base.clone(),
            session: self.session.clone(),
        }
    }

    /// The pins of a lock's text, read without its image table: `None`
    /// unless the text is in the form scone writes (the tables in the order
    /// base, image, session).
    pub fn read_pins(text: &str) -> Option<Pins> {
        let image = text.find("\n[image")? + 1;
        let end = text[image..]
            .find("\n[session")
            .map_or(text.len(), |at| image + at + 1);
        // What is left out holds image tables only.
        if text[image..end].contains("\n[base") {
            return None;
        }
        let partial = format!("{}{}", &text[..image], &text[end..]);
        let lock = text::read(&partial)?;
        lock.image.is_empty().then_some(Pins {
            base: lock.base,
            session: lock.session,
        })
    }

    /// Starts reading the lock at `path` on another thread: its pins first.
    pub fn read_in_background(path: PathBuf) -> Reading {
        let (tx, pins) = mpsc::channel();
        let whole = std::thread::spawn(move || {
            let Some(text) = read_text(&path)? else {
                let _ = tx.send(Some(Pins::default()));
                return Ok(Lockfile::default());
            };
            let _ = tx.send(Lockfile::read_pins(&text));
            Lockfile::parse(&text, &path)
        });
        Reading { pins, whole }
    }
}

/// A lock being read (see [`Lockfile::read_in_background`]).
pub struct Reading {
    pins: mpsc::Receiver<Option<Pins>>,
    whole: JoinHandle<Result<Lockfile, LockError>>,
}

impl Reading {
    /// The pins, once read; `None` if they cannot be read apart (then
    /// [`Reading::finish`] gives the whole lock).
    pub fn pins(&self) -> Option<Pins> {
        self.pins.recv().ok().flatten()
    }

    /// The whole lock at `path`. With `planned` (the pins [`Reading::pins`]
    /// gave), an error if it has others: it changed in between.
    pub fn finish(self, path: &Path, planned: Option<&Pins>) -> Result<Lockfile, LockError> {
        let lock = self.whole.join().map_err(|_| LockError {
            path: path.display().to_string(),
            message: "reading it panicked".into(),
        })??;
        if planned.is_some_and(|p| *p != lock.pins()) {
            return Err(LockError {
                path: path.display().to_string(),
                message: "it changed while the build ran\nhelp: build again".into(),
            });
        }
        Ok(lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::ImageLock;

    fn lock() -> Lockfile {
        let mut lock = Lockfile {
            version: crate::lockfile::VERSION,
            ..Lockfile::default()
        };
        for i in 0..3 {
            lock.image.insert(format!("svc_{i}"), ImageLock::default());
        }
        lock.base.insert(
            "oci:/w/base".into(),
            BaseLock {
                digest: "sha256:1".into(),
            },
        );
        lock.session.insert(
            "ns".into(),
            crate::lockfile::SessionLock {
                content: "c".into(),
                cas_hash: Some("h".into()),
            },
        );
        lock
    }

    #[test]
    fn the_pins_of_the_text_scone_writes_are_the_whole_lock_s() {
        let lock = lock();
        assert_eq!(Lockfile::read_pins(&lock.to_text()), Some(lock.pins()));
        let mut no_session = lock.clone();
        no_session.session.clear();
        assert_eq!(
            Lockfile::read_pins(&no_session.to_text()),
            Some(no_session.pins())
        );
        let mut no_image = lock.clone();
        no_image.image.clear();
        assert_eq!(
            Lockfile::read_pins(&no_image.to_text()),
            Some(no_image.pins())
        );
        // Other orders: the pins still, or `None` (read whole).
        let text = lock.to_text();
        let (base, image, session) = (
            text.find("[base").unwrap(),
            text.find("[image").unwrap(),
            text.find("[session").unwrap(),
        );
        let (top, base, image, session) = (
            &text[..base],
            &text[base..image],
            &text[image..session],
            &text[session..],
        );
        let session_first = format!("{top}{session}\n{base}{image}");
        assert_eq!(Lockfile::read_pins(&session_first), Some(lock.pins()));
        let image_first = format!("{top}{image}{base}{session}");
        assert_eq!(Lockfile::parse(&image_first, Path::new("x")).unwrap(), lock);
        assert_eq!(Lockfile::read_pins(&image_first), None);
        let split = format!("{top}{base}{image}{session}\n[image.z]\nreference = \"r\"\n");
        assert_eq!(Lockfile::read_pins(&split), None);
        assert_eq!(Lockfile::read_pins("version = 1\n"), None);
    }

    #[test]
    fn a_lock_read_in_the_background_gives_its_pins_then_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scone.lock");
        let lock = lock();
        lock.save(&path).unwrap();
        let reading = Lockfile::read_in_background(path.clone());
        let pins = reading.pins().unwrap();
        assert_eq!(pins, lock.pins());
        assert_eq!(reading.finish(&path, Some(&pins)).unwrap(), lock);
        // Planned with other pins: refused.
        let reading = Lockfile::read_in_background(path.clone());
        let mut other = reading.pins().unwrap();
        other.base.clear();
        let err = reading.finish(&path, Some(&other)).unwrap_err();
        assert!(err.message.contains("changed while the build ran"), "{err}");
        // No lock: empty pins, empty lock.
        let missing = dir.path().join("none.lock");
        let reading = Lockfile::read_in_background(missing.clone());
        assert_eq!(reading.pins(), Some(Pins::default()));
        assert_eq!(
            reading.finish(&missing, Some(&Pins::default())).unwrap(),
            Lockfile::default()
        );
    }
}
