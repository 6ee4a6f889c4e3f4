//! "scone enclave layout v1": how an entry binary and the enclave settings become the
//! pages of an enclave, and so its `.sgxs` stream and MRENCLAVE. The layout is
//! documented in `docs/enclave.md`; any change to it must bump [`LAYOUT_VERSION`].
//!
//! Offsets from the enclave base, in order: the ELF `PT_LOAD` pages (measured), a
//! guard page, the heap (EADD only), a guard page, then per thread its stack (EADD
//! only), one TCS page (measured) and [`SSA_FRAMES`] SSA pages (EADD only) followed by a
//! guard page, and last one measured configuration page. The size is the next power of
//! two. Only the binary and [`EnclaveSettings`] enter the stream.

use std::collections::BTreeMap;

use super::elf;
use super::error::SgxError;
use super::measure::{secinfo, SgxsWriter, PAGE_SIZE};
use sha2::{Digest, Sha256};

/// Version of the layout, written into the configuration page.
pub const LAYOUT_VERSION: u32 = 1;
/// SSA frames per thread (each one page: ECREATE's SSAFRAMESIZE is 1).
pub const SSA_FRAMES: u32 = 2;
/// Largest heap we lay out (64 GiB).
pub const MAX_HEAP: u64 = 64 << 30;
/// Largest per-thread stack (1 GiB).
pub const MAX_STACK: u64 = 1 << 30;
/// Largest span of the binary's loaded segments (1 GiB), all of it measured.
pub const MAX_IMAGE: u64 = 1 << 30;
/// Most threads (TCS pages).
pub const MAX_THREADS: u32 = 4096;
/// Most enclave memory laid out: heap + threads × stack (64 GiB). Every page of it
/// is one 64-byte EADD record of the measured stream (at most 1 GiB then), so the
/// bound is what a manifest can make a build allocate (docs/security.md).
pub const MAX_MEMORY: u64 = 64 << 30;
const PAGE: usize = PAGE_SIZE as usize;
const CONFIG_MAGIC: &[u8; 8] = b"SCONECFG";

/// The enclave settings that change MRENCLAVE, read from the service's `SCONE_*`
/// locals. Defaults: heap 64 MiB, stack 1 MiB, 8 threads, no dlopen, production.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EnclaveSettings {
    /// `SCONE_HEAP`: heap bytes (rounded up to whole pages).
    pub heap: u64,
    /// `SCONE_STACK`: bytes of stack per thread (rounded up to whole pages).
    pub stack: u64,
    /// `SCONE_THREADS`: enclave threads (one TCS each).
    pub threads: u32,
    /// `SCONE_ALLOW_DLOPEN`: whether the runtime may load libraries at run time.
    pub allow_dlopen: bool,
    /// Debug enclave (from `--mode debug`; not an environment variable).
    pub debug: bool,
}

impl Default for EnclaveSettings {
    fn default() -> Self {
        EnclaveSettings {
            heap: 64 << 20,
            stack: 1 << 20,
            threads: 8,
            allow_dlopen: false,
            debug: false,
        }
    }
}

fn invalid(name: &str, value: &str, reason: impl Into<String>) -> SgxError {
    SgxError::InvalidSetting {
        name: name.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// Parses a size such as `256M`, `1G`, `512k`, `64MiB`, `1GB` or `4096` (binary units).
pub fn parse_size(name: &str, value: &str) -> Result<u64, SgxError> {
    let v = value.trim();
    let digits_end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(digits_end);
    let reason = "expected a size such as 4096, 512K, 256M or 1G";
    let n: u64 = num.parse().map_err(|_| invalid(name, value, reason))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        "T" | "TB" | "TIB" => 40,
        _ => return Err(invalid(name, value, reason)),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| invalid(name, value, "the size overflows"))
}

fn parse_bool(name: &str, value: &str) -> Result<bool, SgxError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" | "" => Ok(false),
        _ => Err(invalid(
            name,
            value,
            "expected 1/0, true/false, yes/no or on/off",
        )),
    }
}

fn round_to_pages(bytes: u64) -> u64 {
    bytes.div_ceil(PAGE_SIZE) * PAGE_SIZE
}

