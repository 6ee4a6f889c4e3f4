//! What a step read of its deps' records, kept for its next run by the deps'
//! output digests. A mesh step reads a few text fields of the record of each
//! of its services' steps ([`StepContext::dep_fields`]): the policy two of
//! every `sign`, the chart two of every `image`. When one service of a
//! thousand changed, the next run finds 999 of them here — one file read —
//! instead of reading 999 records out of the build state's log.
//!
//! A memo is exact, not a guess: a dep's output digest hashes its whole
//! record ([`ActionRecord::output_digest`](super::ActionRecord::output_digest)),
//! so the fields kept for a digest are the fields of any record with that
//! digest. An entry is used only for the same dep (its unit) with the same
//! digest; every other dep is read from its record.
//!
//! | file | holds | written | trusted when |
//! |---|---|---|---|
//! | `memo/fields-<key>` | per dep unit: its output digest and the fields read | by a call that read a sixteenth of the step's deps of that kind, or [`KEEP_AFTER`], from their records ([`worth_writing`]: a cold build; a change after that many services changed, not one that changed one of a thousand) | its seal holds: a blake3 keyed with this user's [`seal_key`](super::seal_key), so one damaged, torn, or written by anyone else reads as empty |
//!
//! `<key>` is the blake3 of [`VERSION`], the reading step's id, the deps'
//! kind and the field names; the memo's body starts with it, so a memo is
//! never read for another reader, kind or set of names. Nothing secret is
//! kept (the fields are what the records hold, and those never hold a
//! secret). `scone clean` and `scone clean --gc` remove the folder.
//!
//! ```text
//! key (32 bytes), count, then per dep: unit, output digest (hex), each
//!        field's value (each a length and its bytes; lengths as
//!        `engine::wire` varints)
//! seal
//! ```
//!
//! [`StepContext::dep_fields`]: super::StepContext::dep_fields

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::id::StepId;
use super::wire::{put_var, put_var_bytes, seal, unseal, Reader};
use crate::durable;

/// Bumped when what a memo holds changes meaning: older memos are then never
/// read.
const VERSION: &[u8] = b"scone dep-fields memo v1";

/// The memos' folder under the store root: these and the sign step's
/// (`steps::sign::memo`); `scone clean --gc` removes it whole.
pub const DIR: &str = "memo";

/// How many deps a run must have read from their records for the memo to be
/// written again, if they are fewer than a sixteenth of the step's deps of
/// that kind: reading a few records costs less than writing the memo (200 KB
/// at 1,000 services), so a change of one service does not write it, and a
/// memo that lacks a few services is still worth reading.
pub const KEEP_AFTER: usize = 64;

/// Whether the memo is worth reading for `wanted` of the step's `all` deps
/// of a kind: for a sixteenth of them or more (a prepare asks for all but
/// the few not done yet), or for as many as could make it written again —
/// not for the one a prepare left to its run, out of 10,000 in the memo.
pub fn worth_reading(wanted: usize, all: usize) -> bool {
    wanted > 0 && (wanted * 16 >= all || wanted >= KEEP_AFTER)
}

/// Whether a call that read `read` deps from their records, of the step's
/// `all` of a kind, writes the memo again (only after [`worth_reading`]).
pub fn worth_writing(read: usize, all: usize) -> bool {
    read > 0 && (read * 16 >= all || read >= KEEP_AFTER)
}

/// The most of a memo file [`read`] reads (a memo of 10,000 services is
/// 2 MB).
const MAX_BYTES: u64 = 1 << 30;

/// What a dep's fields were under one of its output digests.
#[derive(Debug, PartialEq, Eq)]
pub struct Kept {
    pub digest: String,
    pub values: Vec<String>,
}

/// The memo of `reader`'s fields `names` of its deps of `kind`: where it is,
/// and the key its body starts with.
#[derive(Debug)]
pub struct Place {
    pub path: PathBuf,
    key: blake3::Hash,
}

impl Place {
    pub fn new(store_root: &Path, reader: &StepId, kind: &str, names: &[&str]) -> Place {
        let mut h = blake3::Hasher::new();
        let parts = [
            VERSION,
            reader.kind.as_bytes(),
            reader.unit.as_bytes(),
            kind.as_bytes(),
        ];
        for part in parts.into_iter().chain(names.iter().map(|n| n.as_bytes())) {
            h.update(&(part.len() as u64).to_le_bytes());
            h.update(part);
        }
        let key = h.finalize();
        Place {
            path: store_root
                .join(DIR)
                .join(format!("fields-{}", key.to_hex())),
            key,
        }
    }
}

