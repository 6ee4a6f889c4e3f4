//! A minimal reader for the part of an ELF file the enclave layout needs: the header's
//! entry point and the `PT_LOAD` program headers of a 64-bit little-endian x86-64 file
//! (position-independent `ET_DYN` or fixed `ET_EXEC`). Anything else is refused with a
//! message saying what was found.

use super::error::SgxError;

const PT_LOAD: u32 = 1;
pub(crate) const ET_EXEC: u16 = 2;
pub(crate) const ET_DYN: u16 = 3;
const EM_X86_64: u16 = 62;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;

/// Whether the binary is linked at a fixed address or position independent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC`: linked at fixed virtual addresses.
    Executable,
    /// `ET_DYN`: position independent (PIE or shared object).
    PositionIndependent,
}

/// Segment permissions from `p_flags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SegmentFlags {
    /// `PF_R`.
    pub read: bool,
    /// `PF_W`.
    pub write: bool,
    /// `PF_X`.
    pub execute: bool,
}

/// One `PT_LOAD` segment: `memsz` bytes at `vaddr`, the first `data.len()` of them
/// from the file, the rest zero.
#[derive(Debug, Clone)]
pub struct LoadSegment<'a> {
    /// Virtual address the segment is linked at.
    pub vaddr: u64,
    /// Size in memory (≥ `data.len()`).
    pub memsz: u64,
    /// Permissions.
    pub flags: SegmentFlags,
    /// The file bytes of the segment (`p_filesz` bytes from `p_offset`).
    pub data: &'a [u8],
}

/// The parsed view of an ELF file.
#[derive(Debug, Clone)]
pub struct ElfImage<'a> {
    /// `ET_EXEC` or `ET_DYN`.
    pub kind: ElfKind,
    /// `e_entry`.
    pub entry: u64,
    /// The `PT_LOAD` segments in program-header order.
    pub segments: Vec<LoadSegment<'a>>,
}

fn bad(reason: impl Into<String>) -> SgxError {
    SgxError::Elf(reason.into())
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, SgxError> {
    bytes
        .get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_le_bytes)
        .ok_or_else(|| bad("file is truncated"))
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, SgxError> {
    bytes
        .get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or_else(|| bad("file is truncated"))
}

fn u64_at(bytes: &[u8], at: usize) -> Result<u64, SgxError> {
    bytes
        .get(at..at + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| bad("file is truncated"))
}

/// Parses the ELF header and the `PT_LOAD` program headers of `bytes`.
pub fn parse(bytes: &[u8]) -> Result<ElfImage<'_>, SgxError> {
    if bytes.len() < EHDR_SIZE || bytes[..4] != [0x7f, b'E', b'L', b'F'] {
        return Err(bad(
            "no ELF magic (is it a script? give build.binary the interpreter)",
        ));
    }
    match bytes[4] {
        2 => {}
        1 => return Err(bad("32-bit ELF; SGX enclaves need a 64-bit x86-64 binary")),
        c => return Err(bad(format!("unknown ELF class {c}"))),
    }
    if bytes[5] != 1 {
        return Err(bad(
            "big-endian ELF; SGX enclaves need a little-endian x86-64 binary",
        ));
    }
    let kind = match u16_at(bytes, 16)? {
        ET_EXEC => ElfKind::Executable,
        ET_DYN => ElfKind::PositionIndependent,
        t => {
            return Err(bad(format!(
                "ELF type {t} is neither an executable nor a PIE"
            )))
        }
    };
    let machine = u16_at(bytes, 18)?;
    if machine != EM_X86_64 {
        return Err(bad(format!(
            "ELF machine {machine} is not x86-64 (62); SGX runs x86-64 code only"
        )));
    }
    let entry = u64_at(bytes, 24)?;
    let phoff = u64_at(bytes, 32)?;
    let phentsize = u16_at(bytes, 54)? as usize;
    let phnum = u16_at(bytes, 56)? as usize;
    if phentsize < PHDR_SIZE {
        return Err(bad(format!("program header size {phentsize} is below 56")));
    }
    let phoff = usize::try_from(phoff).map_err(|_| bad("program header offset out of range"))?;
    let mut segments = Vec::new();
    for i in 0..phnum {
        let at = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .filter(|o| {
                o.checked_add(PHDR_SIZE)
                    .is_some_and(|end| end <= bytes.len())
            })
            .ok_or_else(|| bad(format!("program header {i} lies outside the file")))?;
        if u32_at(bytes, at)? != PT_LOAD {
            continue;
        }
        let p_flags = u32_at(bytes, at + 4)?;
        let offset = u64_at(bytes, at + 8)?;
        let vaddr = u64_at(bytes, at + 16)?;
        let filesz = u64_at(bytes, at + 32)?;
        let memsz = u64_at(bytes, at + 40)?;
        if filesz > memsz {
            return Err(bad(format!(
                "segment {i}: file size {filesz} exceeds memory size {memsz}"
            )));
        }
        if vaddr.checked_add(memsz).is_none() {
            return Err(bad(format!("segment {i}: address range overflows")));
        }
        let data = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(filesz).ok())
            .and_then(|(o, n)| bytes.get(o..o.checked_add(n)?))
            .ok_or_else(|| bad(format!("segment {i}: file range lies outside the file")))?;
        segments.push(LoadSegment {
            vaddr,
            memsz,
            flags: SegmentFlags {
                read: p_flags & 4 != 0,
                write: p_flags & 2 != 0,
                execute: p_flags & 1 != 0,
            },
            data,
        });
    }
    if segments.is_empty() {
        return Err(bad("no PT_LOAD segments"));
    }
    Ok(ElfImage {
        kind,
        entry,
        segments,
    })
}

