//! Maps kept on disk in 256 shards (`<dir>/00.bin` … `<dir>/ff.bin`), so that a
//! build that changes a few entries rewrites a few small files, not the whole
//! map: the stat cache and the step index of a 1000-service repo are ~12 MB.
//!
//! Shards are read and written in parallel, in the caller's own checksummed
//! encoding (see [`super::statcache`] and [`super::index`]).

use rayon::prelude::*;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};

/// How many shards a map is split into.
pub const SHARDS: usize = 256;

/// The shard of a key.
pub fn shard_of(key: &[u8]) -> usize {
    usize::from(blake3::hash(key).as_bytes()[0])
}

/// The file of shard `i`.
pub fn shard_path(dir: &Path, i: usize, ext: &str) -> PathBuf {
    dir.join(format!("{i:02x}.{ext}"))
}

/// Loads every shard `<dir>/NN.<ext>` that `decode` accepts; unreadable or
/// rejected shards are skipped (their entries are only a cache).
pub fn load_with<K, V>(
    dir: &Path,
    ext: &str,
    decode: impl Fn(Vec<u8>) -> Option<Vec<(K, V)>> + Sync,
) -> HashMap<K, V>
where
    K: Eq + Hash + Send,
    V: Send,
{
    let shards: Vec<Vec<(K, V)>> = (0..SHARDS)
        .into_par_iter()
        .filter_map(|i| decode(std::fs::read(shard_path(dir, i, ext)).ok()?))
        .collect();
    let mut map = HashMap::with_capacity(shards.iter().map(Vec::len).sum());
    for entries in shards {
        map.extend(entries);
    }
    map
}

/// Rewrites the `dirty` shards of `map` as `<dir>/NN.<ext>` (each atomically),
/// `encode` getting each shard's entries sorted by key. `encode` must seal its
/// output with a checksum that `decode` verifies: shards are written without
/// an fsync ([`crate::durable::write_checked`]).
pub fn save_with<K, V>(
    dir: &Path,
    ext: &str,
    map: &HashMap<K, V>,
    dirty: &HashSet<usize>,
    key_bytes: impl Fn(&K) -> &[u8] + Sync,
    encode: impl Fn(&[(&K, &V)]) -> io::Result<Vec<u8>> + Sync,
) -> io::Result<()>
where
    K: Ord + Sync,
    V: Sync,
{
    if dirty.is_empty() {
        return Ok(());
    }
    let mut shards: HashMap<usize, Vec<(&K, &V)>> =
        dirty.iter().map(|&i| (i, Vec::new())).collect();
    for (k, v) in map {
        if let Some(entries) = shards.get_mut(&shard_of(key_bytes(k))) {
            entries.push((k, v));
        }
    }
    shards.into_par_iter().try_for_each(|(i, mut entries)| {
        entries.sort_by(|a, b| a.0.cmp(b.0));
        crate::durable::write_checked(&shard_path(dir, i, ext), &encode(&entries)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(entries: &[(&String, &u32)]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for (k, v) in entries {
            crate::engine::wire::put_bytes(&mut out, k.as_bytes());
            crate::engine::wire::put_u64(&mut out, u64::from(**v));
        }
        crate::engine::wire::seal(&mut out);
        Ok(out)
    }

    fn decode(bytes: Vec<u8>) -> Option<Vec<(String, u32)>> {
        let mut r = crate::engine::wire::Reader(crate::engine::wire::unseal(&bytes)?);
        let mut out = Vec::new();
        while !r.is_empty() {
            let k = String::from_utf8(r.bytes()?.to_vec()).ok()?;
            out.push((k, u32::try_from(r.u64()?).ok()?));
        }
        Some(out)
    }

    #[test]
    fn only_dirty_shards_are_written_and_all_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let save = |map: &HashMap<String, u32>, dirty: &HashSet<usize>| {
            save_with(dir.path(), "bin", map, dirty, |k| k.as_bytes(), encode).unwrap()
        };
        let load = || load_with(dir.path(), "bin", decode);
        let map: HashMap<String, u32> = (0..500).map(|i| (format!("key-{i}"), i)).collect();
        save(&map, &(0..SHARDS).collect());
        assert_eq!(load(), map);

        let mut changed = map.clone();
        changed.insert("key-7".into(), 7000);
        let shard = shard_of(b"key-7");
        let mtime = |i: usize| {
            std::fs::metadata(shard_path(dir.path(), i, "bin"))
                .unwrap()
                .modified()
                .unwrap()
        };
        let before: Vec<_> = (0..SHARDS).map(mtime).collect();
        std::thread::sleep(std::time::Duration::from_millis(20));
        save(&changed, &HashSet::from([shard]));
        for (i, t) in before.iter().enumerate() {
            assert_eq!(mtime(i) != *t, i == shard, "shard {i}");
        }
        assert_eq!(load(), changed);
        // A damaged shard reads as absent: its entries are gone, the rest stay.
        let path = shard_path(dir.path(), shard, "bin");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[0] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let damaged = load();
        assert!(!damaged.contains_key("key-7"));
        assert_eq!(
            damaged.len(),
            changed.len()
                - changed
                    .keys()
                    .filter(|k| shard_of(k.as_bytes()) == shard)
                    .count()
        );
    }
}
