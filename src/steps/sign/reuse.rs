//! What the sign step computes once and reuses (see [`super::memo`]): the index of a
//! large layer, the entry binary read out of one, the measured enclave of a binary
//! with given settings (and the hash state of its first pages), and the SIGSTRUCT of
//! an MRENCLAVE. Each is a pure function of the digests in its key, so a reused value
//! is the value the step would compute: the MRENCLAVE, the `.sgxs` stream and the
//! SIGSTRUCT are byte for byte the same (`tests/sign_reuse.rs`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use sha2::digest::common::hazmat::SerializableState;
use sha2::{Digest, Sha256};

use super::memo::{one_at_a_time, Key, Memo};
use crate::engine::{StepContext, StepError};
use crate::oci::rootfs::{FileLocation, LayerIndex, RootFs};
use crate::sgx::keys::SigningKey;
use crate::sgx::layout::{build_enclave_reusing, EnclaveSettings, PrefixStates, LAYOUT_VERSION};
use crate::sgx::sigstruct::{Sigstruct, SigstructParams};

/// Layers and files from this size on are worth a memo (a base image's); smaller
/// ones (a service's own layer) are read again, which costs less than a memo file.
const LARGE: u64 = 256 << 10;

/// Layer indexes this process has read, by layer digest (a long `scone dev` session
/// keeps at most this many).
const KEEP_INDEXES: usize = 32;

/// The merged file system of an image's layers (`(store digest, path)`, bottom
/// first). A large layer's index is read once per store and kept in memory. While
/// one is read, the files that may be the entry binary `binary` (named like it) are
/// kept too: [`entry_binary`] then need not decompress the layer again.
pub(super) fn root_fs(
    memo: &Memo,
    layers: &[(String, PathBuf)],
    binary: &str,
) -> Result<(RootFs, Captured), StepError> {
    let reading = |e| StepError::context("reading the image", e);
    let stem = binary.rsplit('/').next().unwrap_or(binary);
    let mut captured = Captured(Vec::new());
    let mut indexes = Vec::with_capacity(layers.len());
    for (layer, (digest, path)) in layers.iter().enumerate() {
        let large = std::fs::metadata(path).is_ok_and(|m| m.len() >= LARGE);
        let index = if large {
            let mut kept = Vec::new();
            let index = large_index(memo, digest, path, stem, &mut kept).map_err(reading)?;
            captured
                .0
                .extend(kept.into_iter().map(|(n, b)| (layer, n, b)));
            index
        } else {
            Arc::new(LayerIndex::read(path).map_err(reading)?)
        };
        indexes.push(index);
    }
    let paths: Vec<PathBuf> = layers.iter().map(|(_, p)| p.clone()).collect();
    Ok((RootFs::merge(&paths, &indexes), captured))
}

/// Files kept while layers were indexed: (layer, tar entry name, bytes).
pub(super) struct Captured(Vec<(usize, String, Vec<u8>)>);

impl Captured {
    /// The file at `at`: the last kept of that name (a layer that holds a name
    /// twice unpacks to the last).
    fn take(&mut self, at: &FileLocation) -> Option<Vec<u8>> {
        let i = self
            .0
            .iter()
            .rposition(|(layer, name, _)| *layer == at.layer && *name == at.name)?;
        Some(self.0.swap_remove(i).2)
    }
}

/// At most this much is kept while a layer is indexed.
const CAPTURE_LIMIT: u64 = 256 << 20;

fn large_index(
    memo: &Memo,
    digest: &str,
    path: &Path,
    stem: &str,
    kept: &mut Vec<crate::oci::rootfs::KeptFile>,
) -> Result<Arc<LayerIndex>, crate::oci::error::OciError> {
    static READ: Mutex<Option<HashMap<String, Arc<LayerIndex>>>> = Mutex::new(None);
    let cached = || {
        READ.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(|m| m.get(digest).cloned())
    };
    if let Some(index) = cached() {
        return Ok(index);
    }
    // "2": an index holds each file's mode, size and SHA-256 (an index kept
    // before did not).
    let key = Key::new("layer-index", &[b"2", digest.as_bytes()]);
    one_at_a_time(&key, || {
        if let Some(index) = cached() {
            return Ok(index);
        }
        let known = memo
            .get("layer-index", &key)
            .and_then(|b| serde_json::from_slice::<LayerIndex>(&b).ok());
        let index = match known {
            Some(index) => Arc::new(index),
            None => {
                let mut budget = CAPTURE_LIMIT;
                let mut keep = |name: &str, size: u64| {
                    let base = name.rsplit('/').next().unwrap_or(name);
                    let wanted = !stem.is_empty() && base.starts_with(stem) && size <= budget;
                    if wanted {
                        budget -= size;
                    }
                    wanted
                };
                let (index, files) = LayerIndex::read_capturing(path, &mut keep)?;
                // Their digests now, before the other sign steps waiting for this
                // layer look for them.
                for (name, bytes) in &files {
                    keep_file(memo, digest, name, &EntryBinary::digests(bytes));
                }
                *kept = files;
                if let Ok(bytes) = serde_json::to_vec(&index) {
                    memo.put("layer-index", &key, &bytes);
                }
                Arc::new(index)
            }
        };
        let mut read = READ.lock().unwrap_or_else(PoisonError::into_inner);
        let map = read.get_or_insert_with(HashMap::new);
        if map.len() >= KEEP_INDEXES {
            map.clear();
        }
        map.insert(digest.to_string(), Arc::clone(&index));
        Ok(index)
    })
}

