//! Test support: generates a synthetic monorepo of many services in one or more meshes,
//! for scale tests and the no-op benchmark against ninja (`bench/noop.sh`), shared with
//! `examples/gen-monorepo.rs`.
//!
//! The tree it writes under `DIR`:
//!
//! ```text
//! base/usr/bin/app                  a static x86-64 ELF (assembled here) doing exit(0)
//! services/svc-NNNN/service.yml     a `genImage` service manifest, build.kind `binary`
//! services/svc-NNNN/main.cfg        copied into the image
//! services/svc-NNNN/lib/file-K.txt  copied into the image (K = 0..files_per_service)
//! mesh.yml | mesh-K.yml             one Meshfile per mesh (mesh-K.yml when meshes > 1)
//! scone.toml                        `members = ["mesh*.yml"]` (with `Link::Members`)
//! build.ninja                       the user's view for ninja: per service, one stamp over
//!                                   its input files; per mesh, one over its Meshfile and
//!                                   its services' stamps (outputs in ninja-out/)
//! ```
//!
//! Everything is a pure function of [`MonorepoOptions`]: the same options give the same
//! bytes, wherever `DIR` is (all paths inside the tree are relative).

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

/// The base rootfs entry binary, relative to the base folder.
pub const APP_PATH: &str = "usr/bin/app";

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonorepoOptions {
    /// Number of services (1..=10000; names are svc-0000 … svc-9999).
    pub services: usize,
    /// Number of meshes the services are split into, in contiguous blocks (1..=services).
    pub meshes: usize,
    /// Files under each service's `lib/` (besides its `main.cfg`).
    pub files_per_service: usize,
    /// Size in bytes of each `main.cfg` and `lib/file-K.txt`.
    pub file_size: usize,
    /// How the Meshfiles find their services' manifests.
    pub link: Link,
}

/// How a mesh service is linked to its service manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Link {
    /// `manifest: services/svc-NNNN/service.yml` in the Meshfile.
    #[default]
    Manifest,
    /// By image: scone searches the tree for the manifest whose `build.to`
    /// is the service's `image`.
    Image,
    /// By image, and the Meshfiles are `scone.toml` members (no `-f`).
    Members,
}

impl Default for MonorepoOptions {
    fn default() -> Self {
        MonorepoOptions {
            services: 10,
            meshes: 1,
            files_per_service: 3,
            file_size: 512,
            link: Link::Manifest,
        }
    }
}

/// The generated tree.
#[derive(Debug, Clone)]
pub struct Monorepo {
    /// `DIR` itself.
    pub root: PathBuf,
    /// The Meshfiles, in mesh order.
    pub meshfiles: Vec<PathBuf>,
    /// Per service, in order: (mesh service name, `build.name`, service folder).
    pub services: Vec<(String, String, PathBuf)>,
    /// The base rootfs folder (`DIR/base`).
    pub base: PathBuf,
    /// `DIR/build.ninja`.
    pub build_ninja: PathBuf,
}

/// Writes the monorepo into `dir` (created if missing, must otherwise be empty) and
/// panics with the reason if it cannot: the form tests want.
pub fn generate(dir: &Path, opts: MonorepoOptions) -> Monorepo {
    match try_generate(dir, opts) {
        Ok(repo) => repo,
        Err(err) => panic!("cannot generate a monorepo in {}: {err}", dir.display()),
    }
}

/// Sets every time of every path under `dir` (links themselves, not what
/// they point to) to 2020-09-13: a tree made within the racy window of a
/// build's start is (rightly) not trusted by its stats alone, so a test that
/// wants the next build to be a no-op or to reuse by stat ages its tree first.
pub fn age_tree(dir: &Path) {
    let past = filetime::FileTime::from_unix_time(1_600_000_000, 0);
    for entry in walkdir::WalkDir::new(dir).contents_first(true) {
        let entry = entry.unwrap();
        filetime::set_symlink_file_times(entry.path(), past, past).unwrap();
    }
}

