//! The little binary encoding of scone's own files under `target/.scone`
//! (the build state's head, patches and fresh list, the parse cache, the
//! sign step's memos): varints, little-endian `u64`s and
//! length-prefixed byte strings, read back without copying, plus a trailing
//! seal — a blake3 keyed with this user's [`seal_key`](super::seal_key) — so
//! a damaged file, or one this user's builds did not write, reads as absent.

use super::stat::Stat;

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// A LEB128 varint: 1 byte below 128, at most 10.
pub fn put_var(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A signed varint (zigzag): small magnitudes stay short.
pub fn put_zigzag(out: &mut Vec<u8>, v: i64) {
    put_var(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// A byte string prefixed with its length as a varint (for many short ones).
pub fn put_var_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_var(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// A length-prefixed byte string.
pub fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_u64(out, b.len() as u64);
    out.extend_from_slice(b);
}

pub fn put_stat(out: &mut Vec<u8>, s: &Stat) {
    for v in [
        s.size,
        s.mtime_ns as u64,
        s.ctime_ns as u64,
        s.inode,
        u64::from(s.mode),
    ] {
        put_u64(out, v);
    }
}

/// The seal of `bytes`: their blake3 keyed with this user's key.
pub fn seal_of(bytes: &[u8]) -> blake3::Hash {
    blake3::keyed_hash(super::seal_key::key(), bytes)
}

/// Appends the seal of everything written so far.
pub fn seal(out: &mut Vec<u8>) {
    let sum = seal_of(out);
    out.extend_from_slice(sum.as_bytes());
}

/// The body of a [`seal`]ed buffer, if its seal holds (`blake3::Hash`
/// compares in constant time).
pub fn unseal(bytes: &[u8]) -> Option<&[u8]> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(32)?)?;
    (seal_of(body) == *<&[u8; 32]>::try_from(sum).ok()?).then_some(body)
}

/// Reads what the `put_*` functions wrote; every read is `None` past the end.
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    pub fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    pub fn var(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.0.split_first()?;
            self.0 = rest;
            v |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Some(v);
            }
        }
        None
    }

    pub fn zigzag(&mut self) -> Option<i64> {
        let v = self.var()?;
        Some((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    pub fn len(&mut self) -> Option<usize> {
        usize::try_from(self.u64()?).ok()
    }

    /// A count written with [`put_var`].
    pub fn var_len(&mut self) -> Option<usize> {
        usize::try_from(self.var()?).ok()
    }

    /// What [`put_var_bytes`] wrote.
    pub fn var_bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.var_len()?;
        self.take(n)
    }

    pub fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    pub fn stat(&mut self) -> Option<Stat> {
        Some(Stat {
            size: self.u64()?,
            mtime_ns: self.u64()? as i64,
            ctime_ns: self.u64()? as i64,
            inode: self.u64()?,
            mode: u32::try_from(self.u64()?).ok()?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_stops_at_the_end() {
        let stat = Stat {
            size: 3,
            mtime_ns: 5,
            ctime_ns: 7,
            inode: 11,
            mode: 0o100644,
        };
        let mut out = Vec::new();
        put_bytes(&mut out, b"path");
        put_stat(&mut out, &stat);
        let long = vec![7u8; 300];
        put_var_bytes(&mut out, &long);
        seal(&mut out);
        let body = unseal(&out).unwrap();
        let mut r = Reader(body);
        assert_eq!(r.bytes(), Some(&b"path"[..]));
        assert_eq!(r.stat(), Some(stat));
        assert_eq!(r.var_bytes(), Some(&long[..]), "a two-byte length");
        assert!(r.is_empty());
        assert_eq!(r.u64(), None);
        out[0] ^= 1;
        assert_eq!(unseal(&out), None, "a flipped byte fails the checksum");
    }

    #[test]
    fn varints_round_trip_at_every_size() {
        let values = [0, 1, 127, 128, 300, u64::from(u32::MAX), u64::MAX];
        let signed = [0, 1, -1, 63, -64, 64, i64::MAX, i64::MIN];
        let mut out = Vec::new();
        for v in values {
            put_var(&mut out, v);
        }
        for v in signed {
            put_zigzag(&mut out, v);
        }
        let mut r = Reader(&out);
        for v in values {
            assert_eq!(r.var(), Some(v));
        }
        for v in signed {
            assert_eq!(r.zigzag(), Some(v));
        }
        assert!(r.is_empty());
        assert_eq!(Reader(&[0x80]).var(), None, "cut off");
        assert_eq!(Reader(&[0xff; 11]).var(), None, "too long");
        let mut one = Vec::new();
        put_var(&mut one, 127);
        assert_eq!(one.len(), 1);
    }
}
