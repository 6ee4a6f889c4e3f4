//! File-system protection: the canonical list of what an enclave reads from its image
//! — every regular file, symbolic link and special file of the image's merged file
//! system (the base's, the packages' and the service's own layers, whiteouts applied) —
//! and its digest, the `fspf_tag` written into the policy. The serialization is
//! "scone fspf v2" (see docs/enclave.md): a header line, then one line per entry
//! sorted by path bytes: a file as `<sha256 hex> <mode, 4 octal digits> <size> <path
//! length>:<path>\n`, a symbolic link as `link <target length>:<target> <path
//! length>:<path>\n`, anything else (a device, a fifo) as `node <tar type flag> <mode>
//! <path length>:<path>\n` (a file's line starts with a hex digit, a link's with `l`,
//! a node's with `n`: no two read alike). The length prefixes keep any path or target
//! (even one with spaces or newlines) unambiguous. A hard link is the file it links to;
//! folders are not entries (what is in them is).
//!
//! The whole file system, not only the service's files: a python service's interpreter
//! runs its standard library, `site.py` and `sitecustomize.py` from the base image, and
//! MRENCLAVE measures only the interpreter. Were the base's files left out, whoever
//! runs the image could change what the service does and keep the policy's tag.
//! A link is protected as what it points to: were links left out, pointing one of a
//! service's links at another of its files (`config.py` → `debug_config.py`) would
//! change what the service runs but neither the tag nor the policy.

use sha2::{Digest, Sha256};

use crate::oci::rootfs::{Entry, RootFs};

/// First line of the serialization.
pub const FSPF_HEADER: &str = "scone fspf v2\n";

/// One protected file as it is inside the image.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FspfEntry {
    /// Absolute path in the image, `/`-separated (e.g. `/python/print_env.py`).
    pub path: String,
    /// Permission bits (masked to `0o7777`).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the contents.
    pub sha256: [u8; 32],
    /// A symbolic link's target: the entry is that link (its mode, size and
    /// SHA-256 are 0).
    pub link: Option<String>,
    /// A device, a fifo, …: its tar type flag (its size and SHA-256 are 0).
    pub special: Option<u8>,
}

impl FspfEntry {
    /// The entry for a file with these contents.
    pub fn from_contents(path: impl Into<String>, mode: u32, contents: &[u8]) -> Self {
        FspfEntry {
            path: path.into(),
            mode: mode & 0o7777,
            size: contents.len() as u64,
            sha256: Sha256::digest(contents).into(),
            link: None,
            special: None,
        }
    }

    /// The entry for a file whose contents `reader` yields, read in pieces:
    /// a file of any size is hashed in constant memory (a model of gigabytes
    /// in a service's folder is never held whole). `expected`: the size it
    /// should have, to size the pieces (a small file is read into a buffer
    /// of its size, not one of 256 KiB zeroed for each of thousands of
    /// files); the entry has the size read.
    pub fn from_reader(
        path: impl Into<String>,
        mode: u32,
        mut reader: impl std::io::Read,
        expected: u64,
    ) -> std::io::Result<Self> {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; (expected.min(256 * 1024) + 1) as usize];
        let mut size = 0u64;
        loop {
            let n = match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        Ok(FspfEntry {
            path: path.into(),
            mode: mode & 0o7777,
            size,
            sha256: hasher.finalize().into(),
            link: None,
            special: None,
        })
    }

    /// The entry for a symbolic link at `path` to `target`.
    pub fn link(path: impl Into<String>, target: impl Into<String>) -> Self {
        FspfEntry {
            path: path.into(),
            mode: 0,
            size: 0,
            sha256: [0; 32],
            link: Some(target.into()),
            special: None,
        }
    }

    /// The entry for a special file (tar type `flag`) at `path`.
    pub fn special(path: impl Into<String>, flag: u8, mode: u32) -> Self {
        FspfEntry {
            path: path.into(),
            mode: mode & 0o7777,
            size: 0,
            sha256: [0; 32],
            link: None,
            special: Some(flag),
        }
    }
}