impl EnclaveSettings {
    /// Reads `SCONE_HEAP`, `SCONE_STACK`, `SCONE_THREADS` and `SCONE_ALLOW_DLOPEN` from a
    /// service's local environment; variables not given keep their default. Other
    /// variables are ignored. `debug` stays `false` (the mode comes from the CLI).
    pub fn from_env(env: &[(String, String)]) -> Result<Self, SgxError> {
        let mut s = EnclaveSettings::default();
        // The size variable given last: the total is reported on it.
        let mut last_size: Option<(&str, &str)> = None;
        for (name, value) in env {
            if matches!(
                name.as_str(),
                "SCONE_HEAP" | "SCONE_STACK" | "SCONE_THREADS"
            ) {
                last_size = Some((name, value));
            }
            match name.as_str() {
                "SCONE_HEAP" => {
                    s.heap = round_to_pages(parse_size(name, value)?);
                    if s.heap == 0 || s.heap > MAX_HEAP {
                        return Err(invalid(name, value, "the heap must be between 4K and 64G"));
                    }
                }
                "SCONE_STACK" => {
                    s.stack = round_to_pages(parse_size(name, value)?);
                    if s.stack == 0 || s.stack > MAX_STACK {
                        return Err(invalid(name, value, "the stack must be between 4K and 1G"));
                    }
                }
                "SCONE_THREADS" => {
                    s.threads = value
                        .trim()
                        .parse::<u32>()
                        .ok()
                        .filter(|t| (1..=MAX_THREADS).contains(t))
                        .ok_or_else(|| {
                            invalid(
                                name,
                                value,
                                format!("expected a number of threads from 1 to {MAX_THREADS}"),
                            )
                        })?;
                }
                "SCONE_ALLOW_DLOPEN" => s.allow_dlopen = parse_bool(name, value)?,
                _ => {}
            }
        }
        if let Some((name, value)) = last_size.filter(|_| s.memory() > MAX_MEMORY) {
            return Err(invalid(
                name,
                value,
                format!(
                    "the enclave's memory (heap + threads × stack) would be {} MiB; at most 64 GiB",
                    s.memory() >> 20
                ),
            ));
        }
        Ok(s)
    }

    /// Heap + threads × stack, in bytes (what [`MAX_MEMORY`] bounds).
    pub fn memory(&self) -> u64 {
        self.heap
            .saturating_add(self.stack.saturating_mul(u64::from(self.threads)))
    }

    fn check(&self) -> Result<(), SgxError> {
        let ok = self.heap > 0
            && self.heap <= MAX_HEAP
            && self.heap.is_multiple_of(PAGE_SIZE)
            && self.stack > 0
            && self.stack <= MAX_STACK
            && self.stack.is_multiple_of(PAGE_SIZE)
            && (1..=MAX_THREADS).contains(&self.threads)
            && self.memory() <= MAX_MEMORY;
        if ok {
            Ok(())
        } else {
            Err(SgxError::Layout(format!(
                "settings out of range (heap {} bytes, stack {} bytes, {} threads): heap and stack \
                 must be whole pages up to 64G and 1G, threads 1 to {MAX_THREADS}, heap + threads \
                 × stack at most 64G",
                self.heap, self.stack, self.threads
            )))
        }
    }
}

/// A laid-out enclave: its measured record stream and MRENCLAVE (= sha256 of `sgxs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enclave {
    /// The `.sgxs` stream (ECREATE, EADD, EEXTEND records).
    pub sgxs: Vec<u8>,
    /// MRENCLAVE.
    pub mrenclave: [u8; 32],
    /// Enclave size in bytes (a power of two).
    pub size: u64,
}

/// One page of the ELF image: permissions and contents (`None` = all zero).
struct ImagePage {
    flags: u64,
    data: Option<Box<[u8; PAGE]>>,
}