/// The entry binary: its digests, and its bytes unless only its digests were known.
pub(super) struct EntryBinary {
    pub blake3: [u8; 32],
    pub sha256: [u8; 32],
    pub size: u64,
    bytes: Option<Vec<u8>>,
}

/// The digests of a binary read out of a large layer, as kept.
#[derive(Serialize, Deserialize)]
struct KeptFile {
    blake3: String,
    sha256: String,
    size: u64,
}

impl EntryBinary {
    fn digests(bytes: &[u8]) -> EntryBinary {
        EntryBinary {
            blake3: *blake3::hash(bytes).as_bytes(),
            sha256: Sha256::digest(bytes).into(),
            size: bytes.len() as u64,
            bytes: None,
        }
    }

    fn of(bytes: Vec<u8>) -> EntryBinary {
        Self::digests(&bytes).with(bytes)
    }

    fn with(mut self, bytes: Vec<u8>) -> EntryBinary {
        self.bytes = Some(bytes);
        self
    }

    fn kept(kept: &KeptFile) -> Option<EntryBinary> {
        Some(EntryBinary {
            blake3: hex_32(&kept.blake3)?,
            sha256: hex_32(&kept.sha256)?,
            size: kept.size,
            bytes: None,
        })
    }

    /// The bytes, read with `read` if only the digests were known (and checked
    /// against them).
    fn bytes(
        &self,
        read: impl FnOnce() -> Result<Vec<u8>, StepError>,
    ) -> Result<std::borrow::Cow<'_, [u8]>, StepError> {
        if let Some(bytes) = &self.bytes {
            return Ok(bytes.as_slice().into());
        }
        let bytes = read()?;
        if blake3::hash(&bytes).as_bytes() != &self.blake3 {
            return Err(StepError::new(
                "the entry binary read out of the image is not the one measured before; \
                 run `scone clean --gc` and build again",
            ));
        }
        Ok(bytes.into())
    }
}

fn hex_32(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

/// Reads the regular file at `at` of `fs` (layers as given to [`root_fs`]).
pub(super) fn read_binary(
    fs: &RootFs,
    at: &FileLocation,
    shown: &str,
) -> Result<Vec<u8>, StepError> {
    fs.read_located(at)
        .map_err(|e| StepError::context(format!("reading {shown}"), e))?
        .ok_or_else(|| StepError::new(format!("the entry binary {shown} is not in the image")))
}

/// The entry binary at `at`: its digests, kept by layer and entry name for a large
/// layer, so that the binary need not be read again while nothing else changed.
pub(super) fn entry_binary(
    memo: &Memo,
    fs: &RootFs,
    layers: &[(String, PathBuf)],
    captured: &mut Captured,
    at: &FileLocation,
    shown: &str,
) -> Result<EntryBinary, StepError> {
    let Some((digest, path)) = layers.get(at.layer) else {
        return Err(StepError::new(format!("internal: no layer {}", at.layer)));
    };
    let mut read = || match captured.take(at) {
        Some(bytes) => Ok(bytes),
        None => read_binary(fs, at, shown),
    };
    if std::fs::metadata(path).map_or(true, |m| m.len() < LARGE) {
        return Ok(EntryBinary::of(read()?));
    }
    let kept = memo
        .get("file", &file_key(digest, &at.name))
        .and_then(|b| serde_json::from_slice::<KeptFile>(&b).ok())
        .and_then(|k| EntryBinary::kept(&k));
    if let Some(binary) = kept {
        // Its bytes if this step read them anyway (a measurement may want them).
        return Ok(match captured.take(at) {
            Some(bytes) => binary.with(bytes),
            None => binary,
        });
    }
    let binary = EntryBinary::of(read()?);
    keep_file(memo, digest, &at.name, &binary);
    Ok(binary)
}

/// "2": the file is the last entry of its name in the layer (a memo of the
/// first, kept before, is not looked up).
fn file_key(layer: &str, name: &str) -> Key {
    Key::new("file", &[b"2", layer.as_bytes(), name.as_bytes()])
}

/// Keeps the digests of the file `name` of `layer`.
fn keep_file(memo: &Memo, layer: &str, name: &str, binary: &EntryBinary) {
    let kept = KeptFile {
        blake3: hex::encode(binary.blake3),
        sha256: hex::encode(binary.sha256),
        size: binary.size,
    };
    if let Ok(value) = serde_json::to_vec(&kept) {
        memo.put("file", &file_key(layer, name), &value);
    }
}

/// An enclave measured before: its `.sgxs` stream's store digest and MRENCLAVE.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Measured {
    pub sgxs: String,
    pub mrenclave: String,
}

