//! Maps kept on disk in shards (`<dir>/00.json` … `<dir>/63.json`), so that a
//! build that changes a few entries rewrites a few small files, not the whole
//! map: the stat cache and the step index of a 1000-service repo are ~15 MB.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::io;
use std::path::Path;

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

/// Loads every shard of `dir` written with `version`; unreadable shards are
/// skipped (their entries are only a cache).
pub fn load<K, V>(dir: &Path, version: u32) -> HashMap<K, V>
where
    K: DeserializeOwned + Eq + Hash,
    V: DeserializeOwned,
{
    let mut map = HashMap::new();
    for i in 0..SHARDS {
        let Ok(bytes) = std::fs::read(dir.join(format!("{i:02}.json"))) else {
            continue;
        };
        if let Ok(shard) = serde_json::from_slice::<Shard<K, V>>(&bytes) {
            if shard.version == version {
                map.extend(shard.entries);
            }
        }
    }
    map
}

/// Rewrites the `dirty` shards of `map` (each atomically).
pub fn save<K, V>(
    dir: &Path,
    version: u32,
    map: &HashMap<K, V>,
    dirty: &HashSet<usize>,
    key_bytes: impl Fn(&K) -> &[u8],
) -> io::Result<()>
where
    K: Serialize + Ord + Clone,
    V: Serialize + Clone,
{
    if dirty.is_empty() {
        return Ok(());
    }
    let mut shards: HashMap<usize, Vec<(K, V)>> = dirty.iter().map(|&i| (i, Vec::new())).collect();
    for (k, v) in map {
        if let Some(entries) = shards.get_mut(&shard_of(key_bytes(k))) {
            entries.push((k.clone(), v.clone()));
        }
    }
    for (i, mut entries) in shards {
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let bytes = serde_json::to_vec(&Shard { version, entries }).map_err(io::Error::other)?;
        crate::durable::write(&dir.join(format!("{i:02}.json")), &bytes)?;
    }
    Ok(())
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
