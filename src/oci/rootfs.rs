//! Read files out of a stack of layer blobs (bottom first) as the container would see
//! them: later layers win, whiteouts (`.wh.NAME`, `.wh..wh..opq`) delete, and symlinks
//! (absolute or relative) are followed inside the image root, never outside it. Every
//! regular file's mode, size and SHA-256 are taken as its layer is read, so the whole
//! file system can be listed for the fspf tag ([`RootFs::entries`]) without reading a
//! layer again.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::error::{io_at, OciError, Result};

const MAX_SYMLINK_HOPS: usize = 40;

/// What a path is in one layer or in the merged file system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Node {
    Dir,
    /// A regular file stored in layer `layer` (index into the stack) under `name`.
    File {
        layer: usize,
        name: String,
        meta: FileMeta,
    },
    Symlink(String),
    /// A hard link to another path of the image. In the merged view, only one
    /// whose target is not in the image: one that is, is its target's node.
    Hardlink(String),
    /// A device, a fifo, …: its tar type flag and permission bits.
    Other {
        flag: u8,
        mode: u32,
    },
}

/// A regular file as its layer holds it: what the fspf tag protects of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Permission bits (`0o7777`: setuid, setgid and sticky included).
    pub mode: u32,
    pub size: u64,
    /// SHA-256 of the contents, hex.
    pub sha256: String,
}

/// One path of the merged file system, as [`RootFs::entries`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry<'a> {
    Dir,
    File(&'a FileMeta),
    Symlink(&'a str),
    /// A hard link whose target is not in the image.
    DanglingHardlink(&'a str),
    /// A device, a fifo, …: its tar type flag and permission bits.
    Other {
        flag: u8,
        mode: u32,
    },
}

/// What one layer says about the file system, read once from its tar stream: the
/// paths it adds (a [`Node::File`]'s `layer` is 0 here, set when merged), its opaque
/// folders and whiteouts. A pure function of the layer's bytes, so it can be kept
/// by the layer's digest and merged without reading the layer again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerIndex {
    added: Vec<(String, Node)>,
    opaque: Vec<String>,
    whiteouts: Vec<String>,
}

impl LayerIndex {
    /// Reads the layer blob at `layer` (gzip, zstd or plain tar).
    pub fn read(layer: &Path) -> Result<LayerIndex> {
        Self::read_capturing(layer, &mut |_, _| false).map(|(index, _)| index)
    }

    /// [`LayerIndex::read`], also keeping the contents of the regular files `keep`
    /// asks for (by tar entry name and size), in the same pass: a file wanted from a
    /// compressed layer is then not decompressed a second time.
    pub fn read_capturing(
        layer: &Path,
        keep: &mut dyn FnMut(&str, u64) -> bool,
    ) -> Result<(LayerIndex, Vec<KeptFile>)> {
        Self::scan(layer, keep, true)
    }

    /// [`LayerIndex::read_capturing`]; `hash`: take each regular file's
    /// SHA-256 (else its `sha256` is empty: an index only [`read_file`] uses,
    /// never listed, kept or merged into a view that leaves it).
    fn scan(
        layer: &Path,
        keep: &mut dyn FnMut(&str, u64) -> bool,
        hash: bool,
    ) -> Result<(LayerIndex, Vec<KeptFile>)> {
        let mut kept = Vec::new();
        let mut archive = tar::Archive::new(open_layer(layer)?);
        let mut index = LayerIndex {
            added: Vec::new(),
            opaque: Vec::new(),
            whiteouts: Vec::new(),
        };
        let bad = |e: std::io::Error| OciError::io(format!("reading layer {}", layer.display()), e);
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = normalize(&raw);
            if path.is_empty() {
                continue;
            }
            // A GNU sparse file is a regular file whose holes the archive
            // leaves out: read, it is its whole content (holes as zeros), as
            // a container runtime unpacks it.
            let regular = matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse
            );
            let mode = entry.header().mode().map_err(bad)? & 0o7777;
            let meta = if regular {
                let mut size = 0u64;
                let mut content = keep(&raw, entry.size()).then(Vec::new);
                let mut hasher = Sha256::new();
                let mut buf = vec![0u8; entry.size().min(256 << 10) as usize + 1];
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                        Err(e) => return Err(bad(e)),
                    };
                    if hash {
                        hasher.update(&buf[..n]);
                    }
                    size += n as u64;
                    if let Some(content) = &mut content {
                        content.extend_from_slice(&buf[..n]);
                    }
                }
                if let Some(content) = content {
                    kept.push((raw.clone(), content));
                }
                Some(FileMeta {
                    mode,
                    size,
                    sha256: if hash {
                        hex::encode(hasher.finalize())
                    } else {
                        String::new()
                    },
                })
            } else {
                None
            };
            let (dir, name) = match path.rsplit_once('/') {
                Some((d, n)) => (d.to_string(), n.to_string()),
                None => (String::new(), path.clone()),
            };
            if name == ".wh..wh..opq" {
                index.opaque.push(dir);
                continue;
            }
            if let Some(hidden) = name.strip_prefix(".wh.") {
                index.whiteouts.push(if dir.is_empty() {
                    hidden.to_string()
                } else {
                    format!("{dir}/{hidden}")
                });
                continue;
            }
            let link = || {
                entry
                    .link_name_bytes()
                    .map(|l| String::from_utf8_lossy(&l).into_owned())
                    .unwrap_or_default()
            };
            let node = match (entry.header().entry_type(), meta) {
                (_, Some(meta)) => Node::File {
                    layer: 0,
                    name: raw.clone(),
                    meta,
                },
                (tar::EntryType::Directory, _) => Node::Dir,
                (tar::EntryType::Symlink, _) => Node::Symlink(link()),
                (tar::EntryType::Link, _) => Node::Hardlink(normalize(&link())),
                (other, _) => Node::Other {
                    flag: other.as_byte(),
                    mode,
                },
            };
            index.added.push((path, node));
        }
        Ok((index, kept))
    }
}