/// The memo at `place`, by dep unit: empty if there is none, or it is
/// damaged, or not sealed by this user, or another memo (a link to one
/// planted in its place is never followed), or its entries do not have
/// `width` values each.
pub fn read(place: &Place, width: usize) -> HashMap<String, Kept> {
    let bytes = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&place.path)
        .and_then(|file| {
            // A file planted there of any size is read no further than a
            // memo of a million services could be (then its seal fails).
            let mut bytes = Vec::new();
            file.take(MAX_BYTES).read_to_end(&mut bytes).map(|_| bytes)
        });
    bytes
        .ok()
        .and_then(|bytes| decode(unseal(&bytes)?, &place.key, width))
        .unwrap_or_default()
}

fn decode(body: &[u8], key: &blake3::Hash, width: usize) -> Option<HashMap<String, Kept>> {
    let mut r = Reader(body);
    if r.take(32)? != key.as_bytes() {
        return None;
    }
    let count = r.var_len()?;
    let mut kept = HashMap::with_capacity(count.min(1 << 20));
    let text =
        |r: &mut Reader<'_>| -> Option<String> { String::from_utf8(r.var_bytes()?.to_vec()).ok() };
    for _ in 0..count {
        let unit = text(&mut r)?;
        let digest = text(&mut r)?;
        let values = (0..width).map(|_| text(&mut r)).collect::<Option<_>>()?;
        kept.insert(unit, Kept { digest, values });
    }
    r.is_empty().then_some(kept)
}