/// The entries of every file, link and special file of `fs`, an image's merged
/// file system. A hard link whose target is not in the image is an error.
pub fn image_entries(fs: &RootFs) -> Result<Vec<FspfEntry>, String> {
    let mut out = Vec::new();
    for (path, entry) in fs.entries() {
        let path = format!("/{path}");
        out.push(match entry {
            Entry::Dir => continue,
            Entry::File(meta) => FspfEntry {
                mode: meta.mode & 0o7777,
                size: meta.size,
                sha256: hex::decode(&meta.sha256)
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| format!("{path}: a SHA-256 that is not 32 bytes"))?,
                link: None,
                special: None,
                path,
            },
            Entry::Symlink(target) => FspfEntry::link(path, target),
            Entry::Other { flag, mode } => FspfEntry::special(path, flag, mode),
            Entry::DanglingHardlink(target) => {
                return Err(format!(
                    "{path} is a hard link to /{target}, which is not in the image"
                ))
            }
        });
    }
    Ok(out)
}

/// Sorts `entries` by path (then by the other fields, so equal paths are ordered too)
/// and returns the canonical serialization.
pub fn canonical_bytes(entries: &mut [FspfEntry]) -> Vec<u8> {
    entries.sort();
    let mut out = Vec::with_capacity(FSPF_HEADER.len() + entries.len() * 100);
    out.extend_from_slice(FSPF_HEADER.as_bytes());
    for e in entries.iter() {
        let line = match (&e.link, e.special) {
            (Some(target), _) => format!("link {}:{target} {}:", target.len(), e.path.len()),
            (None, Some(flag)) => format!(
                "node {} {:04o} {}:",
                char::from(flag).escape_default(),
                e.mode & 0o7777,
                e.path.len()
            ),
            (None, None) => format!(
                "{} {:04o} {} {}:",
                hex::encode(e.sha256),
                e.mode & 0o7777,
                e.size,
                e.path.len()
            ),
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(e.path.as_bytes());
        out.push(b'\n');
    }
    out
}

/// The `fspf_tag`: hex SHA-256 of [`canonical_bytes`]. Sorts `entries` in place.
pub fn fspf_tag(entries: &mut [FspfEntry]) -> String {
    hex::encode(Sha256::digest(canonical_bytes(entries)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<FspfEntry> {
        vec![
            FspfEntry::from_contents("/usr/bin/python3.11", 0o755, b"\x7fELF binary"),
            FspfEntry::from_contents("/python/print_env.py", 0o644, b"print('hi')\n"),
        ]
    }

    /// Hands out its bytes a few at a time, interrupted before each piece.
    struct Trickle {
        bytes: Vec<u8>,
        at: usize,
        interrupted: bool,
    }

    impl std::io::Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.interrupted = !self.interrupted;
            if self.interrupted {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let n = buf.len().min(7_919).min(self.bytes.len() - self.at);
            buf[..n].copy_from_slice(&self.bytes[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    #[test]
    fn a_file_read_in_pieces_is_the_entry_of_its_whole_contents() {
        // Empty, under one buffer, and across several (the buffer is 256 KiB).
        for len in [0, 1, 300_000, 1 << 20] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let whole = FspfEntry::from_contents("/app/model.bin", 0o100755, &bytes);
            let read = FspfEntry::from_reader(
                "/app/model.bin",
                0o100755,
                Trickle {
                    bytes: bytes.clone(),
                    at: 0,
                    interrupted: false,
                },
                // The size it should have, or a wrong one: only the
                // pieces differ.
                if len % 2 == 0 { len as u64 } else { 3 },
            )
            .expect("read");
            assert_eq!(read, whole, "{len} bytes");
            assert_eq!(read.size, len as u64);
            assert_eq!(read.mode, 0o755);
        }
        // A read that fails is the error, not an entry of what came before.
        struct Failing;
        impl std::io::Read for Failing {
            fn read(&mut self, _: &mut [u8]) -> std::io::Result<usize> {
                Err(std::io::Error::other("disk gone"))
            }
        }
        let err = FspfEntry::from_reader("/a", 0o644, Failing, 10).expect_err("fails");
        assert_eq!(err.to_string(), "disk gone");
    }

    #[test]
    fn order_of_input_does_not_matter() {
        let mut a = sample();
        let mut b = sample();
        b.reverse();
        assert_eq!(fspf_tag(&mut a), fspf_tag(&mut b));
        assert_eq!(a[0].path, "/python/print_env.py");
    }

    #[test]
    fn serialization_is_the_documented_format() {
        let mut e = vec![FspfEntry::from_contents("/a b", 0o100644, b"")];
        let text = String::from_utf8(canonical_bytes(&mut e)).expect("utf-8");
        assert_eq!(
            text,
            "scone fspf v2\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0644 0 4:/a b\n"
        );
    }

    #[test]
    fn content_mode_and_path_change_the_tag() {
        let base = fspf_tag(&mut sample());
        let mut changed = sample();
        changed[1] = FspfEntry::from_contents("/python/print_env.py", 0o644, b"print('bye')\n");
        assert_ne!(fspf_tag(&mut changed), base);
        let mut mode = sample();
        mode[1].mode = 0o600;
        assert_ne!(fspf_tag(&mut mode), base);
        let mut renamed = sample();
        renamed[1].path = "/python/print_env2.py".to_string();
        assert_ne!(fspf_tag(&mut renamed), base);
        assert_eq!(base.len(), 64);
    }

    #[test]
    fn a_link_is_a_line_of_its_own_and_where_it_points_is_in_the_tag() {
        let mut e = vec![
            FspfEntry::link("/app/config.py", "settings/prod.py"),
            FspfEntry::from_contents("/app/a", 0o644, b""),
        ];
        let text = String::from_utf8(canonical_bytes(&mut e)).expect("utf-8");
        assert_eq!(
            text,
            "scone fspf v2\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 0644 0 6:/app/a\nlink 16:settings/prod.py 14:/app/config.py\n"
        );
        // Pointed at another of the service's files: another tag.
        let with = |target: &str| {
            let mut entries = sample();
            entries.push(FspfEntry::link("/python/current.py", target));
            fspf_tag(&mut entries)
        };
        let prod = with("print_env.py");
        assert_ne!(with("debug_env.py"), prod);
        // Neither left out, nor the same as a file that holds the target's text.
        assert_ne!(fspf_tag(&mut sample()), prod);
        let mut as_file = sample();
        as_file.push(FspfEntry::from_contents(
            "/python/current.py",
            0o777,
            b"print_env.py",
        ));
        assert_ne!(fspf_tag(&mut as_file), prod);
        // A target with a space or a newline is still one target.
        let mut odd = vec![FspfEntry::link("/a", "b 1:/c\nlink 0: 2:/d")];
        let mut plain = vec![FspfEntry::link("/a", "b"), FspfEntry::link("/c", "")];
        assert_ne!(fspf_tag(&mut odd), fspf_tag(&mut plain));
    }

    /// A plain tar layer of `entries` (path, tar type, mode, contents or link
    /// target) in `dir`.
    fn layer(
        dir: &std::path::Path,
        name: &str,
        entries: &[(&str, tar::EntryType, u32, &[u8])],
    ) -> std::path::PathBuf {
        let path = dir.join(name);
        let mut b = tar::Builder::new(std::fs::File::create(&path).unwrap());
        for (p, kind, mode, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(*kind);
            h.set_mode(*mode);
            if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                h.set_size(0);
                b.append_link(&mut h, p, std::str::from_utf8(data).unwrap())
                    .unwrap();
            } else {
                h.set_size(data.len() as u64);
                b.append_data(&mut h, p, *data).unwrap();
            }
        }
        b.finish().unwrap();
        path
    }

    /// The whole merged file system is protected, each kind of entry by its
    /// own line: the base's files (a setuid bit and a replaced file's new mode
    /// included), a hard link as the file it links to even once a later layer
    /// deletes the target's name, a link, a fifo; not what whiteouts and an
    /// opaque folder removed, nor folders.
    #[test]
    fn the_tag_covers_every_file_of_the_image_as_its_layers_merge() {
        use tar::EntryType::{Directory, Fifo, Link, Regular, Symlink};
        let tmp = tempfile::tempdir().unwrap();
        let base = layer(
            tmp.path(),
            "base",
            &[
                ("usr/", Directory, 0o755, b""),
                ("usr/bin/su", Regular, 0o4755, b"su"),
                ("usr/bin/su2", Link, 0o4755, b"usr/bin/su"),
                ("bin", Symlink, 0o777, b"usr/bin"),
                ("etc/passwd", Regular, 0o644, b"root"),
                ("run/fifo", Fifo, 0o600, b""),
                ("opt/a", Regular, 0o644, b"a"),
            ],
        );
        let top = layer(
            tmp.path(),
            "top",
            &[
                ("usr/bin/.wh.su", Regular, 0o644, b""),
                ("etc/passwd", Regular, 0o600, b"evil"),
                ("opt/.wh..wh..opq", Regular, 0o644, b""),
                ("opt/b", Regular, 0o755, b"b"),
            ],
        );
        let fs = RootFs::open(&[base, top]).unwrap();
        let mut entries = image_entries(&fs).unwrap();
        let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
        let want = format!(
            "scone fspf v2\n\
             link 7:usr/bin 4:/bin\n\
             {} 0600 4 11:/etc/passwd\n\
             {} 0755 1 6:/opt/b\n\
             node 6 0600 9:/run/fifo\n\
             {} 4755 2 12:/usr/bin/su2\n",
            sha(b"evil"),
            sha(b"b"),
            sha(b"su"),
        );
        assert_eq!(
            String::from_utf8(canonical_bytes(&mut entries)).unwrap(),
            want
        );
        assert_eq!(fspf_tag(&mut entries), sha(want.as_bytes()));

        // A hard link to nothing in the image is named, not skipped.
        let dangling = layer(tmp.path(), "dangling", &[("a/b", Link, 0o644, b"gone/c")]);
        let fs = RootFs::open(&[dangling]).unwrap();
        assert_eq!(
            image_entries(&fs).unwrap_err(),
            "/a/b is a hard link to /gone/c, which is not in the image"
        );
    }

    /// A GNU sparse file (the archive leaves its holes out) is protected as
    /// the file it unpacks to, not as a special node whose content would not
    /// count. The archive is made by GNU tar, as a base's may be.
    #[test]
    fn a_sparse_file_is_protected_by_its_whole_content() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        let file = src.join("data.bin");
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::File::create(&file).unwrap();
            f.write_all(b"head").unwrap();
            f.seek(SeekFrom::Start(1 << 20)).unwrap();
            f.write_all(b"tail").unwrap();
        }
        let layer = tmp.path().join("layer.tar");
        let made = std::process::Command::new("tar")
            .args(["--sparse", "--format=gnu", "-cf"])
            .arg(&layer)
            .arg("-C")
            .arg(&src)
            .arg("data.bin")
            .status()
            .unwrap();
        assert!(made.success());
        let raw = std::fs::read(&layer).unwrap();
        assert_eq!(raw[156], b'S', "GNU tar wrote a sparse entry");
        let fs = RootFs::open(&[layer]).unwrap();
        let mut entries = image_entries(&fs).unwrap();
        let whole = std::fs::read(&file).unwrap();
        assert_eq!(whole.len(), (1 << 20) + 4);
        let mode = std::fs::metadata(&file).unwrap().permissions();
        let mode = std::os::unix::fs::PermissionsExt::mode(&mode) & 0o7777;
        assert_eq!(
            entries,
            vec![FspfEntry::from_contents("/data.bin", mode, &whole)]
        );
        assert!(!String::from_utf8(canonical_bytes(&mut entries))
            .unwrap()
            .contains("node "));
    }
}
