//! Target (d): the OCI readers used for bases (`scone::oci::{base, layout,
//! rootfs, tar}`). An OCI layout drawn with `arbitrary` is written to a scratch
//! folder: `index.json` (a tag, a nested index, or any bytes), the manifest and
//! config (descriptors with right or wrong digests, sizes and media types), and
//! layers that are tar archives built entry by entry (any path, `..`, absolute
//! paths, whiteouts, opaque markers, symlinks and hard links pointing anywhere,
//! device nodes), gzip-compressed or not, or any bytes. It is resolved as an
//! `oci:DIR:TAG` base; a base that resolves is merged as a root file system and
//! looked up (`resolve`, `read_file`, `which`). `BaseSpec::parse` gets any text.
//! Every blob path must stay inside the layout.

use std::io::Write as _;
use std::path::Path;

use arbitrary::{Arbitrary, Result, Unstructured};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use scone::oci::base::{resolve, BaseContext, BaseSpec};
use scone::oci::rootfs::RootFs;

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 8 == 0 {
        let _ = BaseSpec::parse(&String::from_utf8_lossy(rest));
        return;
    }
    let mut u = Unstructured::new(rest);
    let dir = super::scratch();
    let layout = dir.path().join("layout");
    let Ok(tag) = write_layout(&mut u, &layout) else {
        return;
    };
    let ctx = BaseContext {
        cache_dir: dir.path().join("cache"),
        offline: true,
        ..BaseContext::default()
    };
    let spec = BaseSpec::Oci {
        dir: layout.clone(),
        tag,
    };
    let Ok(base) = resolve(&spec, &ctx) else {
        return;
    };
    for layer in &base.layers {
        assert!(
            layer.path.starts_with(&layout) || layer.path.starts_with(dir.path().join("cache")),
            "a layer blob outside the layout and the cache: {}",
            layer.path.display()
        );
    }
    let Ok(rootfs) = RootFs::open(&base.layer_paths()) else {
        return;
    };
    for path in LOOKUPS {
        let _ = rootfs.resolve(path);
        let _ = rootfs.read_file(path);
    }
    let _ = rootfs.which("sh", "/usr/local/bin:/usr/bin:/bin:relative:");
    let _ = rootfs.which("../../etc/passwd", "/bin");
}

const LOOKUPS: &[&str] = &[
    "/",
    "",
    "a",
    "/a/b",
    "a/../b",
    "/bin/sh",
    "usr/bin/python3",
    "/etc/passwd",
    "../x",
    "loop",
    "a/b/c/d/e",
    ".wh.a",
    "/proc/self",
];

/// Path pieces tar entries are made of.
const PARTS: &[&str] = &[
    "a",
    "b",
    "c",
    "bin",
    "usr",
    "etc",
    "sh",
    "python3",
    "passwd",
    "..",
    ".",
    "",
    ".wh.a",
    ".wh..wh..opq",
    ".wh.",
    "loop",
    "/",
    "//",
    "\u{0}",
    "é",
];

fn path(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 8)? {
        return String::arbitrary(u);
    }
    let n = u.int_in_range(1..=4)?;
    let parts: Vec<&str> = (0..n)
        .map(|_| u.choose(PARTS).copied())
        .collect::<Result<_>>()?;
    let lead = if u.ratio(1, 4)? { "/" } else { "" };
    Ok(format!("{lead}{}", parts.join("/")))
}

