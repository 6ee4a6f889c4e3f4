//! The parse cache: rendered service manifest text → its parsed model, and
//! Meshfile text → its parsed model and variables, so that a build of a
//! 1000-service repo where one file changed does not parse 1001 YAML documents
//! again.
//!
//! The key is the blake3 of the text itself (and of what it is parsed as):
//! parsing is a pure function of it (the file name only shows in errors, and
//! failed parses are not cached), so an edited manifest, or one rendered with
//! other Meshfile variables, simply misses. Validation is not cached: it looks at the file system (`copy:` paths,
//! symlinks, the signing key) and runs on every load.
//!
//! The cache is one file, `<target>/.scone/parse-cache.bin`, used only where a
//! build already made `<target>/.scone` (so `scone check` in a fresh tree writes
//! nothing). It holds scone's version (another scone ignores it) and ends with
//! the blake3 of its content: a damaged or foreign file is an empty cache, and
//! an entry that does not decode is a miss. It is rewritten (atomically) only
//! when a load parsed something new. A manifest that gives a secret a fixed
//! value is not cached: its binary form leaves the value out.

use crate::engine::wire::{put_bytes, put_u64, seal, unseal, Reader};
use crate::manifest::codec::{decode_mesh, decode_service, encode_mesh, encode_service};
use crate::manifest::template::Variables;
use crate::manifest::{parse, Diagnostic, Mesh, ServiceManifest};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: &[u8; 8] = b"sconePC1";
/// The cache file, inside `<target>/.scone`.
pub const FILE_NAME: &str = "parse-cache.bin";
/// Entries not used by a load are kept up to this many (other `-f` sets).
const KEEP_UNUSED: usize = 4096;

type Key = [u8; 32];

/// See the module documentation.
#[derive(Debug, Default)]
pub struct ParseCache {
    /// Where to save; `None`: caching is off.
    file: Option<PathBuf>,
    /// What the file held: key → encoded manifest.
    stored: HashMap<Key, Vec<u8>>,
    used: Mutex<HashSet<Key>>,
    added: Mutex<HashMap<Key, Vec<u8>>>,
}

fn key_of(what: &[u8], text: &str) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(what);
    h.update(b"\0");
    h.update(text.as_bytes());
    *h.finalize().as_bytes()
}

fn version() -> String {
    crate::engine::fingerprint::tool_version()
}

impl ParseCache {
    /// The cache of the store folder `scone_dir` (`<target>/.scone`), or an
    /// inactive cache if that folder does not exist.
    pub fn open(scone_dir: &Path) -> ParseCache {
        if !scone_dir.is_dir() {
            return ParseCache::default();
        }
        let file = scone_dir.join(FILE_NAME);
        let stored = std::fs::read(&file)
            .ok()
            .and_then(|b| decode_file(&b))
            .unwrap_or_default();
        ParseCache {
            file: Some(file),
            stored,
            ..ParseCache::default()
        }
    }

    /// The manifest `rendered` parses to (`path` is set to `file`), from the
    /// cache when it holds this exact text.
    pub fn service(&self, rendered: &str, file: &Path) -> Result<ServiceManifest, Diagnostic> {
        if self.file.is_none() {
            return parse_service(rendered, file);
        }
        let key = key_of(b"service", rendered);
        let cached = self.stored.get(&key).and_then(|b| decode_service(b));
        if let Some(mut m) = cached.filter(|m| !has_fixed_values(m)) {
            m.path = file.to_path_buf();
            lock(&self.used).insert(key);
            return Ok(m);
        }
        let m = parse_service(rendered, file)?;
        if !has_fixed_values(&m) {
            lock(&self.added).insert(key, encode_service(&m));
        }
        Ok(m)
    }

    /// Whether `text` is a Meshfile this cache parsed before (so it is one).
    pub fn knows_mesh(&self, text: &str) -> bool {
        self.file.is_some() && self.stored.contains_key(&key_of(b"mesh", text))
    }

    /// The Meshfile `text` parses to and its variables (see
    /// [`parse::parse_mesh`]), from the cache when it holds this exact text.
    pub fn mesh(&self, text: &str, file: &Path) -> Result<(Mesh, Variables), Diagnostic> {
        if self.file.is_none() {
            return parse::parse_mesh(text, file);
        }
        let key = key_of(b"mesh", text);
        if let Some((mut mesh, vars)) = self.stored.get(&key).and_then(|b| decode_mesh(b)) {
            mesh.path = file.to_path_buf();
            lock(&self.used).insert(key);
            return Ok((mesh, vars));
        }
        let (mesh, vars) = parse::parse_mesh(text, file)?;
        lock(&self.added).insert(key, encode_mesh(&mesh, &vars));
        Ok((mesh, vars))
    }

    /// Writes the cache if this load parsed something new; errors are ignored
    /// (it is only a cache).
    pub fn save(self) {
        let Some(file) = self.file else { return };
        let added = self.added.into_inner().unwrap_or_else(|e| e.into_inner());
        if added.is_empty() {
            return;
        }
        let used = self.used.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut entries: Vec<(Key, Vec<u8>)> = added.into_iter().collect();
        let mut unused = Vec::new();
        for (k, v) in self.stored {
            if used.contains(&k) {
                entries.push((k, v));
            } else {
                unused.push((k, v));
            }
        }
        unused.sort_by_key(|e| e.0);
        entries.extend(unused.into_iter().take(KEEP_UNUSED));
        entries.sort_by_key(|e| e.0);
        entries.dedup_by(|a, b| a.0 == b.0);
        let _ = crate::durable::write(&file, &encode_file(&entries));
    }
}