/// Writes the monorepo into `dir` (created if missing, must otherwise be empty).
pub fn try_generate(dir: &Path, opts: MonorepoOptions) -> io::Result<Monorepo> {
    check_options(&opts)?;
    std::fs::create_dir_all(dir)?;
    if std::fs::read_dir(dir)?.next().is_some() {
        return Err(invalid(format!(
            "{} is not empty; give a new or empty folder",
            dir.display()
        )));
    }
    let root = dir.to_path_buf();

    let base = root.join("base");
    write_file(&base.join(APP_PATH), &minimal_elf(), 0o755)?;

    let mut services = Vec::with_capacity(opts.services);
    for index in 0..opts.services {
        let folder = root.join(service_folder(index));
        write_service(&folder, index, &opts)?;
        services.push((service_name(index), service_name(index), folder));
    }

    let mut meshfiles = Vec::with_capacity(opts.meshes);
    for mesh in 0..opts.meshes {
        let path = root.join(meshfile_name(mesh, &opts));
        write_file(&path, meshfile(mesh, &opts).as_bytes(), 0o644)?;
        meshfiles.push(path);
    }

    if opts.link == Link::Members {
        write_file(
            &root.join("scone.toml"),
            b"members = [\"mesh*.yml\"]\n",
            0o644,
        )?;
    }

    let build_ninja = root.join("build.ninja");
    write_file(&build_ninja, build_ninja_text(&opts).as_bytes(), 0o644)?;

    Ok(Monorepo {
        root,
        meshfiles,
        services,
        base,
        build_ninja,
    })
}

/// The smallest useful static Linux x86-64 executable: an ELF64 header, one `PT_LOAD`
/// program header (R+X, mapping the whole file at 0x400000) and 9 bytes of code doing
/// `exit(0)`. 129 bytes, no section headers, no interpreter.
pub fn minimal_elf() -> Vec<u8> {
    const VADDR: u64 = 0x40_0000;
    const EHDR_SIZE: u16 = 64;
    const PHDR_SIZE: u16 = 56;
    const ET_EXEC: u16 = 2;
    const EM_X86_64: u16 = 62;
    const PT_LOAD: u32 = 1;
    const PF_R_X: u32 = 0b101;
    // mov eax, 60 (SYS_exit); xor edi, edi (status 0); syscall
    const CODE: [u8; 9] = [0xb8, 0x3c, 0x00, 0x00, 0x00, 0x31, 0xff, 0x0f, 0x05];

    let headers = u64::from(EHDR_SIZE + PHDR_SIZE);
    let size = headers + CODE.len() as u64;
    let mut elf = Vec::with_capacity(size as usize);
    // e_ident: magic, ELFCLASS64, ELFDATA2LSB, EV_CURRENT, ELFOSABI_SYSV, padding.
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&ET_EXEC.to_le_bytes()); // e_type
    elf.extend_from_slice(&EM_X86_64.to_le_bytes()); // e_machine
    elf.extend_from_slice(&1u32.to_le_bytes()); // e_version
    elf.extend_from_slice(&(VADDR + headers).to_le_bytes()); // e_entry: the code
    elf.extend_from_slice(&u64::from(EHDR_SIZE).to_le_bytes()); // e_phoff
    elf.extend_from_slice(&0u64.to_le_bytes()); // e_shoff: no sections
    elf.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    elf.extend_from_slice(&EHDR_SIZE.to_le_bytes()); // e_ehsize
    elf.extend_from_slice(&PHDR_SIZE.to_le_bytes()); // e_phentsize
    elf.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    elf.extend_from_slice(&64u16.to_le_bytes()); // e_shentsize
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shnum
    elf.extend_from_slice(&0u16.to_le_bytes()); // e_shstrndx
                                                // The program header: one segment mapping the whole file, headers included.
    elf.extend_from_slice(&PT_LOAD.to_le_bytes()); // p_type
    elf.extend_from_slice(&PF_R_X.to_le_bytes()); // p_flags
    elf.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    elf.extend_from_slice(&VADDR.to_le_bytes()); // p_vaddr
    elf.extend_from_slice(&VADDR.to_le_bytes()); // p_paddr
    elf.extend_from_slice(&size.to_le_bytes()); // p_filesz
    elf.extend_from_slice(&size.to_le_bytes()); // p_memsz
    elf.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    elf.extend_from_slice(&CODE);
    debug_assert_eq!(elf.len() as u64, size);
    elf
}

