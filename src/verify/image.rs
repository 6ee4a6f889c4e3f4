//! An image's enclave recomputed from the image alone, as the `sign` step
//! computes it, with no SGX hardware: the entry binary (the first word of
//! the image's entrypoint, looked up on its `PATH`, or the binary the
//! provenance names), the `SCONE_*` settings of its environment (or the
//! provenance's), MRENCLAVE of the measured layout, and the fspf tag over
//! the image's whole file system.

use std::path::PathBuf;

use serde_json::Value;

use crate::oci::rootfs::RootFs;
use crate::sgx::fspf::{fspf_tag, image_entries};
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

    let mut entries =
        image_entries(&rootfs).map_err(|e| ImageError(format!("the image's file system: {e}")))?;
    let labels = &cfg["Labels"];
    Ok(ImageEnclave {
        binary,
        enclave_env,
        debug,
        mrenclave: hex::encode(enclave.mrenclave),
        fspf_tag: fspf_tag(&mut entries),
        service: labels["dev.scone.service"].as_str().map(str::to_string),
    })
}
