//! Test support: grep for secret values wherever scone may write. A
//! [`Needles`] set holds each secret in the forms it could be written in (raw,
//! hex, base64; the signing key's PEM lines and the private part of its DER,
//! both byte orders); [`Needles::leaks`] lists every file or output holding
//! one, looking inside gzip and zstd streams too (image layers).

use base64::Engine as _;
use std::path::{Path, PathBuf};

/// A secret in every form searched for: `(what, bytes)`.
#[derive(Default)]
pub struct Needles {
    forms: Vec<(String, Vec<u8>)>,
    /// All forms at once, made on the first search.
    automaton: std::sync::OnceLock<aho_corasick::AhoCorasick>,
}

/// Where a needle was found.
#[derive(Debug)]
pub struct Leak {
    pub needle: String,
    pub place: String,
}

impl Needles {
    pub fn new() -> Needles {
        Needles::default()
    }

    /// `value` (named `what`) raw, as hex (both cases) and as base64
    /// (standard and URL-safe, without padding).
    pub fn value(&mut self, what: &str, value: &[u8]) -> &mut Self {
        assert!(
            value.len() >= 8,
            "{what}: a needle this short could match by chance"
        );
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut add = |form: &str, bytes: Vec<u8>| {
            if !self.forms.iter().any(|(_, b)| *b == bytes) {
                self.forms.push((format!("{what} ({form})"), bytes));
            }
        };
        add("raw", value.to_vec());
        add("hex", hex::encode(value).into_bytes());
        add("HEX", hex::encode_upper(value).into_bytes());
        // Without its padding, which may differ where the value sits inside
        // a longer text.
        let padded = b64.encode(value);
        add("base64", padded.trim_end_matches('=').as_bytes().to_vec());
        add("base64url", url.encode(value).into_bytes());
        self
    }

    /// Each line of a multi-line `value` of 8 bytes or more, as [`Self::value`].
    pub fn lines(&mut self, what: &str, value: &str) -> &mut Self {
        for (i, line) in value.lines().enumerate() {
            if line.len() >= 8 {
                self.value(&format!("{what}, line {}", i + 1), line.as_bytes());
            }
        }
        self
    }

    /// The RSA signing key of the PEM file `pem`: every line of its base64
    /// body, and 32-byte windows of the private part of its DER (after the
    /// modulus and the public exponent, which are public), in both byte orders.
    pub fn signing_key(&mut self, pem: &Path) -> &mut Self {
        let text = std::fs::read_to_string(pem).expect("the signing key");
        assert!(text.contains("RSA PRIVATE KEY"), "a PKCS#1 key");
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        for (i, line) in text.lines().filter(|l| !l.starts_with("-----")).enumerate() {
            self.forms.push((
                format!("signing key PEM line {}", i + 1),
                line.as_bytes().to_vec(),
            ));
        }
        let der = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .expect("the PEM body is base64");
        let private = private_part(&der);
        assert!(private > 390 && private < der.len(), "a 3072-bit key");
        for (n, start) in (private..der.len() - 32).step_by(48).enumerate() {
            let window = der[start..start + 32].to_vec();
            let mut reversed = window.clone();
            reversed.reverse();
            self.forms
                .push((format!("signing key DER window {n}"), window));
            self.forms
                .push((format!("signing key DER window {n}, reversed"), reversed));
        }
        self
    }

    /// How many forms are searched for.
    pub fn len(&self) -> usize {
        self.forms.len()
    }

    /// The needles found in `bytes` (and, if it is gzip or zstd, in what it
    /// decompresses to), each named with `place`.
    pub fn leaks_in(&self, place: &str, bytes: &[u8]) -> Vec<Leak> {
        let mut found = Vec::new();
        self.search(place, bytes, &mut found);
        if let Some(inner) = decompressed(bytes) {
            self.search(&format!("{place} (decompressed)"), &inner, &mut found);
        }
        found
    }

    /// The needles found in any file under each of `roots` (a file root is
    /// searched itself), skipping the paths in `allowed`.
    pub fn leaks_under(&self, roots: &[PathBuf], allowed: &[PathBuf]) -> (usize, Vec<Leak>) {
        let mut files = 0;
        let mut found = Vec::new();
        for root in roots {
            for entry in walkdir::WalkDir::new(root)
                .into_iter()
                .filter_map(Result::ok)
            {
                let path = entry.path();
                if !entry.file_type().is_file() || allowed.iter().any(|a| path.starts_with(a)) {
                    continue;
                }
                let Ok(bytes) = std::fs::read(path) else {
                    continue;
                };
                files += 1;
                found.extend(self.leaks_in(&path.display().to_string(), &bytes));
            }
        }
        (files, found)
    }

    fn search(&self, place: &str, bytes: &[u8], found: &mut Vec<Leak>) {
        let automaton = self.automaton.get_or_init(|| {
            aho_corasick::AhoCorasick::new(self.forms.iter().map(|(_, b)| b))
                .expect("the needles make an automaton")
        });
        let mut seen = std::collections::BTreeSet::new();
        for m in automaton.find_overlapping_iter(bytes) {
            if seen.insert(m.pattern().as_usize()) {
                found.push(Leak {
                    needle: self.forms[m.pattern().as_usize()].0.clone(),
                    place: place.to_string(),
                });
            }
        }
    }
}

/// Whether `needle` occurs in `bytes`.
pub fn contains(bytes: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && bytes.windows(needle.len()).any(|w| w == needle)
}

/// `bytes` decompressed, when it is a gzip or zstd stream.
fn decompressed(bytes: &[u8]) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .ok()?;
        return Some(out);
    }
    if bytes.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        zstd::stream::read::Decoder::new(bytes)
            .ok()?
            .read_to_end(&mut out)
            .ok()?;
        return Some(out);
    }
    None
}

/// Where the private fields of a PKCS#1 `RSAPrivateKey` DER start: after the
/// SEQUENCE header and the version, modulus and public exponent INTEGERs.
fn private_part(der: &[u8]) -> usize {
    /// The offset after the header (tag and length) of the element at `at`,
    /// and its content length.
    fn header(der: &[u8], at: usize) -> (usize, usize) {
        let first = der[at + 1] as usize;
        if first < 0x80 {
            return (at + 2, first);
        }
        let n = first & 0x7f;
        let len = der[at + 2..at + 2 + n]
            .iter()
            .fold(0usize, |acc, &b| acc << 8 | b as usize);
        (at + 2 + n, len)
    }
    let (mut at, _) = header(der, 0);
    for _ in 0..3 {
        let (content, len) = header(der, at);
        at = content + len;
    }
    at
}

/// A readable list of `leaks`.
pub fn report(leaks: &[Leak]) -> String {
    leaks
        .iter()
        .map(|l| format!("  {} in {}", l.needle, l.place))
        .collect::<Vec<_>>()
        .join("\n")
}