/// A file [`LayerIndex::read_capturing`] kept: its tar entry name and contents.
pub type KeptFile = (String, Vec<u8>);

/// Where a regular file of the merged file system is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileLocation {
    /// Index into the stack of layers (bottom first).
    pub layer: usize,
    /// The tar entry's name, as written in the layer.
    pub name: String,
}

/// Open a layer blob, decompressing gzip or zstd (sniffed from the magic bytes).
pub fn open_layer(path: &Path) -> Result<Box<dyn Read>> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(io_at("opening layer", path))?;
    let n = file
        .read(&mut magic)
        .map_err(io_at("reading layer", path))?;
    let file = BufReader::new(File::open(path).map_err(io_at("opening layer", path))?);
    Ok(if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(file))
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(zstd::Decoder::new(file).map_err(io_at("reading zstd layer", path))?)
    } else {
        Box::new(file)
    })
}

/// `./a/b/` → `a/b`; `/` → ``.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn remove_tree(map: &mut BTreeMap<String, Node>, path: &str, keep_self: bool) {
    let prefix = format!("{path}/");
    let children: Vec<String> = map
        .range(prefix.clone()..)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, _)| k.clone())
        .collect();
    for child in children {
        map.remove(&child);
    }
    if !keep_self {
        map.remove(path);
    }
}

/// The merged view of a stack of layers (metadata only; contents are read on demand).
pub struct RootFs {
    layers: Vec<PathBuf>,
    nodes: BTreeMap<String, Node>,
}

