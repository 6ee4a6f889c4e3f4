//! One shard of the step index on disk (`index/XX.bin`), laid out so that a
//! build reads only what it uses.
//!
//! ```text
//! "sconeIX5"
//! heads      length-prefixed, ends with its blake3 (see `wire::seal`):
//!              the group table (offset, length, blake3 of each group),
//!              then per entry: key, fingerprint, output digest,
//!              where its action record is, where its input list is
//! groups     raw bytes after the heads: one per step kind with the
//!            records of that kind's entries (keys sort as `kind:unit`,
//!            so they are contiguous), then one with every input list
//! ```
//!
//! Opening the index reads and checks only the heads (a tenth of the
//! bytes). A group is read the first time an entry of it is asked for, and
//! checked against the blake3 its heads name: a mesh step that reads a
//! thousand sign records reads the sign groups, and never the copy and layer
//! records or any input list (only `--explain` and `clean -p` want those).
//! A group that no longer matches (the file was replaced since it was
//! opened) reads as absent, which costs a lookup in the action cache, never
//! a wrong record.

use bytes::Bytes;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use crate::engine::wire::{put_bytes, put_var, seal, unseal, Reader};

pub const MAGIC: &[u8; 8] = b"sconeIX5";

/// Where an entry's bytes are in a shard: a slice of one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    group: usize,
    start: usize,
    len: usize,
}

impl Loc {
    /// No bytes (an entry without a record, or without inputs).
    pub const NONE: Loc = Loc {
        group: usize::MAX,
        start: 0,
        len: 0,
    };
}

/// A group of a shard file, read on first use.
#[derive(Debug)]
struct Group {
    offset: u64,
    len: usize,
    hash: [u8; 32],
    bytes: OnceLock<Option<Bytes>>,
}

/// A shard file as opened: its path and its groups.
#[derive(Debug)]
pub struct ShardFile {
    path: PathBuf,
    groups: Vec<Group>,
}

impl ShardFile {
    /// The bytes at `loc`; `None` for [`Loc::NONE`], or if its group cannot
    /// be read or does not match its checksum.
    pub fn slice(&self, loc: Loc) -> Option<Bytes> {
        let group = self.groups.get(loc.group)?;
        let bytes = group
            .bytes
            .get_or_init(|| read_group(&self.path, group))
            .as_ref()?;
        let end = loc.start.checked_add(loc.len)?;
        (end <= bytes.len()).then(|| bytes.slice(loc.start..end))
    }
}

fn read_group(path: &Path, group: &Group) -> Option<Bytes> {
    let file = File::open(path).ok()?;
    let mut buf = vec![0u8; group.len];
    file.read_exact_at(&mut buf, group.offset).ok()?;
    (blake3::hash(&buf).as_bytes() == &group.hash).then(|| Bytes::from(buf))
}

/// An entry as the heads give it.
#[derive(Debug)]
pub struct Head {
    pub key: String,
    pub fingerprint: String,
    pub output: Arc<str>,
    pub record: Loc,
    pub inputs: Loc,
}

/// An entry to write: its head fields and its bytes (empty: none).
pub struct Body<'a> {
    pub key: &'a str,
    pub fingerprint: &'a str,
    pub output: &'a str,
    pub record: Bytes,
    pub inputs: Bytes,
}

/// The bytes of a shard of `entries`, which must be sorted by key.
pub fn encode(entries: &[Body<'_>]) -> Vec<u8> {
    // Record groups by kind, then the input lists.
    let mut groups: Vec<Vec<u8>> = Vec::new();
    let mut kinds: Vec<&str> = Vec::new();
    let mut locs: Vec<(Loc, Loc)> = Vec::with_capacity(entries.len());
    let place = |groups: &mut Vec<Vec<u8>>, group: usize, bytes: &[u8]| {
        if bytes.is_empty() {
            return Loc::NONE;
        }
        let data = &mut groups[group];
        let loc = Loc {
            group,
            start: data.len(),
            len: bytes.len(),
        };
        data.extend_from_slice(bytes);
        loc
    };
    for e in entries {
        let kind = e.key.split(':').next().unwrap_or("");
        if kinds.last() != Some(&kind) {
            kinds.push(kind);
            groups.push(Vec::new());
        }
        let group = groups.len() - 1;
        let record = place(&mut groups, group, &e.record);
        locs.push((record, Loc::NONE));
    }
    groups.push(Vec::new());
    let inputs_group = groups.len() - 1;
    for (e, loc) in entries.iter().zip(&mut locs) {
        loc.1 = place(&mut groups, inputs_group, &e.inputs);
    }
    let mut heads = Vec::with_capacity(64 + entries.len() * 200);
    put_var(&mut heads, groups.len() as u64);
    let mut offset = 0u64;
    for g in &groups {
        put_var(&mut heads, offset);
        put_var(&mut heads, g.len() as u64);
        heads.extend_from_slice(blake3::hash(g).as_bytes());
        offset += g.len() as u64;
    }
    put_var(&mut heads, entries.len() as u64);
    let put_loc = |heads: &mut Vec<u8>, loc: Loc| {
        // Group 0 means none; real groups are numbered from 1.
        let group = if loc.group == usize::MAX {
            0
        } else {
            loc.group + 1
        };
        put_var(heads, group as u64);
        put_var(heads, loc.start as u64);
        put_var(heads, loc.len as u64);
    };
    for (e, (record, inputs)) in entries.iter().zip(&locs) {
        put_bytes(&mut heads, e.key.as_bytes());
        put_bytes(&mut heads, e.fingerprint.as_bytes());
        put_bytes(&mut heads, e.output.as_bytes());
        put_loc(&mut heads, *record);
        put_loc(&mut heads, *inputs);
    }
    seal(&mut heads);
    let mut out = Vec::with_capacity(16 + heads.len() + offset as usize);
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, &heads);
    for g in &groups {
        out.extend_from_slice(g);
    }
    out
}

