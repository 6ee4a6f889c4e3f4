//! Maps kept on disk in shards (`<dir>/00.json` … `<dir>/63.json`), so that a
//! build that changes a few entries rewrites a few small files, not the whole
//! map: the stat cache and the step index of a 1000-service repo are ~15 MB.
//!
//! Shards are read and written in parallel. [`load`] and [`save`] keep them as
//! JSON; [`load_with`] and [`save_with`] take the caller's own encoding (the stat
//! cache uses a checksummed binary one, see [`super::statcache`]).

use rayon::prelude::*;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::io;
use std::path::{Path, PathBuf};

/// How many shards a map is split into.
pub const SHARDS: usize = 64;

/// The shard of a key.
pub fn shard_of(key: &[u8]) -> usize {
    usize::from(blake3::hash(key).as_bytes()[0]) % SHARDS
}

#[derive(Serialize, Deserialize)]
struct Shard<K, V> {
    version: u32,
    entries: Vec<(K, V)>,
}

fn shard_path(dir: &Path, i: usize, ext: &str) -> PathBuf {
    dir.join(format!("{i:02}.{ext}"))
}

/// Loads every shard `<dir>/NN.<ext>` that `decode` accepts; unreadable or
/// rejected shards are skipped (their entries are only a cache).
pub fn load_with<K, V>(
    dir: &Path,
    ext: &str,
    decode: impl Fn(&[u8]) -> Option<Vec<(K, V)>> + Sync,
) -> HashMap<K, V>
where
    K: Eq + Hash + Send,
    V: Send,
{
    let shards: Vec<Vec<(K, V)>> = (0..SHARDS)
        .into_par_iter()
        .filter_map(|i| decode(&std::fs::read(shard_path(dir, i, ext)).ok()?))
        .collect();
    let mut map = HashMap::with_capacity(shards.iter().map(Vec::len).sum());
    for entries in shards {
        map.extend(entries);
    }
    map
}

/// Loads every JSON shard of `dir` written with `version`.
pub fn load<K, V>(dir: &Path, version: u32) -> HashMap<K, V>
where
    K: DeserializeOwned + Eq + Hash + Send,
    V: DeserializeOwned + Send,
{
    load_with(dir, "json", |bytes| {
        serde_json::from_slice::<Shard<K, V>>(bytes)
            .ok()
            .filter(|shard| shard.version == version)
            .map(|shard| shard.entries)
    })
}

/// Rewrites the `dirty` shards of `map` as `<dir>/NN.<ext>` (each atomically),
/// `encode` getting each shard's entries sorted by key.
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
        crate::durable::write(&shard_path(dir, i, ext), &encode(&entries)?)
    })
}

/// Rewrites the `dirty` shards of `map` as JSON (each atomically).
pub fn save<K, V>(
    dir: &Path,
    version: u32,
    map: &HashMap<K, V>,
    dirty: &HashSet<usize>,
    key_bytes: impl Fn(&K) -> &[u8] + Sync,
) -> io::Result<()>
where
    K: Serialize + Ord + Sync,
    V: Serialize + Sync,
{
    save_with(dir, "json", map, dirty, key_bytes, |entries| {
        serde_json::to_vec(&Shard {
            version,
            entries: entries.to_vec(),
        })
        .map_err(io::Error::other)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dirty_shards_are_written_and_all_are_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let map: HashMap<String, u32> = (0..500).map(|i| (format!("key-{i}"), i)).collect();
        let all: HashSet<usize> = (0..SHARDS).collect();
        save(dir.path(), 1, &map, &all, |k| k.as_bytes()).unwrap();
        assert_eq!(load::<String, u32>(dir.path(), 1), map);
        assert!(
            load::<String, u32>(dir.path(), 2).is_empty(),
            "another version is ignored"
        );

        let mut changed = map.clone();
        changed.insert("key-7".into(), 7000);
        let shard = shard_of(b"key-7");
        let before: Vec<_> = (0..SHARDS)
            .map(|i| {
                std::fs::metadata(dir.path().join(format!("{i:02}.json")))
                    .unwrap()
                    .modified()
                    .unwrap()
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(20));
        save(dir.path(), 1, &changed, &HashSet::from([shard]), |k| {
            k.as_bytes()
        })
        .unwrap();
        for (i, t) in before.iter().enumerate() {
            let now = std::fs::metadata(dir.path().join(format!("{i:02}.json")))
                .unwrap()
                .modified()
                .unwrap();
            assert_eq!(now != *t, i == shard, "shard {i}");
        }
        assert_eq!(load::<String, u32>(dir.path(), 1), changed);
    }
}