/// `svc_NNNN`: the service's name in the mesh and its `build.name`.
pub fn service_name(index: usize) -> String {
    format!("svc_{index:04}")
}

/// `services/svc-NNNN`, relative to the root.
pub fn service_folder(index: usize) -> String {
    format!("services/svc-{index:04}")
}

/// The image a service builds to (`build.to`, the Meshfile's `image`).
pub fn service_image(index: usize) -> String {
    format!("127.0.0.1:5000/mono/svc-{index:04}:latest")
}

/// The mesh (0-based) service `index` belongs to: services are split into contiguous,
/// non-empty blocks.
pub fn mesh_of(index: usize, opts: &MonorepoOptions) -> usize {
    index * opts.meshes / opts.services
}

/// The policy namespace of mesh `mesh`.
pub fn mesh_namespace(mesh: usize) -> String {
    format!("mono-{mesh}")
}

/// `mesh.yml` for a single mesh, `mesh-K.yml` otherwise.
pub fn meshfile_name(mesh: usize, opts: &MonorepoOptions) -> String {
    if opts.meshes == 1 {
        "mesh.yml".to_string()
    } else {
        format!("mesh-{mesh}.yml")
    }
}

/// The copied inputs of a service, relative to its folder, in sorted order.
pub fn service_inputs(opts: &MonorepoOptions) -> Vec<String> {
    let mut inputs: Vec<String> = (0..opts.files_per_service)
        .map(|k| format!("lib/file-{k}.txt"))
        .collect();
    inputs.push("main.cfg".to_string());
    inputs.sort();
    inputs
}