#[cfg(test)]
/// A synthetic 64-bit x86-64 ELF with the given PT_LOAD segments
/// `(vaddr, memsz, flags, data)` laid out after the headers.
pub(crate) fn synthetic(kind: u16, entry: u64, segs: &[(u64, u64, u32, &[u8])]) -> Vec<u8> {
    let mut out = vec![0u8; EHDR_SIZE + PHDR_SIZE * segs.len()];
    out[..4].copy_from_slice(&[0x7f, b'E', b'L', b'F']);
    out[4] = 2;
    out[5] = 1;
    out[6] = 1;
    out[16..18].copy_from_slice(&kind.to_le_bytes());
    out[18..20].copy_from_slice(&EM_X86_64.to_le_bytes());
    out[24..32].copy_from_slice(&entry.to_le_bytes());
    out[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
    out[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
    out[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
    for (i, (vaddr, memsz, flags, data)) in segs.iter().enumerate() {
        let offset = out.len() as u64;
        out.extend_from_slice(data);
        let at = EHDR_SIZE + i * PHDR_SIZE;
        out[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
        out[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
        out[at + 8..at + 16].copy_from_slice(&offset.to_le_bytes());
        out[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
        out[at + 32..at + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
        out[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_synthetic_segments() {
        let elf = synthetic(
            ET_DYN,
            0x1010,
            &[(0, 0x100, 5, b"code"), (0x2000, 0x3000, 6, b"data")],
        );
        let img = parse(&elf).expect("valid ELF");
        assert_eq!(img.kind, ElfKind::PositionIndependent);
        assert_eq!(img.entry, 0x1010);
        assert_eq!(img.segments.len(), 2);
        assert_eq!(img.segments[0].data, b"code");
        assert!(img.segments[0].flags.execute && !img.segments[0].flags.write);
        assert_eq!(img.segments[1].vaddr, 0x2000);
        assert_eq!(img.segments[1].memsz, 0x3000);
        assert!(img.segments[1].flags.write);
    }

    #[test]
    fn parses_a_system_binary() {
        let bytes = std::fs::read("/bin/ls").expect("/bin/ls exists on this machine");
        let img = parse(&bytes).expect("/bin/ls is a 64-bit ELF");
        assert!(img.segments.iter().any(|s| s.flags.execute));
        assert!(img.segments.iter().all(|s| s.data.len() as u64 <= s.memsz));
    }

    #[test]
    fn refuses_non_elf_and_wrong_class() {
        let err = parse(b"#!/bin/sh\necho hi\n").unwrap_err();
        assert!(err.to_string().contains("no ELF magic"), "{err}");
        let mut elf = synthetic(ET_DYN, 0, &[(0, 16, 5, b"x")]);
        elf[4] = 1;
        assert!(parse(&elf).unwrap_err().to_string().contains("32-bit"));
        let mut elf = synthetic(ET_DYN, 0, &[(0, 16, 5, b"x")]);
        elf[18] = 183; // aarch64
        assert!(parse(&elf).unwrap_err().to_string().contains("not x86-64"));
    }

    #[test]
    fn refuses_truncated_segments() {
        let mut elf = synthetic(ET_EXEC, 0, &[(0x400000, 16, 5, b"abcd")]);
        let len = elf.len();
        elf.truncate(len - 2);
        let err = parse(&elf).unwrap_err();
        assert!(err.to_string().contains("outside the file"), "{err}");
    }
}