/// Whether `m` gives a secret a fixed value: such a manifest is parsed from
/// its text at every load, since its binary form does not hold the value
/// (`manifest::codec`) and the upload step needs it.
fn has_fixed_values(m: &ServiceManifest) -> bool {
    let s = &m.secrets;
    s.global.iter().chain(&s.local).any(|s| s.value.is_some())
}

fn parse_service(rendered: &str, file: &Path) -> Result<ServiceManifest, Diagnostic> {
    let mut m: ServiceManifest = parse::from_yaml(rendered, file)?;
    m.path = file.to_path_buf();
    Ok(m)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn encode_file(entries: &[(Key, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + entries.iter().map(|e| e.1.len() + 40).sum::<usize>());
    out.extend_from_slice(MAGIC);
    put_bytes(&mut out, version().as_bytes());
    put_u64(&mut out, entries.len() as u64);
    for (k, v) in entries {
        out.extend_from_slice(k);
        put_bytes(&mut out, v);
    }
    seal(&mut out);
    out
}

fn decode_file(bytes: &[u8]) -> Option<HashMap<Key, Vec<u8>>> {
    let mut r = Reader(unseal(bytes)?.strip_prefix(MAGIC)?);
    if r.bytes()? != version().as_bytes() {
        return None;
    }
    let count = r.len()?;
    let mut map = HashMap::with_capacity(count.min(1 << 16));
    for _ in 0..count {
        let key: Key = r.take(32)?.try_into().ok()?;
        map.insert(key, r.bytes()?.to_vec());
    }
    r.is_empty().then_some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "apiVersion: scone/5.8\nkind: genImage\nbuild:\n  name: api\n  kind: binary\n  to: r/api:1\n  pwd: /app\n  command: app\n";

    #[test]
    fn a_saved_parse_is_served_and_other_text_misses() {
        let dir = tempfile::tempdir().unwrap();
        let file = Path::new("svc/service.yml");
        let cache = ParseCache::open(dir.path());
        let first = cache.service(TEXT, file).unwrap();
        cache.save();
        let bytes = std::fs::read(dir.path().join(FILE_NAME)).unwrap();

        let cache = ParseCache::open(dir.path());
        assert_eq!(cache.stored.len(), 1);
        let other = Path::new("other/service.yml");
        let hit = cache.service(TEXT, other).unwrap();
        assert_eq!(
            hit.path, other,
            "the path is the caller's, not the cached one"
        );
        assert_eq!(format!("{:?}", hit.build), format!("{:?}", first.build));
        let edited = TEXT.replace("name: api", "name: web");
        assert_eq!(
            cache.service(&edited, file).unwrap().build.name.value,
            "web"
        );
        assert_eq!(lock(&cache.added).len(), 1, "the edited text was parsed");
        assert_eq!(lock(&cache.used).len(), 1);
        cache.save();
        assert_ne!(std::fs::read(dir.path().join(FILE_NAME)).unwrap(), bytes);
        assert_eq!(ParseCache::open(dir.path()).stored.len(), 2);
    }

    #[test]
    fn a_damaged_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ParseCache::open(dir.path());
        cache.service(TEXT, Path::new("s.yml")).unwrap();
        cache.save();
        let path = dir.path().join(FILE_NAME);
        let good = std::fs::read(&path).unwrap();
        // Change `api` to `apx` inside the stored entry: the checksum refuses it.
        let at = good.windows(3).rposition(|w| w == b"api").unwrap();
        let mut bad = good.clone();
        bad[at + 2] = b'x';
        std::fs::write(&path, &bad).unwrap();
        let cache = ParseCache::open(dir.path());
        assert!(cache.stored.is_empty());
        assert_eq!(
            cache
                .service(TEXT, Path::new("s.yml"))
                .unwrap()
                .build
                .name
                .value,
            "api"
        );
        std::fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(ParseCache::open(dir.path()).stored.is_empty());
        std::fs::write(&path, &good).unwrap();
        assert_eq!(ParseCache::open(dir.path()).stored.len(), 1);
    }

    #[test]
    fn a_meshfile_is_cached_with_its_variables() {
        let dir = tempfile::tempdir().unwrap();
        let text = "apiVersion: scone/5.8\nkind: mesh\npolicy:\n  namespace: \"{{cas_cas_name}}-x\"\ncas:\n  - name: cas\n    cas_url: c:1\n";
        let cache = ParseCache::open(dir.path());
        assert!(!cache.knows_mesh(text));
        let (mesh, vars) = cache.mesh(text, Path::new("a/mesh.yml")).unwrap();
        assert_eq!(mesh.policy.namespace.value, "cas-x");
        cache.save();
        let cache = ParseCache::open(dir.path());
        assert!(cache.knows_mesh(text));
        assert!(!cache.knows_mesh(&text.replace("-x", "-y")));
        let (hit, hit_vars) = cache.mesh(text, Path::new("b/mesh.yml")).unwrap();
        assert_eq!(hit.path, Path::new("b/mesh.yml"));
        assert_eq!(hit.policy.namespace.value, "cas-x");
        assert_eq!(hit_vars, vars);
        assert_eq!(lock(&cache.used).len(), 1);
        assert!(lock(&cache.added).is_empty());
    }

    #[test]
    fn no_store_folder_no_cache_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("target/.scone");
        let cache = ParseCache::open(&missing);
        cache.service(TEXT, Path::new("s.yml")).unwrap();
        cache.save();
        assert!(!missing.exists());
    }

    #[test]
    fn a_failed_parse_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ParseCache::open(dir.path());
        assert!(cache.service("kind: [", Path::new("s.yml")).is_err());
        assert!(lock(&cache.added).is_empty());
        cache.save();
        assert!(!dir.path().join(FILE_NAME).exists());
    }
}