/// A tar archive built header by header (the `tar` crate's builder refuses `..`
/// and absolute names; the raw name field does not).
fn tar(u: &mut Unstructured<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..u.int_in_range(0..=8)? {
        let mut header = tar::Header::new_gnu();
        let name = path(u)?;
        let bytes = name.as_bytes();
        let field = &mut header.as_old_mut().name;
        let n = bytes.len().min(field.len());
        field[..n].copy_from_slice(&bytes[..n]);
        let kind = *u.choose(&[
            tar::EntryType::Regular,
            tar::EntryType::Regular,
            tar::EntryType::Directory,
            tar::EntryType::Symlink,
            tar::EntryType::Link,
            tar::EntryType::Char,
            tar::EntryType::Fifo,
            tar::EntryType::GNULongName,
            tar::EntryType::XHeader,
        ])?;
        header.set_entry_type(kind);
        header.set_mode(u.arbitrary::<u32>()? & 0o7777);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            let _ = header.set_link_name(path(u)?.trim_start_matches('/'));
            let target = path(u)?;
            let field = &mut header.as_old_mut().linkname;
            let n = target.len().min(field.len());
            field[..n].copy_from_slice(&target.as_bytes()[..n]);
        }
        let content: Vec<u8> = if matches!(
            kind,
            tar::EntryType::Regular | tar::EntryType::GNULongName | tar::EntryType::XHeader
        ) {
            Vec::arbitrary(u)?
        } else {
            Vec::new()
        };
        let declared = if u.ratio(1, 16)? {
            u.arbitrary::<u32>()? as u64
        } else {
            content.len() as u64
        };
        header.set_size(declared);
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&content);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    if u.ratio(7, 8)? {
        out.extend_from_slice(&[0; 1024]);
    }
    Ok(out)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("in memory");
    encoder.finish().expect("in memory")
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Stores `bytes` as a blob; returns its digest (or, rarely, a wrong or odd one).
fn blob(u: &mut Unstructured<'_>, layout: &Path, bytes: &[u8]) -> Result<String> {
    let right = digest(bytes);
    std::fs::write(layout.join("blobs/sha256").join(&right[7..]), bytes).expect("scratch blob");
    Ok(match u.int_in_range(0..=15)? {
        0 => digest(b"another"),
        1 => u
            .choose(&[
                "sha256:../../index.json",
                "sha256:",
                "md5:00",
                "sha256:ABC",
                "sha512:00",
            ])?
            .to_string(),
        2 => String::arbitrary(u)?,
        _ => right,
    })
}

fn descriptor(u: &mut Unstructured<'_>, media: &str, digest: String, size: usize) -> Result<Value> {
    let size: Value = match u.int_in_range(0..=15)? {
        0 => json!(-1),
        1 => json!(u64::MAX),
        2 => json!("12"),
        _ => json!(size),
    };
    let media = if u.ratio(1, 8)? {
        (*u.choose(&[
            "application/vnd.oci.image.layer.v1.tar",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "text/plain",
        ])?)
        .to_string()
    } else {
        media.to_string()
    };
    Ok(json!({ "mediaType": media, "digest": digest, "size": size }))
}

/// Writes a layout; returns the tag to resolve.
fn write_layout(u: &mut Unstructured<'_>, layout: &Path) -> Result<Option<String>> {
    std::fs::create_dir_all(layout.join("blobs/sha256")).expect("scratch layout");
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .expect("scratch");
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let raw = if u.ratio(1, 8)? {
            Vec::arbitrary(u)?
        } else {
            tar(u)?
        };
        diff_ids.push(digest(&raw));
        let (bytes, media) = if u.arbitrary()? {
            (gzip(&raw), "application/vnd.oci.image.layer.v1.tar+gzip")
        } else {
            (raw, "application/vnd.oci.image.layer.v1.tar")
        };
        let d = blob(u, layout, &bytes)?;
        layers.push(descriptor(u, media, d, bytes.len())?);
    }
    let config = json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Env": ["PATH=/usr/bin:/bin"], "WorkingDir": "/" },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config = if u.ratio(1, 8)? {
        Vec::arbitrary(u)?
    } else {
        config.to_string().into_bytes()
    };
    let config_digest = blob(u, layout, &config)?;
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": descriptor(u, "application/vnd.oci.image.config.v1+json", config_digest, config.len())?,
        "layers": layers,
    });
    let manifest = if u.ratio(1, 16)? {
        Vec::arbitrary(u)?
    } else {
        manifest.to_string().into_bytes()
    };
    let mut top = blob(u, layout, &manifest)?;
    let mut top_media = "application/vnd.oci.image.manifest.v1+json";
    if u.ratio(1, 4)? {
        let nested = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [descriptor(u, top_media, top.clone(), manifest.len())?
                .as_object().cloned().map(|mut d| {
                    d.insert("platform".into(), json!({"architecture": "amd64", "os": "linux"}));
                    Value::Object(d)
                })],
        })
        .to_string()
        .into_bytes();
        top = blob(u, layout, &nested)?;
        top_media = "application/vnd.oci.image.index.v1+json";
    }
    let tag: Option<String> = match u.int_in_range(0..=3)? {
        0 => None,
        1 => Some(String::arbitrary(u)?),
        _ => Some("latest".into()),
    };
    let mut entry = descriptor(u, top_media, top, 0)?;
    entry["annotations"] = json!({ "org.opencontainers.image.ref.name": "latest" });
    let index = json!({ "schemaVersion": 2, "manifests": [entry] });
    let index = if u.ratio(1, 16)? {
        Vec::arbitrary(u)?
    } else {
        index.to_string().into_bytes()
    };
    std::fs::write(layout.join("index.json"), index).expect("scratch index");
    Ok(tag)
}