fn check_options(opts: &MonorepoOptions) -> io::Result<()> {
    if !(1..=10_000).contains(&opts.services) {
        return Err(invalid(format!(
            "services must be 1..=10000 (4-digit names), not {}",
            opts.services
        )));
    }
    if !(1..=opts.services).contains(&opts.meshes) {
        return Err(invalid(format!(
            "meshes must be 1..={} (every mesh needs a service), not {}",
            opts.services, opts.meshes
        )));
    }
    Ok(())
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

fn write_service(folder: &Path, index: usize, opts: &MonorepoOptions) -> io::Result<()> {
    write_file(
        &folder.join("service.yml"),
        service_manifest(index).as_bytes(),
        0o644,
    )?;
    let seed = (index as u64) << 32;
    write_file(
        &folder.join("main.cfg"),
        &content(seed | 0xffff_ffff, opts.file_size),
        0o644,
    )?;
    for k in 0..opts.files_per_service {
        write_file(
            &folder.join(format!("lib/file-{k}.txt")),
            &content(seed | k as u64, opts.file_size),
            0o644,
        )?;
    }
    Ok(())
}

fn service_manifest(index: usize) -> String {
    let name = service_name(index);
    let image = service_image(index);
    format!(
        r#"apiVersion: scone/5.8
kind: genImage

environment:
  local:
    - name: SERVICE_ID
      value: "{name}"
    - name: SERVICE_SECRET
      value: "$$SCONE::secret_{index:04}$$"
  global:
    - name: LOG_LEVEL

secrets:
  local:
    - name: secret_{index:04}
      kind: ascii
      size: 16

build:
  name: {name}
  kind: binary
  from: "dir:../../base"
  to: "{image}"
  pwd: /app
  command: "app main.cfg"
  copy:
    - main.cfg
    - lib
"#
    )
}

fn meshfile(mesh: usize, opts: &MonorepoOptions) -> String {
    let mut out = format!(
        r#"apiVersion: scone/5.8
kind: mesh

cas:
  - name: cas
    cas_url: "127.0.0.1:8081"

policy:
  namespace: {namespace}

env:
  - name: LOG_LEVEL
    value: info

services:
"#,
        namespace = mesh_namespace(mesh)
    );
    for index in (0..opts.services).filter(|&i| mesh_of(i, opts) == mesh) {
        // Writing into a String cannot fail.
        let _ = write!(
            out,
            "  - name: {}\n    image: \"{}\"\n",
            service_name(index),
            service_image(index),
        );
        if opts.link == Link::Manifest {
            let _ = writeln!(out, "    manifest: {}/service.yml", service_folder(index));
        }
    }
    out
}

/// The user's view of "nothing to do" as ninja edges: per service one stamp
/// over the files a build of it reads (its manifest, its copied files, the
/// base's entry binary), per mesh one stamp over its Meshfile and its
/// services' stamps. ninja knows nothing of scone's internal outputs, so a
/// no-op measures only its up-to-date check of the sources.
fn build_ninja_text(opts: &MonorepoOptions) -> String {
    let mut out = String::from(
        "# Generated by the scone monorepo generator (tests/support/monorepo.rs): the\n\
         # inputs of this tree as ninja edges, for the no-op benchmark (bench/noop.sh).\n\
         ninja_required_version = 1.10\n\
         builddir = ninja-out\n\n\
         rule stamp\n  command = cat $in > $out\n  description = stamp $out\n\n",
    );
    let inputs = service_inputs(opts);
    for index in 0..opts.services {
        let folder = service_folder(index);
        let _ = write!(
            out,
            "build ninja-out/svc-{index:04}.stamp: stamp {folder}/service.yml"
        );
        for input in &inputs {
            let _ = write!(out, " $\n    {folder}/{input}");
        }
        let _ = write!(out, " $\n    base/{APP_PATH}\n\n");
    }
    let mut meshes = Vec::with_capacity(opts.meshes);
    for mesh in 0..opts.meshes {
        let stamp = format!("ninja-out/{}.stamp", mesh_namespace(mesh));
        let _ = write!(out, "build {stamp}: stamp {}", meshfile_name(mesh, opts));
        for index in (0..opts.services).filter(|&i| mesh_of(i, opts) == mesh) {
            let _ = write!(out, " $\n    ninja-out/svc-{index:04}.stamp");
        }
        out.push_str("\n\n");
        meshes.push(stamp);
    }
    let _ = writeln!(out, "default {}", meshes.join(" "));
    out
}

/// `size` bytes of deterministic pseudo-random text (lowercase letters and digits,
/// 64 per line) from `seed`, by splitmix64.
fn content(seed: u64, size: usize) -> Vec<u8> {
    const ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    (0..size)
        .map(|pos| {
            if pos % 65 == 64 {
                b'\n'
            } else {
                ALPHABET[(next() % ALPHABET.len() as u64) as usize]
            }
        })
        .collect()
}

/// Writes `bytes` to `path` with `mode`, creating parent folders: a temp file in the
/// same folder, then a rename, so a reader never sees half a file. (No fsync: these are
/// scratch fixtures, and 1000 services × 5 fsyncs would dominate generation time.)
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;

    let parent = path
        .parent()
        .ok_or_else(|| invalid(format!("{} has no parent folder", path.display())))?;
    std::fs::create_dir_all(parent)?;
    let name = path
        .file_name()
        .ok_or_else(|| invalid(format!("{} has no file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = parent.join(tmp_name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)?;
    file.write_all(bytes)?;
    // The umask may have narrowed `mode`; set it exactly, for deterministic trees.
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
    drop(file);
    std::fs::rename(&tmp, path)
}
