//! Packs: many small blobs in one remote blob, so one request answers for all of
//! them. A build's blobs are mostly small (a service's files, its layer, image
//! config and manifest, its fspf tag): a request per blob costs a round trip each,
//! against a remote that is not on this machine.
//!
//! A pack is the blobs' bytes one after the other; it is stored like any blob (by
//! its sha256). Where a blob lies is in its [`BlobRef::pack`]: the pack's sha256 and
//! the offset (its size is the blob's). A reader checks the pack's sha256 as it
//! downloads it and each blob it takes out of it against the blob's own sha256,
//! blake3 and size, like any download: a pack never brings in a wrong byte.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::BlobRef;

/// Blobs up to this size go into packs; bigger ones are stored on their own (a
/// round trip matters little next to their transfer).
pub const PACKED_MAX: u64 = 1 << 20;

/// A pack is sealed once it holds this much.
pub const PACK_TARGET: usize = 2 << 20;

/// Where a packed blob lies (the pack's size too: a registry lists the pack, as
/// a layer of the entry's manifest, with it).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PackRef {
    /// The pack's sha256 (hex).
    pub sha256: String,
    /// The pack's size.
    pub size: u64,
    /// The blob's first byte in the pack.
    pub offset: u64,
}

/// A pack as the index lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackInfo {
    pub sha256: String,
    pub size: u64,
}

/// A pack being filled.
#[derive(Default)]
pub struct PackBuilder {
    bytes: Vec<u8>,
    /// blake3 → (sha256, size, offset) of each blob in it.
    members: Vec<(String, String, u64, u64)>,
}

/// A sealed pack: its bytes, sha256, and the [`BlobRef`] of every blob in it.
pub struct Sealed {
    pub bytes: Vec<u8>,
    pub info: PackInfo,
    pub members: Vec<(String, BlobRef)>,
}

impl PackBuilder {
    /// Adds a blob (`blake3` its store digest); returns its sha256.
    pub fn add(&mut self, blake3: &str, bytes: &[u8]) -> String {
        let sha256 = hex::encode(Sha256::digest(bytes));
        let offset = self.bytes.len() as u64;
        self.bytes.extend_from_slice(bytes);
        self.members.push((
            blake3.to_string(),
            sha256.clone(),
            bytes.len() as u64,
            offset,
        ));
        sha256
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Whether it is full enough to be sealed.
    pub fn full(&self) -> bool {
        self.bytes.len() >= PACK_TARGET
    }

    /// Seals the pack (leaving this builder empty).
    pub fn seal(&mut self) -> Sealed {
        let bytes = std::mem::take(&mut self.bytes);
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let pack_size = bytes.len() as u64;
        let members = std::mem::take(&mut self.members)
            .into_iter()
            .map(|(blake3, blob_sha, size, offset)| {
                (
                    blake3,
                    BlobRef {
                        sha256: blob_sha,
                        size,
                        pack: Some(PackRef {
                            sha256: sha256.clone(),
                            size: pack_size,
                            offset,
                        }),
                    },
                )
            })
            .collect();
        Sealed {
            info: PackInfo {
                sha256,
                size: bytes.len() as u64,
            },
            bytes,
            members,
        }
    }
}

/// Takes blob `blob` (store digest `blake3`) out of the bytes of its pack, checked
/// against its sha256, blake3 and size.
pub fn member<'p>(pack: &'p [u8], blake3: &str, blob: &BlobRef) -> Result<&'p [u8], String> {
    let bad = |why: &str| format!("blob sha256:{} in its pack {why}", blob.sha256);
    let at = blob
        .pack
        .as_ref()
        .ok_or_else(|| bad("is named without its pack"))?;
    let start = usize::try_from(at.offset).map_err(|_| bad("lies past the end of the pack"))?;
    let len = usize::try_from(blob.size).map_err(|_| bad("lies past the end of the pack"))?;
    let bytes = start
        .checked_add(len)
        .and_then(|end| pack.get(start..end))
        .ok_or_else(|| bad("lies past the end of the pack"))?;
    if hex::encode(Sha256::digest(bytes)) != blob.sha256 {
        return Err(bad("does not match its sha256"));
    }
    if blake3::hash(bytes).to_hex().as_str() != blake3 {
        return Err(bad("does not match its blake3"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b3(bytes: &[u8]) -> String {
        blake3::hash(bytes).to_hex().to_string()
    }

    #[test]
    fn members_come_out_checked() {
        let mut pack = PackBuilder::default();
        assert!(pack.is_empty());
        pack.add(&b3(b"one"), b"one");
        pack.add(&b3(b"two!"), b"two!");
        assert_eq!(pack.len(), 7);
        assert!(!pack.full());
        let sealed = pack.seal();
        assert!(pack.is_empty(), "sealing empties the builder");
        assert_eq!(sealed.info.size, 7);
        assert_eq!(sealed.info.sha256, hex::encode(Sha256::digest(b"onetwo!")));
        let (blake3, two) = &sealed.members[1];
        assert_eq!(
            two.pack,
            Some(PackRef {
                sha256: sealed.info.sha256.clone(),
                size: 7,
                offset: 3
            })
        );
        assert_eq!(member(&sealed.bytes, blake3, two), Ok(&b"two!"[..]));

        // A flipped byte, a blob said to be longer, another blake3: refused.
        let mut flipped = sealed.bytes.clone();
        flipped[4] ^= 1;
        assert!(member(&flipped, blake3, two)
            .unwrap_err()
            .contains("sha256"));
        let longer = BlobRef {
            size: 9,
            ..two.clone()
        };
        assert!(member(&sealed.bytes, blake3, &longer)
            .unwrap_err()
            .contains("past the end"));
        assert!(member(&sealed.bytes, &b3(b"one"), two)
            .unwrap_err()
            .contains("blake3"));
    }
}