impl RootFs {
    /// Index the layers (bottom first).
    pub fn open(layers: &[PathBuf]) -> Result<RootFs> {
        let indexes = layers
            .iter()
            .map(|l| LayerIndex::read(l))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self::merge(layers, &indexes))
    }

    /// The merged view of `layers` from their indexes (`indexes[i]` read from
    /// `layers[i]`): what [`RootFs::open`] gives, without reading a layer.
    pub fn merge<I: std::borrow::Borrow<LayerIndex>>(layers: &[PathBuf], indexes: &[I]) -> RootFs {
        let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
        for (index, layer) in indexes.iter().enumerate() {
            let layer = layer.borrow();
            for dir in &layer.opaque {
                remove_tree(&mut nodes, dir, true);
            }
            for path in &layer.whiteouts {
                remove_tree(&mut nodes, path, false);
            }
            for (path, node) in &layer.added {
                if *node != Node::Dir {
                    remove_tree(&mut nodes, path, true);
                }
                let node = match node {
                    Node::File { name, meta, .. } => Node::File {
                        layer: index,
                        name: name.clone(),
                        meta: meta.clone(),
                    },
                    // One file under two names: what the target is when the
                    // link is made (a later layer may replace or delete the
                    // target's name, not the file).
                    Node::Hardlink(target) => match nodes.get(target) {
                        Some(
                            linked @ (Node::File { .. } | Node::Symlink(_) | Node::Other { .. }),
                        ) => linked.clone(),
                        _ => node.clone(),
                    },
                    other => other.clone(),
                };
                nodes.insert(path.clone(), node);
            }
        }
        RootFs {
            layers: layers.to_vec(),
            nodes,
        }
    }

    fn node(&self, path: &str) -> Option<Node> {
        if path.is_empty() {
            return Some(Node::Dir);
        }
        match self.nodes.get(path) {
            Some(n) => Some(n.clone()),
            None => {
                // Parents a layer did not list explicitly still exist.
                let prefix = format!("{path}/");
                self.nodes
                    .range(prefix.clone()..)
                    .next()
                    .filter(|(k, _)| k.starts_with(&prefix))
                    .map(|_| Node::Dir)
            }
        }
    }

    /// Follow symlinks: the real path (no leading `/`) of `path`, or None if it does not exist.
    pub fn resolve(&self, path: &str) -> Result<Option<String>> {
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(part);
            let joined = current.join("/");
            match self.node(&joined) {
                None => return Ok(None),
                Some(Node::Symlink(target)) => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(OciError::invalid(
                            format!("path /{path} in the image"),
                            "too many levels of symbolic links",
                        ));
                    }
                    current.pop();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(target.split('/').rev().map(str::to_string));
                }
                Some(_) => {}
            }
        }
        Ok(Some(current.join("/")))
    }

    /// The content of the regular file at `path` (symlinks followed), None if absent.
    /// A directory or special file at `path` is an error.
    pub fn read_file(&self, path: &str) -> Result<Option<Vec<u8>>> {
        match self.locate(path)? {
            Some(at) => self.read_located(&at),
            None => Ok(None),
        }
    }

    /// Where the regular file at `path` (symlinks followed) is stored, None if absent.
    /// A directory or special file at `path` is an error.
    pub fn locate(&self, path: &str) -> Result<Option<FileLocation>> {
        let Some(real) = self.resolve(path)? else {
            return Ok(None);
        };
        let mut node = self.node(&real);
        if let Some(Node::Hardlink(target)) = &node {
            node = self.node(target);
        }
        let (layer, name) = match node {
            Some(Node::File { layer, name, .. }) => (layer, name),
            None => return Ok(None),
            Some(_) => {
                return Err(OciError::invalid(
                    format!("path /{path} in the image"),
                    "is not a regular file",
                ))
            }
        };
        Ok(Some(FileLocation { layer, name }))
    }

    /// The content of a file [`RootFs::locate`] found.
    pub fn read_located(&self, at: &FileLocation) -> Result<Option<Vec<u8>>> {
        let Some(blob) = self.layers.get(at.layer) else {
            return Ok(None);
        };
        let name = &at.name;
        let mut archive = tar::Archive::new(open_layer(blob)?);
        let bad = |e: std::io::Error| OciError::io(format!("reading layer {}", blob.display()), e);
        // A layer may hold a name twice: the last one is what a runtime
        // unpacks, and what the index describes.
        let mut found = None;
        for entry in archive.entries().map_err(bad)? {
            let mut entry = entry.map_err(bad)?;
            if String::from_utf8_lossy(&entry.path_bytes()) == name.as_str() {
                let mut content = Vec::new();
                entry.read_to_end(&mut content).map_err(bad)?;
                found = Some(content);
            }
        }
        Ok(found)
    }

    /// Every path of the merged file system (no leading `/`), sorted by its
    /// bytes, with what it is.
    pub fn entries(&self) -> impl Iterator<Item = (&str, Entry<'_>)> {
        self.nodes.iter().map(|(path, node)| {
            let entry = match node {
                Node::Dir => Entry::Dir,
                Node::File { meta, .. } => Entry::File(meta),
                Node::Symlink(target) => Entry::Symlink(target),
                Node::Hardlink(target) => Entry::DanglingHardlink(target),
                Node::Other { flag, mode } => Entry::Other {
                    flag: *flag,
                    mode: *mode,
                },
            };
            (path.as_str(), entry)
        })
    }

    /// Find `name` like a shell would on `path_var` (`/usr/local/bin:/usr/bin:/bin`):
    /// the absolute real path (symlinks followed) of the first regular file found.
    /// A `name` containing `/` is resolved as a path (relative to `/`).
    pub fn which(&self, name: &str, path_var: &str) -> Result<Option<String>> {
        let candidates: Vec<String> = if name.contains('/') {
            vec![name.to_string()]
        } else {
            path_var
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| format!("{}/{name}", d.trim_end_matches('/')))
                .collect()
        };
        for candidate in candidates {
            if let Some(real) = self.resolve(&candidate)? {
                match self.node(&real) {
                    Some(Node::File { .. }) | Some(Node::Hardlink(_)) => {
                        return Ok(Some(format!("/{real}")))
                    }
                    _ => continue,
                }
            }
        }
        Ok(None)
    }
}

