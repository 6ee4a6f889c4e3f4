//! The binary form of an [`ActionRecord`] in the step index: the
//! [`super::wire`] encoding, with the step's own `record` and `info` kept as
//! JSON text. A mesh step reads a thousand of these (one per service); read
//! as JSON their blob maps cost several times what this does.

use std::collections::BTreeMap;

use super::store::{ActionRecord, Published};
use super::wire::{put_bytes, put_var, Reader};

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_map(out: &mut Vec<u8>, map: &BTreeMap<String, String>) {
    put_var(out, map.len() as u64);
    for (k, v) in map {
        put_str(out, k);
        put_str(out, v);
    }
}

/// The bytes of `r`.
pub fn encode(r: &ActionRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    put_str(&mut out, &r.step);
    put_str(&mut out, &r.fingerprint);
    put_bytes(&mut out, &serde_json::to_vec(&r.record).unwrap_or_default());
    put_map(&mut out, &r.files);
    put_var(&mut out, r.publish.len() as u64);
    for p in &r.publish {
        match p {
            Published::Dir { dir, files } => {
                out.push(0);
                put_str(&mut out, dir);
                put_map(&mut out, files);
            }
            Published::File { path, digest } => {
                out.push(1);
                put_str(&mut out, path);
                put_str(&mut out, digest);
            }
        }
    }
    put_bytes(&mut out, &serde_json::to_vec(&r.info).unwrap_or_default());
    out
}

fn text(r: &mut Reader<'_>) -> Option<String> {
    String::from_utf8(r.bytes()?.to_vec()).ok()
}

fn map(r: &mut Reader<'_>) -> Option<BTreeMap<String, String>> {
    let n = r.var()?;
    let mut map = BTreeMap::new();
    for _ in 0..n {
        map.insert(text(r)?, text(r)?);
    }
    Some(map)
}

/// The step, fingerprint and `record` of the record `encode` made, with
/// `files`, `publish` and `info` left empty: what a step that reads only its
/// deps' records (see [`crate::engine::DepReads`]) is given.
pub fn decode_record_only(bytes: &[u8]) -> Option<ActionRecord> {
    let mut r = Reader(bytes);
    let step = text(&mut r)?;
    let fingerprint = text(&mut r)?;
    let record = serde_json::from_slice(r.bytes()?).ok()?;
    Some(ActionRecord {
        step,
        fingerprint,
        record,
        files: BTreeMap::new(),
        publish: Vec::new(),
        info: serde_json::Value::Null,
    })
}

/// The record `encode` made; `None` for anything else.
pub fn decode(bytes: &[u8]) -> Option<ActionRecord> {
    let mut r = Reader(bytes);
    let step = text(&mut r)?;
    let fingerprint = text(&mut r)?;
    let record = serde_json::from_slice(r.bytes()?).ok()?;
    let files = map(&mut r)?;
    let n = r.var()?;
    let mut publish = Vec::with_capacity(usize::try_from(n).ok()?.min(1 << 16));
    for _ in 0..n {
        publish.push(match r.take(1)? {
            [0] => Published::Dir {
                dir: text(&mut r)?,
                files: map(&mut r)?,
            },
            [1] => Published::File {
                path: text(&mut r)?,
                digest: text(&mut r)?,
            },
            _ => return None,
        });
    }
    let info = serde_json::from_slice(r.bytes()?).ok()?;
    r.is_empty().then_some(ActionRecord {
        step,
        fingerprint,
        record,
        files,
        publish,
        info,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_round_trips_and_damage_is_no_record() {
        let record = ActionRecord {
            step: "image:svc".into(),
            fingerprint: "fp".into(),
            record: serde_json::json!({"reference": "r", "n": [1, 2]}),
            files: BTreeMap::from([("config".into(), "sha256:ab".into())]),
            publish: vec![
                Published::Dir {
                    dir: "images/svc".into(),
                    files: BTreeMap::from([("index.json".into(), "sha256:cd".into())]),
                },
                Published::File {
                    path: "enclave/svc.sig".into(),
                    digest: "sha256:ef".into(),
                },
            ],
            info: serde_json::Value::Null,
        };
        let bytes = encode(&record);
        assert_eq!(decode(&bytes), Some(record.clone()));
        let only = decode_record_only(&bytes).unwrap();
        assert_eq!(
            (&only.step, &only.fingerprint),
            (&record.step, &record.fingerprint)
        );
        assert_eq!(only.record, record.record);
        assert!(only.files.is_empty() && only.publish.is_empty() && only.info.is_null());
        assert_eq!(decode(&bytes[..bytes.len() - 1]), None);
        let mut extra = bytes.clone();
        extra.push(0);
        assert_eq!(decode(&extra), None);
    }
}
