//! An image's enclave recomputed from the image alone, as the `sign` step
//! computes it, with no SGX hardware: the entry binary (the first word of
//! the image's entrypoint, looked up on its `PATH`, or the binary the
//! provenance names), the `SCONE_*` settings of its environment (or the
//! provenance's), MRENCLAVE of the measured layout, and the fspf tag over
//! the files of the service's own layer and the entry binary.

use std::path::PathBuf;

use serde_json::Value;

use crate::oci::rootfs::{open_layer, RootFs};
use crate::sgx::fspf::{fspf_tag, FspfEntry};
use crate::sgx::layout::{build_enclave, EnclaveSettings};

/// What could not be recomputed.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ImageError(pub String);

/// What to use instead of what the image says (from its provenance, or
/// given on the command line).
#[derive(Clone, Debug, Default)]
pub struct Hints {
    /// The entry binary's path in the image.
    pub binary: Option<String>,
    /// The `SCONE_*` enclave settings.
    pub enclave_env: Option<Vec<(String, String)>>,
}

/// The recomputed enclave.
#[derive(Clone, Debug)]
pub struct ImageEnclave {
    /// The entry binary's real path in the image.
    pub binary: String,
    pub enclave_env: Vec<(String, String)>,
    pub debug: bool,
    pub mrenclave: String,
    pub fspf_tag: String,
    /// The protected files (the service's own layer and the binary).
    pub protected: Vec<String>,
    /// `dev.scone.service`, when the image was built by scone.
    pub service: Option<String>,
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// Recomputes the enclave of the image with `config` (its config JSON) and
/// `layers` (blob files, bottom first; `diff_ids` says which is which), in
/// debug or production mode.
pub fn recompute(
    config: &[u8],
    layers: &[PathBuf],
    hints: &Hints,
    debug: bool,
) -> Result<ImageEnclave, ImageError> {
    let doc: Value = serde_json::from_slice(config)
        .map_err(|e| ImageError(format!("the image config is not JSON: {e}")))?;
    let cfg = &doc["config"];
    let env = strings(&cfg["Env"]);
    let path_var = env
        .iter()
        .find_map(|v| v.strip_prefix("PATH="))
        .unwrap_or(crate::oci::image::DEFAULT_PATH)
        .to_string();
    let pwd = cfg["WorkingDir"].as_str().unwrap_or("/").to_string();
    let rootfs = RootFs::open(layers).map_err(|e| ImageError(format!("reading the image: {e}")))?;
    let word = match &hints.binary {
        Some(b) => b.clone(),
        None => strings(&cfg["Entrypoint"])
            .into_iter()
            .chain(strings(&cfg["Cmd"]))
            .next()
            .ok_or_else(|| {
                ImageError("the image has no entrypoint or command: give the entry binary".into())
            })?,
    };
    let word = if word.contains('/') && !word.starts_with('/') {
        format!(
            "{}/{}",
            pwd.trim_end_matches('/'),
            word.trim_start_matches("./")
        )
    } else {
        word
    };
    let binary = rootfs
        .which(&word, &path_var)
        .map_err(|e| ImageError(format!("looking up {word}: {e}")))?
        .ok_or_else(|| {
            ImageError(format!(
                "the entry binary `{word}` is not in the image (PATH={path_var})"
            ))
        })?;
    let elf = rootfs
        .read_file(&binary)
        .map_err(|e| ImageError(format!("reading {binary}: {e}")))?
        .ok_or_else(|| ImageError(format!("{binary} is not in the image")))?;
    let enclave_env = match &hints.enclave_env {
        Some(env) => env.clone(),
        None => env
            .iter()
            .filter_map(|v| v.split_once('='))
            .filter(|(k, _)| k.starts_with("SCONE_"))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let mut settings = EnclaveSettings::from_env(&enclave_env)
        .map_err(|e| ImageError(format!("the enclave settings of the image: {e}")))?;
    settings.debug = debug;
    let enclave = build_enclave(&elf, &settings)
        .map_err(|e| ImageError(format!("measuring {binary}: {e}")))?;

    // The service's own layer: the one the image's label names, else the top one.
    let diff_ids = strings(&doc["rootfs"]["diff_ids"]);
    let labels = &cfg["Labels"];
    let own = labels["dev.scone.layer.diff_id"]
        .as_str()
        .and_then(|id| diff_ids.iter().position(|d| d == id))
        .or(layers.len().checked_sub(1))
        .ok_or_else(|| ImageError("the image has no layers".into()))?;
    let mut entries = own_files(&layers[own])?;
    let protected: Vec<String> = entries
        .iter()
        .map(|e| e.path.clone())
        .chain(std::iter::once(binary.clone()))
        .collect();
    entries.push(FspfEntry::from_contents(binary.clone(), 0o755, &elf));
    Ok(ImageEnclave {
        binary,
        enclave_env,
        debug,
        mrenclave: hex::encode(enclave.mrenclave),
        fspf_tag: fspf_tag(&mut entries),
        protected,
        service: labels["dev.scone.service"].as_str().map(str::to_string),
    })
}

/// The fspf entries of a layer's regular files (mode 0755 when executable,
/// else 0644, as the layer step writes them) and symbolic links.
fn own_files(layer: &std::path::Path) -> Result<Vec<FspfEntry>, ImageError> {
    let bad = |e: std::io::Error| ImageError(format!("reading the service's layer: {e}"));
    let reader = open_layer(layer).map_err(|e| ImageError(e.to_string()))?;
    let mut archive = tar::Archive::new(reader);
    let mut out = Vec::new();
    for entry in archive.entries().map_err(bad)? {
        let entry = entry.map_err(bad)?;
        let kind = entry.header().entry_type();
        let link = kind == tar::EntryType::Symlink;
        if !link && !matches!(kind, tar::EntryType::Regular | tar::EntryType::Continuous) {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path: Vec<&str> = raw
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        if link {
            let target = entry.link_name_bytes().ok_or_else(|| {
                ImageError(format!(
                    "reading the service's layer: the link {raw} has no target"
                ))
            })?;
            let target = String::from_utf8_lossy(&target).into_owned();
            out.push(FspfEntry::link(format!("/{}", path.join("/")), target));
            continue;
        }
        let mode = entry.header().mode().map_err(bad)?;
        let mode = if mode & 0o111 != 0 { 0o755 } else { 0o644 };
        let size = entry.header().size().map_err(bad)?;
        out.push(
            FspfEntry::from_reader(format!("/{}", path.join("/")), mode, entry, size)
                .map_err(bad)?,
        );
    }
    Ok(out)
}