/// Read one file (symlinks followed, whiteouts honoured) from a stack of layer
/// blobs. Each layer is read once, without hashing its files: the file is kept
/// as it goes by, and a layer is read again only when the path reaches it
/// through a link.
pub fn read_file(layers: &[PathBuf], path: &str) -> Result<Option<Vec<u8>>> {
    let wanted = normalize(path);
    let mut indexes = Vec::with_capacity(layers.len());
    let mut kept = Vec::new();
    for (layer, blob) in layers.iter().enumerate() {
        let (index, files) =
            LayerIndex::scan(blob, &mut |name, _| normalize(name) == wanted, false)?;
        kept.extend(files.into_iter().map(|(name, bytes)| (layer, name, bytes)));
        indexes.push(index);
    }
    let fs = RootFs::merge(layers, &indexes);
    let Some(at) = fs.locate(path)? else {
        return Ok(None);
    };
    // The last entry of that name in its layer: the one the view holds.
    match kept
        .into_iter()
        .rev()
        .find(|(layer, name, _)| *layer == at.layer && *name == at.name)
    {
        Some((_, _, bytes)) => Ok(Some(bytes)),
        None => fs.read_located(&at),
    }
}

/// Find an executable on `path_var` in a stack of layer blobs; returns its real path.
pub fn which(layers: &[PathBuf], name: &str, path_var: &str) -> Result<Option<String>> {
    RootFs::open(layers)?.which(name, path_var)
}

#[cfg(test)]
mod tests {
    use super::super::tar::{write_layer, Compression, LayerEntry};
    use super::*;

    fn layer(dir: &Path, entries: &[LayerEntry]) -> PathBuf {
        let blob = write_layer(entries, 0, Compression::Gzip, dir).unwrap();
        dir.join("sha256")
            .join(blob.digest.trim_start_matches("sha256:"))
    }

    #[test]
    fn symlinks_whiteouts_and_which() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let py = src.join("py");
        std::fs::write(&py, b"ELF python").unwrap();
        let gone = src.join("gone");
        std::fs::write(&gone, b"old").unwrap();
        let out = tmp.path().join("blobs");
        let bottom = layer(
            &out,
            &[
                LayerEntry::file("usr/bin/python3.11", py.clone(), 10, true),
                LayerEntry::symlink("usr/bin/python3", "python3.11"),
                LayerEntry::symlink("bin", "usr/bin"),
                LayerEntry::file("etc/old", gone.clone(), 3, false),
                LayerEntry::file("opt/x/a", gone.clone(), 3, false),
            ],
        );
        let empty = src.join("empty");
        std::fs::write(&empty, b"").unwrap();
        let top = layer(
            &out,
            &[
                LayerEntry::file("etc/.wh.old", empty.clone(), 0, false),
                LayerEntry::file("opt/x/.wh..wh..opq", empty.clone(), 0, false),
                LayerEntry::file("opt/x/b", py.clone(), 10, false),
            ],
        );
        let layers = vec![bottom, top];
        let fs = RootFs::open(&layers).unwrap();
        assert_eq!(fs.read_file("bin/python3").unwrap().unwrap(), b"ELF python");
        assert_eq!(
            fs.resolve("/bin/python3").unwrap().unwrap(),
            "usr/bin/python3.11"
        );
        assert_eq!(
            fs.which("python3", "/usr/local/bin:/bin").unwrap().unwrap(),
            "/usr/bin/python3.11"
        );
        assert_eq!(fs.which("nope", "/bin").unwrap(), None);
        assert_eq!(fs.read_file("etc/old").unwrap(), None);
        assert_eq!(fs.read_file("opt/x/a").unwrap(), None);
        assert_eq!(fs.read_file("opt/x/b").unwrap().unwrap(), b"ELF python");
        assert!(fs.read_file("usr/bin").is_err());
        assert_eq!(
            read_file(&layers, "../../usr/bin/python3")
                .unwrap()
                .unwrap(),
            b"ELF python"
        );