/// Writes the memo at `place`: per dep, its unit, output digest and values.
/// A memo that cannot be written is simply not kept (the next run reads the
/// records).
pub fn write<'v>(
    place: &Place,
    entries: impl ExactSizeIterator<Item = (&'v str, &'v str, &'v [String])>,
) {
    let mut out = place.key.as_bytes().to_vec();
    put_var(&mut out, entries.len() as u64);
    for (unit, digest, values) in entries {
        put_var_bytes(&mut out, unit.as_bytes());
        put_var_bytes(&mut out, digest.as_bytes());
        for value in values {
            put_var_bytes(&mut out, value.as_bytes());
        }
    }
    seal(&mut out);
    // Into a real folder: a link planted in its place is replaced, never
    // written through.
    if let Some(dir) = place.path.parent() {
        if durable::real_dir(dir).is_ok() {
            let _ = durable::write_checked(&place.path, &out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    const SIGN: [&str; 2] = ["mrenclave", "fspf_tag"];

    #[test]
    fn a_memo_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        let at = Place::new(dir.path(), &StepId::new("policy", "mesh"), "sign", &SIGN);
        let a = values(&["m-a", "f-a"]);
        let b = values(&["m-b", ""]);
        write(
            &at,
            [("a", "d-a", &a[..]), ("b", "d-b", &b[..])].into_iter(),
        );
        let kept = read(&at, 2);
        assert_eq!(kept.len(), 2);
        assert_eq!(
            kept["a"],
            Kept {
                digest: "d-a".into(),
                values: a
            }
        );
        assert_eq!(
            kept["b"],
            Kept {
                digest: "d-b".into(),
                values: b
            }
        );
        // Read as if each entry had another number of fields: not a memo.
        assert!(read(&at, 1).is_empty());
        assert!(read(&at, 3).is_empty());
    }

    #[test]
    fn each_reader_kind_and_set_of_names_has_a_memo_of_its_own() {
        let root = Path::new("/store");
        let policy = StepId::new("policy", "mesh");
        let at = Place::new(root, &policy, "sign", &SIGN);
        assert!(at.path.starts_with("/store/memo"));
        for other in [
            Place::new(root, &StepId::new("policy", "other"), "sign", &SIGN),
            Place::new(root, &StepId::new("chart", "mesh"), "sign", &SIGN),
            Place::new(root, &policy, "image", &SIGN),
            Place::new(root, &policy, "sign", &["mrenclave"]),
            Place::new(root, &policy, "sign", &["fspf_tag", "mrenclave"]),
            Place::new(root, &policy, "sign", &["mrenclavefspf_tag"]),
        ] {
            assert_ne!(at.path, other.path);
            assert_ne!(at.key, other.key);
        }
    }

    #[test]
    fn a_damaged_or_forged_memo_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let at = Place::new(dir.path(), &StepId::new("chart", "m"), "image", &["digest"]);
        let v = values(&["sha256:1"]);
        write(&at, [("a", "d", &v[..])].into_iter());
        let whole = std::fs::read(&at.path).unwrap();
        assert_eq!(read(&at, 1).len(), 1);
        // One byte changed anywhere: the seal no longer holds.
        for i in [0, whole.len() / 2, whole.len() - 1] {
            let mut bytes = whole.clone();
            bytes[i] ^= 1;
            std::fs::write(&at.path, &bytes).unwrap();
            assert!(read(&at, 1).is_empty(), "byte {i} changed");
        }
        // Cut short (a torn write).
        std::fs::write(&at.path, &whole[..whole.len() - 5]).unwrap();
        assert!(read(&at, 1).is_empty());
        // The same body sealed without this user's key (a plain blake3):
        // another party's memo.
        let body = &whole[..whole.len() - 32];
        let mut forged = body.to_vec();
        forged.extend_from_slice(blake3::hash(body).as_bytes());
        std::fs::write(&at.path, &forged).unwrap();
        assert!(read(&at, 1).is_empty());
        // None at all.
        std::fs::remove_file(&at.path).unwrap();
        assert!(read(&at, 1).is_empty());
    }

    /// Another reader's memo, sealed by this user, copied or linked into
    /// this one's place: never read as this one (it names other fields of
    /// the same deps, under the same digests).
    #[test]
    fn another_readers_memo_in_this_place_reads_as_empty() {
        let dir = tempfile::tempdir().unwrap();
        let mesh = StepId::new("policy", "mesh");
        let ours = Place::new(dir.path(), &mesh, "sign", &SIGN);
        let theirs = Place::new(dir.path(), &mesh, "sign", &["mrsigner", "binary"]);
        let v = values(&["signer", "/bin/app"]);
        write(&theirs, [("a", "d-a", &v[..])].into_iter());
        assert_eq!(read(&theirs, 2).len(), 1);
        std::fs::copy(&theirs.path, &ours.path).unwrap();
        assert!(read(&ours, 2).is_empty(), "a copy");
        std::fs::remove_file(&ours.path).unwrap();
        std::os::unix::fs::symlink(&theirs.path, &ours.path).unwrap();
        assert!(read(&ours, 2).is_empty(), "a link");
        // Written again: the link is replaced, what it pointed to is kept.
        let w = values(&["m", "f"]);
        write(&ours, [("a", "d-a", &w[..])].into_iter());
        assert!(!std::fs::symlink_metadata(&ours.path).unwrap().is_symlink());
        assert_eq!(read(&ours, 2)["a"].values, w);
        assert_eq!(read(&theirs, 2)["a"].values, v);
    }

    /// Through [`super::super::StepContext::dep_fields`], as a mesh step
    /// reads: a dep whose output digest is the one kept is not read again
    /// (shown here with a record that differs under the same digest, which
    /// a real dep cannot have); a dep with another digest is read; a call
    /// for a few deps of many reads their records alone.
    #[test]
    fn a_step_reads_again_only_the_deps_whose_digest_moved() {
        use super::super::dep::{Dep, DepRecord};
        use super::super::store::{ActionRecord, Store};
        use super::super::StepContext;
        use std::sync::{Arc, Mutex};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Arc::default()).unwrap();
        let reader = StepId::new("policy", "mesh");
        let ids: Vec<StepId> = (0..100)
            .map(|i| StepId::new("sign", &format!("s{i}")))
            .collect();
        let record = |id: &StepId, m: &str| {
            DepRecord::Ready(Arc::new(ActionRecord {
                step: id.to_string(),
                fingerprint: "fp".into(),
                record: serde_json::json!({"mrenclave": m, "fspf_tag": "t"}),
                files: Default::default(),
                publish: Vec::new(),
                info: serde_json::Value::Null,
                inputs: Vec::new(),
            }))
        };
        let fields = |deps: &[Dep<'_>], wanted: &dyn Fn(&str) -> bool| -> Vec<(String, String)> {
            let cx = StepContext {
                inputs: &[],
                deps,
                step: &reader,
                scratch: dir.path(),
                store: &store,
                prepared: Mutex::new(None),
            };
            let got = cx.dep_fields_of("sign", &SIGN, wanted).unwrap();
            ids.iter()
                .filter_map(|id| Some((id.unit.clone(), got.get(&id.unit)?[0].clone())))
                .collect()
        };
        let first: Vec<Dep<'_>> = ids
            .iter()
            .map(|id| {
                Dep::new(
                    id,
                    format!("d-{}", id.unit).into(),
                    record(id, &format!("m-{}", id.unit)),
                )
            })
            .collect();
        let got = fields(&first, &|_| true);
        assert_eq!(got.len(), 100);
        assert!(got.iter().all(|(u, m)| *m == format!("m-{u}")));
        let place = Place::new(store.root(), &reader, "sign", &SIGN);
        assert_eq!(
            read(&place, 2).len(),
            100,
            "a call that read them all keeps them"
        );

        // s5: another digest, another record. s6: the same digest, another
        // record (impossible for a real dep: it shows what was not read).
        let second: Vec<Dep<'_>> = ids
            .iter()
            .map(|id| {
                let (digest, m) = match id.unit.as_str() {
                    "s5" => ("d-new".to_string(), "m-new".to_string()),
                    "s6" => ("d-s6".to_string(), "m-unread".to_string()),
                    u => (format!("d-{u}"), format!("m-{u}")),
                };
                Dep::new(id, digest.into(), record(id, &m))
            })
            .collect();
        let got = fields(&second, &|_| true);
        let of = |unit: &str| got.iter().find(|(u, _)| u == unit).map(|(_, m)| m.as_str());
        assert_eq!(of("s5"), Some("m-new"), "a moved digest is read");
        assert_eq!(of("s6"), Some("m-s6"), "a kept digest is not read again");
        assert_eq!(of("s7"), Some("m-s7"));
        // One read of a hundred: the memo is not written again for it.
        assert_eq!(read(&place, 2)["s5"].digest, "d-s5");

        // One dep asked for (what a prepare left to its run): its record is
        // read, the memo is not.
        let got = fields(&second, &|u| u == "s6");
        assert_eq!(got, vec![("s6".to_string(), "m-unread".to_string())]);
    }

    /// In a small mesh every call keeps what it read, and a run's call adds
    /// to what its prepare kept, without the deps the step no longer has.
    #[test]
    fn a_run_adds_to_what_its_prepare_kept() {
        use super::super::dep::{Dep, DepRecord};
        use super::super::store::{ActionRecord, Store};
        use super::super::StepContext;
        use std::sync::{Arc, Mutex};

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Arc::default()).unwrap();
        let reader = StepId::new("chart", "mesh");
        let names = ["manifest_digest"];
        let place = Place::new(store.root(), &reader, "image", &names);
        let call = |units: &[&str], wanted: &dyn Fn(&str) -> bool| {
            let ids: Vec<StepId> = units.iter().map(|u| StepId::new("image", u)).collect();
            let deps: Vec<Dep<'_>> = ids
                .iter()
                .map(|id| {
                    let record = ActionRecord {
                        step: id.to_string(),
                        fingerprint: "fp".into(),
                        record: serde_json::json!({"manifest_digest": format!("m-{}", id.unit)}),
                        files: Default::default(),
                        publish: Vec::new(),
                        info: serde_json::Value::Null,
                        inputs: Vec::new(),
                    };
                    Dep::new(
                        id,
                        format!("d-{}", id.unit).into(),
                        DepRecord::Ready(Arc::new(record)),
                    )
                })
                .collect();
            let cx = StepContext {
                inputs: &[],
                deps: &deps,
                step: &reader,
                scratch: dir.path(),
                store: &store,
                prepared: Mutex::new(None),
            };
            cx.dep_fields_of("image", &names, wanted).unwrap().len()
        };
        let kept = || {
            let mut units: Vec<String> = read(&place, 1).into_keys().collect();
            units.sort();
            units
        };
        assert_eq!(call(&["a", "b", "c"], &|u| u != "c"), 2);
        assert_eq!(kept(), ["a", "b"]);
        assert_eq!(call(&["a", "b", "c"], &|u| u == "c"), 1);
        assert_eq!(kept(), ["a", "b", "c"]);
        // `b` removed from the mesh, `d` added.
        assert_eq!(call(&["a", "c", "d"], &|_| true), 3);
        assert_eq!(kept(), ["a", "c", "d"]);
    }
}