/// How many bytes of a shard file to read to decode its heads, given its
/// first 16 bytes; `None` if it is not a shard of this format.
pub fn heads_end(start: &[u8]) -> Option<usize> {
    let rest = start.strip_prefix(MAGIC)?;
    let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
    usize::try_from(len).ok()?.checked_add(16)
}

/// The entries of the shard file at `path`, given its first [`heads_end`]
/// bytes; their bytes are read from `path` when asked for.
pub fn decode_heads(path: &Path, start: &[u8]) -> Option<(Arc<ShardFile>, Vec<Head>)> {
    let mut outer = Reader(start.strip_prefix(MAGIC)?);
    let heads_len = usize::try_from(outer.u64()?).ok()?;
    let heads = unseal(outer.take(heads_len)?)?;
    let mut r = Reader(heads);
    let body_at = 16 + heads_len as u64;
    let n_groups = usize::try_from(r.var()?).ok()?;
    let mut groups = Vec::with_capacity(n_groups.min(1 << 10));
    for _ in 0..n_groups {
        let offset = r.var()?;
        let len = usize::try_from(r.var()?).ok()?;
        let hash: [u8; 32] = r.take(32)?.try_into().ok()?;
        groups.push(Group {
            offset: body_at.checked_add(offset)?,
            len,
            hash,
            bytes: OnceLock::new(),
        });
    }
    let loc = |r: &mut Reader<'_>| -> Option<Loc> {
        let group = usize::try_from(r.var()?).ok()?;
        let start = usize::try_from(r.var()?).ok()?;
        let len = usize::try_from(r.var()?).ok()?;
        if group == 0 {
            return Some(Loc::NONE);
        }
        (group <= n_groups).then_some(Loc {
            group: group - 1,
            start,
            len,
        })
    };
    let text = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_string);
    let n = usize::try_from(r.var()?).ok()?;
    let mut out = Vec::with_capacity(n.min(1 << 20));
    for _ in 0..n {
        out.push(Head {
            key: text(r.bytes()?)?,
            fingerprint: text(r.bytes()?)?,
            output: std::str::from_utf8(r.bytes()?).ok()?.into(),
            record: loc(&mut r)?,
            inputs: loc(&mut r)?,
        });
    }
    r.is_empty().then(|| {
        let file = ShardFile {
            path: path.to_path_buf(),
            groups,
        };
        (Arc::new(file), out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body<'a>(key: &'a str, record: &str, inputs: &str) -> Body<'a> {
        Body {
            key,
            fingerprint: "fp",
            output: "out",
            record: Bytes::copy_from_slice(record.as_bytes()),
            inputs: Bytes::copy_from_slice(inputs.as_bytes()),
        }
    }

    fn open(path: &Path) -> (Arc<ShardFile>, Vec<Head>) {
        let bytes = std::fs::read(path).unwrap();
        let end = heads_end(&bytes[..16]).unwrap();
        decode_heads(path, &bytes[..end]).unwrap()
    }

    #[test]
    fn groups_are_read_only_when_asked_for_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00.bin");
        let entries = [
            body("copy:a", "copy-a", "[1]"),
            body("copy:b", "", "[2]"),
            body("sign:a", "sign-a", ""),
        ];
        std::fs::write(&path, encode(&entries)).unwrap();
        let (file, heads) = open(&path);
        let keys: Vec<&str> = heads.iter().map(|h| h.key.as_str()).collect();
        assert_eq!(keys, ["copy:a", "copy:b", "sign:a"]);
        assert_eq!(heads[1].record, Loc::NONE);
        assert_eq!(heads[2].inputs, Loc::NONE);
        assert!(file.groups.iter().all(|g| g.bytes.get().is_none()));
        assert_eq!(&file.slice(heads[2].record).unwrap()[..], b"sign-a");
        let read: Vec<bool> = file
            .groups
            .iter()
            .map(|g| g.bytes.get().is_some())
            .collect();
        assert_eq!(read, [false, true, false], "only the sign group was read");
        assert_eq!(&file.slice(heads[0].record).unwrap()[..], b"copy-a");
        assert_eq!(&file.slice(heads[1].inputs).unwrap()[..], b"[2]");
        assert!(file.slice(Loc::NONE).is_none());

        // A file replaced after its heads were read: its groups read as absent.
        let (file, heads) = open(&path);
        let mut changed = std::fs::read(&path).unwrap();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        std::fs::write(&path, &changed).unwrap();
        assert!(
            file.slice(heads[0].inputs).is_none(),
            "inputs group changed"
        );
        assert_eq!(&file.slice(heads[2].record).unwrap()[..], b"sign-a");
    }

    #[test]
    fn damaged_heads_are_no_shard() {
        let bytes = encode(&[body("copy:a", "r", "i")]);
        let path = Path::new("unused");
        let end = heads_end(&bytes[..16]).unwrap();
        assert!(decode_heads(path, &bytes[..end]).is_some());
        let mut damaged = bytes.clone();
        damaged[20] ^= 1;
        assert!(decode_heads(path, &damaged[..end]).is_none());
        assert!(decode_heads(path, &bytes[..end - 1]).is_none());
        assert!(heads_end(b"sconeIX4\0\0\0\0\0\0\0\0").is_none());
    }
}