        // The same view merged from indexes (kept as JSON), and a capturing read
        // keeps exactly the files asked for.
        let indexes: Vec<LayerIndex> = layers
            .iter()
            .map(|l| {
                let json = serde_json::to_vec(&LayerIndex::read(l).unwrap()).unwrap();
                serde_json::from_slice(&json).unwrap()
            })
            .collect();
        let merged = RootFs::merge(&layers, &indexes);
        assert_eq!(merged.nodes, fs.nodes);
        let at = merged.locate("bin/python3").unwrap().unwrap();
        assert_eq!(
            at,
            FileLocation {
                layer: 0,
                name: "usr/bin/python3.11".into()
            }
        );
        assert_eq!(merged.read_located(&at).unwrap().unwrap(), b"ELF python");
        assert_eq!(merged.locate("opt/x/b").unwrap().unwrap().layer, 1);
        let (index, kept) =
            LayerIndex::read_capturing(&layers[0], &mut |name, _| name.contains("python")).unwrap();
        assert_eq!(index, indexes[0]);
        assert_eq!(
            kept,
            vec![("usr/bin/python3.11".to_string(), b"ELF python".to_vec())],
            "regular files only: the python3 symlink is not kept"
        );
    }

    /// A plain tar layer holding `files` in this order (a name may repeat).
    fn raw_layer(path: &Path, files: &[(&str, &[u8])]) -> PathBuf {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in files {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut header, name, *bytes).unwrap();
        }
        std::fs::write(path, builder.into_inner().unwrap()).unwrap();
        path.to_path_buf()
    }

    #[test]
    fn a_name_held_twice_reads_as_the_last() {
        let tmp = tempfile::tempdir().unwrap();
        let layers = vec![
            raw_layer(
                &tmp.path().join("bottom"),
                &[("etc/status", b"bottom"), ("usr/bin/py", b"first")],
            ),
            raw_layer(
                &tmp.path().join("top"),
                &[
                    ("var/status", b"one"),
                    ("var/other", b"x"),
                    ("var/status", b"two"),
                ],
            ),
        ];
        // As a runtime unpacks it: the later entry replaces the earlier.
        assert_eq!(read_file(&layers, "var/status").unwrap().unwrap(), b"two");
        assert_eq!(
            read_file(&layers, "/etc/status").unwrap().unwrap(),
            b"bottom"
        );
        assert_eq!(read_file(&layers, "nope").unwrap(), None);
        let fs = RootFs::open(&layers).unwrap();
        assert_eq!(fs.read_file("var/status").unwrap().unwrap(), b"two");
        let Some((_, Entry::File(meta))) = fs.entries().find(|(p, _)| *p == "var/status") else {
            panic!("var/status is a file of the view");
        };
        assert_eq!(meta.sha256, hex::encode(Sha256::digest(b"two")));
        assert_eq!(meta.size, 3);
    }

    #[test]
    fn reading_one_file_through_a_link_reads_its_layer_again() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("py");
        std::fs::write(&src, b"ELF").unwrap();
        let out = tmp.path().join("blobs");
        let layers = vec![layer(
            &out,
            &[
                LayerEntry::file("usr/lib/dpkg/status", src.clone(), 3, false),
                LayerEntry::symlink("var/lib/dpkg", "../../usr/lib/dpkg"),
            ],
        )];
        assert_eq!(
            read_file(&layers, "var/lib/dpkg/status").unwrap().unwrap(),
            b"ELF"
        );
    }
}