/// The enclave of `binary` with `settings`: its stream (stored as a blob) and
/// MRENCLAVE, measured once per binary and settings (`read` gives the binary's
/// bytes if `binary` has only its digests). A new measurement takes the
/// hash state of its prefix (ECREATE and the binary's pages) from an enclave of
/// the same binary and size when there was one.
pub(super) fn enclave(
    memo: &Memo,
    cx: &StepContext<'_>,
    binary: &EntryBinary,
    read: impl FnOnce() -> Result<Vec<u8>, StepError>,
    settings: &EnclaveSettings,
    shown: &str,
) -> Result<Measured, StepError> {
    // Destructured: a setting added to the layout must be added to the key.
    let EnclaveSettings {
        heap,
        stack,
        threads,
        allow_dlopen,
        debug,
    } = *settings;
    let key = Key::new(
        "enclave",
        &[
            &LAYOUT_VERSION.to_le_bytes(),
            &binary.blake3,
            &heap.to_le_bytes(),
            &stack.to_le_bytes(),
            &threads.to_le_bytes(),
            &[u8::from(allow_dlopen), u8::from(debug)],
        ],
    );
    let kept = || {
        memo.get("enclave", &key)
            .and_then(|b| serde_json::from_slice::<Measured>(&b).ok())
            .filter(|m| hex_32(&m.mrenclave).is_some() && cx.store.blob_intact(&m.sgxs))
    };
    if let Some(measured) = kept() {
        return Ok(measured);
    }
    one_at_a_time(&key, || {
        if let Some(measured) = kept() {
            return Ok(measured);
        }
        let elf = binary.bytes(read)?;
        let prefixes = KeptPrefixes(memo);
        let enclave = build_enclave_reusing(&elf, settings, Some((&binary.blake3, &prefixes)))
            .map_err(|e| StepError::context(format!("measuring {shown}"), e))?;
        let measured = Measured {
            sgxs: cx.store_bytes(&enclave.sgxs)?,
            mrenclave: hex::encode(enclave.mrenclave),
        };
        if let Ok(value) = serde_json::to_vec(&measured) {
            memo.put("enclave", &key, &value);
        }
        Ok(measured)
    })
}

/// Prefix hash states, kept as memos.
struct KeptPrefixes<'a>(&'a Memo);

impl PrefixStates for KeptPrefixes<'_> {
    fn get(&self, key: &[u8; 32]) -> Option<Sha256> {
        let bytes = self.0.get("prefix", &Key::new("prefix", &[key]))?;
        let state = bytes.as_slice().try_into().ok()?;
        Sha256::deserialize(state).ok()
    }

    fn put(&self, key: &[u8; 32], state: &Sha256) {
        self.0.put(
            "prefix",
            &Key::new("prefix", &[key]),
            state.serialize().as_slice(),
        );
    }
}

/// The SIGSTRUCT of `mrenclave`, signed once per key, parameters and MRENCLAVE (RSA
/// PKCS#1 v1.5 is deterministic: the same inputs give the same bytes). `key_id` is a
/// digest of the key file. A kept one is used only if it verifies and signs exactly
/// what would be signed now.
pub(super) fn sigstruct(
    memo: &Memo,
    key: &SigningKey,
    key_id: &[u8; 32],
    params: &SigstructParams,
    mrenclave: &[u8; 32],
) -> Result<Sigstruct, StepError> {
    let unsigned = Sigstruct::unsigned(&key.modulus_le(), params, mrenclave);
    let memo_key = Key::new("sigstruct", &[key_id, &unsigned]);
    let kept = || {
        memo.get("sigstruct", &memo_key)
            .and_then(|b| Sigstruct::from_bytes(&b).ok())
            .filter(|s| s.unsigned_bytes() == unsigned && s.verify().is_valid())
    };
    if let Some(sigstruct) = kept() {
        return Ok(sigstruct);
    }
    one_at_a_time(&memo_key, || {
        if let Some(sigstruct) = kept() {
            return Ok(sigstruct);
        }
        let sigstruct = Sigstruct::sign_unsigned(key, unsigned)
            .map_err(|e| StepError::context("signing the enclave", e))?;
        memo.put("sigstruct", &memo_key, &sigstruct.to_bytes());
        Ok(sigstruct)
    })
}
