//! `sign:<service>`: measure the enclave (MRENCLAVE) of the service's entry
//! binary with its `SCONE_*` enclave settings, sign a SIGSTRUCT, and compute the
//! file-system protection tag over the protected files. Published in
//! `target/enclave/<service>/`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::copy::CopyRecord;
use super::image::ImageRecord;
use super::{from_record, param, to_record};
use crate::engine::{
    BlobSource, Input, Publish, PublishFile, Step, StepContext, StepError, StepId, StepOutput,
};
use crate::oci::rootfs::RootFs;
use crate::sgx::fspf::{fspf_tag, FspfEntry};
use crate::sgx::keys::SigningKey;
use crate::sgx::layout::{build_enclave, EnclaveSettings};
use crate::sgx::sigstruct::{Sigstruct, SigstructParams};

/// The record of a sign step.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignRecord {
    pub mrenclave: String,
    pub mrsigner: String,
    pub fspf_tag: String,
    /// The entry binary's path in the image.
    pub binary: String,
}

/// See the module documentation.
pub struct SignStep {
    pub id: StepId,
    pub service: String,
    /// The first word of `command`, or `build.binary`.
    pub binary: String,
    /// The service's `SCONE_*` locals.
    pub enclave_env: Vec<(String, String)>,
    pub debug: bool,
    /// SIGSTRUCT date, BCD (`SOURCE_DATE_EPOCH`).
    pub date: u32,
    pub key: PathBuf,
}

impl Step for SignStep {
    fn id(&self) -> &StepId {
        &self.id
    }

    fn params(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            ("binary".to_string(), self.binary.clone()),
            ("enclave-env".to_string(), param(&self.enclave_env)),
            ("debug".to_string(), self.debug.to_string()),
            ("date".to_string(), format!("{:08x}", self.date)),
        ])
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::File {
            label: "signing-key".into(),
            path: self.key.clone(),
        }]
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let image: ImageRecord = from_record(&cx.dep("image")?.record)?;
        let staged: CopyRecord = from_record(&cx.dep("copy")?.record)?;
        let layers: Vec<PathBuf> = image
            .layer_blobs
            .iter()
            .map(|b| cx.blob_path(b))
            .collect::<Result<_, _>>()?;
        let rootfs =
            RootFs::open(&layers).map_err(|e| StepError::context("reading the image", e))?;
        let binary_path = if self.binary.contains('/') {
            Some(self.binary.clone())
        } else {
            rootfs
                .which(&self.binary, &image.path_var)
                .map_err(|e| StepError::context("looking up the entry binary", e))?
        };
        let binary_path = binary_path.ok_or_else(|| {
            StepError::new(format!(
                "the entry binary `{}` is not in the image (PATH={}); set `build.binary` or use a base image that has it",
                self.binary, image.path_var
            ))
        })?;
        let elf = rootfs
            .read_file(&binary_path)
            .map_err(|e| StepError::context(format!("reading {binary_path}"), e))?
            .ok_or_else(|| {
                StepError::new(format!(
                    "the entry binary {binary_path} is not in the image"
                ))
            })?;

        let mut settings = EnclaveSettings::from_env(&self.enclave_env)
            .map_err(|e| StepError::context(format!("enclave settings of {}", self.service), e))?;
        settings.debug = self.debug;
        let enclave = build_enclave(&elf, &settings)
            .map_err(|e| StepError::context(format!("measuring {binary_path}"), e))?;
        let key = SigningKey::load(&self.key).map_err(|e| StepError::context("signing key", e))?;
        let params = SigstructParams::for_mode(self.debug, self.date);
        let sigstruct = Sigstruct::sign(&key, &params, &enclave.mrenclave)
            .map_err(|e| StepError::context("signing the enclave", e))?;

        let mut protected = Vec::new();
        for e in &staged.entries {
            if let Some(blob) = &e.blob {
                let bytes = std::fs::read(cx.blob_path(blob)?)
                    .map_err(|err| StepError::context(format!("reading {}", e.path), err))?;
                let mode = if e.executable { 0o755 } else { 0o644 };
                protected.push(FspfEntry::from_contents(
                    format!("/{}", e.path),
                    mode,
                    &bytes,
                ));
            }
        }
        protected.push(FspfEntry::from_contents(binary_path.clone(), 0o755, &elf));
        let tag = fspf_tag(&mut protected);

        let mrenclave = hex::encode(enclave.mrenclave);
        let mrsigner = hex::encode(key.mrsigner());
        let mut files = BTreeMap::new();
        for (name, bytes) in [
            ("enclave.sgxs", enclave.sgxs),
            ("sigstruct.bin", sigstruct.to_bytes().to_vec()),
            ("mrenclave", format!("{mrenclave}\n").into_bytes()),
            ("mrsigner", format!("{mrsigner}\n").into_bytes()),
            ("fspf_tag", format!("{tag}\n").into_bytes()),
        ] {
            let path = cx.scratch.join(name);
            std::fs::write(&path, bytes)
                .map_err(|e| StepError::context("writing enclave files", e))?;
            files.insert(name.to_string(), path);
        }
        let publish = Publish::Dir {
            dir: format!("enclave/{}", self.service),
            files: files
                .keys()
                .map(|name| PublishFile {
                    path: name.clone(),
                    source: BlobSource::Own(name.clone()),
                })
                .collect(),
        };
        Ok(StepOutput {
            record: to_record(&SignRecord {
                mrenclave,
                mrsigner,
                fspf_tag: tag,
                binary: binary_path,
            })?,
            files,
            publish: vec![publish],
            ..StepOutput::default()
        })
    }
}