/// Lays the ELF's `PT_LOAD` segments out as pages relative to the lowest segment page.
/// Returns the pages and the image's end offset.
fn image_pages(image: &elf::ElfImage<'_>) -> Result<(BTreeMap<u64, ImagePage>, u64), SgxError> {
    let base = image.segments.iter().map(|s| s.vaddr).min().unwrap_or(0) & !(PAGE_SIZE - 1);
    let too_big = || SgxError::Layout("the binary's loaded segments span more than 1G".to_string());
    let mut pages: BTreeMap<u64, ImagePage> = BTreeMap::new();
    let mut end = 0u64;
    for seg in &image.segments {
        if seg.memsz == 0 {
            continue;
        }
        let start = seg.vaddr - base;
        let seg_end = start
            .checked_add(seg.memsz)
            .filter(|e| *e <= MAX_IMAGE)
            .ok_or_else(too_big)?;
        end = end.max(round_to_pages(seg_end));
        let mut flags = secinfo::R | secinfo::PT_REG;
        if seg.flags.write {
            flags |= secinfo::W;
        }
        if seg.flags.execute {
            flags |= secinfo::X;
        }
        let first = start & !(PAGE_SIZE - 1);
        let mut page_off = first;
        while page_off < seg_end {
            let page = pages.entry(page_off).or_insert(ImagePage {
                flags: 0,
                data: None,
            });
            page.flags |= flags;
            // Copy the file bytes of this segment that fall into this page.
            let lo = page_off.max(start);
            let hi = (page_off + PAGE_SIZE).min(start + seg.data.len() as u64);
            if lo < hi {
                let buf = page.data.get_or_insert_with(|| Box::new([0u8; PAGE]));
                let src = &seg.data[(lo - start) as usize..(hi - start) as usize];
                buf[(lo - page_off) as usize..(hi - page_off) as usize].copy_from_slice(src);
            }
            page_off += PAGE_SIZE;
        }
    }
    Ok((pages, end))
}

/// Hash states of enclave prefixes measured before (see [`build_enclave_reusing`]).
pub trait PrefixStates {
    /// The state stored under `key`, if any.
    fn get(&self, key: &[u8; 32]) -> Option<Sha256>;
    /// Keeps `state` under `key` (a cache: it may drop it).
    fn put(&self, key: &[u8; 32], state: &Sha256);
}

/// The key of an enclave's measured prefix, its ECREATE record and the binary's pages:
/// they depend on the binary and the enclave's size only, so enclaves of one binary
/// with settings that give the same size (a heap of 100M or 64M: both 128 MiB) share
/// it. `elf_id` must be a collision-resistant digest of the binary's bytes.
pub fn prefix_key(elf_id: &[u8; 32], size: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"scone enclave prefix\0");
    h.update(LAYOUT_VERSION.to_le_bytes());
    h.update(1u32.to_le_bytes()); // ECREATE's SSAFRAMESIZE
    h.update(size.to_le_bytes());
    h.update(elf_id);
    h.finalize().into()
}

/// Builds the enclave for the entry binary `elf` with `settings` ("scone enclave layout
/// v1"). Pure: the same bytes and settings always give the same stream.
pub fn build_enclave(elf_bytes: &[u8], settings: &EnclaveSettings) -> Result<Enclave, SgxError> {
    build_enclave_reusing(elf_bytes, settings, None)
}

/// [`build_enclave`], taking the hash state of the prefix (ECREATE and the binary's
/// pages: most of the measured bytes) from `reuse` when it has it under
/// [`prefix_key`] and storing it there when not. `reuse` names the binary by a
/// collision-resistant digest of `elf_bytes` (the caller has it: a store digest). The
/// stream and MRENCLAVE are the same either way.
pub fn build_enclave_reusing(
    elf_bytes: &[u8],
    settings: &EnclaveSettings,
    reuse: Option<(&[u8; 32], &dyn PrefixStates)>,
) -> Result<Enclave, SgxError> {
    settings.check()?;
    let image = elf::parse(elf_bytes)?;
    let base = image.segments.iter().map(|s| s.vaddr).min().unwrap_or(0) & !(PAGE_SIZE - 1);
    let entry = image.entry.checked_sub(base).ok_or_else(|| {
        SgxError::Elf(format!(
            "entry point {:#x} lies below the first segment",
            image.entry
        ))
    })?;
    let (pages, image_end) = image_pages(&image)?;
    if entry >= image_end {
        return Err(SgxError::Elf(format!(
            "entry point {:#x} lies outside the segments",
            image.entry
        )));
    }

    // Offsets of everything after the image (all page multiples, checked above).
    let heap_offset = image_end + PAGE_SIZE;
    let threads_start = heap_offset + settings.heap + PAGE_SIZE;
    let ssa_pages = SSA_FRAMES as u64;
    let thread_stride = settings.stack + PAGE_SIZE + ssa_pages * PAGE_SIZE + PAGE_SIZE;
    let config_offset = threads_start + thread_stride * settings.threads as u64;
    let used = config_offset + PAGE_SIZE;
    let size = used.next_power_of_two().max(2 * PAGE_SIZE);

    let per_thread = settings.stack + ssa_pages * PAGE_SIZE;
    let unmeasured_pages = (settings.heap + per_thread * settings.threads as u64) / PAGE_SIZE;
    let measured_pages = pages.len() as u64 + settings.threads as u64 + 1;
    let capacity = 64 + unmeasured_pages * 64 + measured_pages * (64 + 16 * (64 + 256));
    let mut w = SgxsWriter::new(1, size, usize::try_from(capacity).unwrap_or(0));

    let zero = [0u8; PAGE];
    for (offset, page) in &pages {
        w.add_page(
            *offset,
            page.flags,
            Some(page.data.as_deref().unwrap_or(&zero)),
        );
    }
    if let Some((elf_id, states)) = reuse {
        let key = prefix_key(elf_id, size);
        match states.get(&key) {
            Some(state) => w.resume(state),
            None => states.put(&key, &w.state()),
        }
    }
    let rw = secinfo::R | secinfo::W | secinfo::PT_REG;
    for i in 0..settings.heap / PAGE_SIZE {
        w.add_page(heap_offset + i * PAGE_SIZE, rw, None);
    }
    for t in 0..settings.threads as u64 {
        let stack_offset = threads_start + t * thread_stride;
        for i in 0..settings.stack / PAGE_SIZE {
            w.add_page(stack_offset + i * PAGE_SIZE, rw, None);
        }
        let tcs_offset = stack_offset + settings.stack;
        let ssa_offset = tcs_offset + PAGE_SIZE;
        w.add_page(
            tcs_offset,
            secinfo::PT_TCS,
            Some(&tcs_page(ssa_offset, entry, settings.debug)),
        );
        for i in 0..ssa_pages {
            w.add_page(ssa_offset + i * PAGE_SIZE, rw, None);
        }
    }
    let config = ConfigPage {
        settings,
        entry,
        image_end,
        heap_offset,
        threads_start,
        thread_stride,
        size,
    };
    w.add_page(
        config_offset,
        secinfo::R | secinfo::PT_REG,
        Some(&config.bytes()),
    );

    let (sgxs, mrenclave) = w.finish_measured();
    Ok(Enclave {
        sgxs,
        mrenclave,
        size,
    })
}

/// The TCS (Intel SDM Vol. 3D 34.8): OSSA, NSSA, OENTRY, FS/GS limits; DBGOPTIN in debug.
fn tcs_page(ossa: u64, oentry: u64, debug: bool) -> [u8; PAGE] {
    let mut p = [0u8; PAGE];
    p[8..16].copy_from_slice(&u64::from(debug).to_le_bytes()); // FLAGS.DBGOPTIN
    p[16..24].copy_from_slice(&ossa.to_le_bytes()); // OSSA
    p[28..32].copy_from_slice(&SSA_FRAMES.to_le_bytes()); // NSSA
    p[32..40].copy_from_slice(&oentry.to_le_bytes()); // OENTRY
    p[64..68].copy_from_slice(&0xffff_ffffu32.to_le_bytes()); // FSLIMIT
    p[68..72].copy_from_slice(&0xffff_ffffu32.to_le_bytes()); // GSLIMIT
    p
}

/// The measured configuration page (little-endian fields, see docs/enclave.md).
struct ConfigPage<'a> {
    settings: &'a EnclaveSettings,
    entry: u64,
    image_end: u64,
    heap_offset: u64,
    threads_start: u64,
    thread_stride: u64,
    size: u64,
}

impl ConfigPage<'_> {
    fn bytes(&self) -> [u8; PAGE] {
        let s = self.settings;
        let mut p = [0u8; PAGE];
        let flags = u32::from(s.debug) | (u32::from(s.allow_dlopen) << 1);
        p[0..8].copy_from_slice(CONFIG_MAGIC);
        p[8..12].copy_from_slice(&LAYOUT_VERSION.to_le_bytes());
        p[12..16].copy_from_slice(&flags.to_le_bytes());
        p[16..20].copy_from_slice(&s.threads.to_le_bytes());
        p[20..24].copy_from_slice(&SSA_FRAMES.to_le_bytes());
        let fields = [
            self.entry,
            self.image_end,
            self.heap_offset,
            s.heap,
            s.stack,
            self.threads_start,
            self.thread_stride,
            self.size,
        ];
        for (i, v) in fields.iter().enumerate() {
            p[24 + 8 * i..32 + 8 * i].copy_from_slice(&v.to_le_bytes());
        }
        p
    }
}
