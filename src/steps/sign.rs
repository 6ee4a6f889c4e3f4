//! `sign:<service>`: measure the enclave (MRENCLAVE) of the service's entry
//! binary with its `SCONE_*` enclave settings, sign a SIGSTRUCT, and compute the
//! file-system protection tag over the image's whole file system
//! ([`crate::sgx::fspf`]). Published in
//! `target/enclave/<service>/`. A base layer's index, the binary read out of it, the
//! enclave of a binary and settings and its SIGSTRUCT are computed once per store and
//! reused ([`reuse`]): a source edit re-signs a python service without reading its
//! base layer or measuring its enclave again.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::image::ImageRecord;
use super::{from_record, param, to_record};
use crate::engine::{
    BlobSource, Input, Publish, PublishFile, Step, StepContext, StepError, StepId, StepOutput,
};
use crate::sgx::fspf::{fspf_tag, image_entries};
use crate::sgx::keys::SigningKey;
use crate::sgx::layout::EnclaveSettings;
use crate::sgx::sigstruct::SigstructParams;

pub(crate) mod memo;
mod reuse;

use memo::Memo;

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
#[derive(Serialize, Deserialize)]
pub struct SignStep {
    pub id: StepId,
    pub service: String,
    /// The first word of `command`, or `build.binary`.
    pub binary: String,
    /// Where the binary is named, for errors: `service.yml:LINE:COL: `field` `value``
    /// (not a parameter: moving the field does not sign again).
    pub origin: String,
    /// The service's `SCONE_*` locals.
    pub enclave_env: Vec<(String, String)>,
    pub debug: bool,
    /// SIGSTRUCT date, BCD (`SOURCE_DATE_EPOCH`).
    pub date: u32,
    pub key: PathBuf,
}

impl Step for SignStep {
    fn stored(&self) -> Option<String> {
        serde_json::to_string(self).ok()
    }
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
        vec![Input::Read {
            label: "signing-key".into(),
            path: self.key.clone(),
        }]
    }

    fn run(&self, cx: &StepContext<'_>) -> Result<StepOutput, StepError> {
        let image: ImageRecord = from_record(&cx.dep("image")?.record)?;
        let layers: Vec<(String, PathBuf)> = image
            .layer_blobs
            .iter()
            .map(|b| Ok((b.clone(), cx.blob_path(b)?)))
            .collect::<Result<_, StepError>>()?;
        let memo = Memo::new(cx.store.root());
        let (rootfs, mut captured) = reuse::root_fs(&memo, &layers, &self.binary)?;
        let binary_path = if self.binary.contains('/') {
            Some(self.binary.clone())
        } else {
            rootfs
                .which(&self.binary, &image.path_var)
                .map_err(|e| StepError::context("looking up the entry binary", e))?
        };
        let binary_path = binary_path.ok_or_else(|| {
            StepError::new(format!(
                "{}: the entry binary `{}` is not in the image (PATH={}); set `build.binary` or use a base image that has it",
                self.origin, self.binary, image.path_var
            ))
        })?;
        let at = rootfs
            .locate(&binary_path)
            .map_err(|e| StepError::context(format!("reading {binary_path}"), e))?
            .ok_or_else(|| {
                StepError::new(format!(
                    "{}: the entry binary {binary_path} is not in the image; point the field at a file of the image, or copy it there",
                    self.origin
                ))
            })?;
        let elf = reuse::entry_binary(&memo, &rootfs, &layers, &mut captured, &at, &binary_path)?;
        drop(captured);

        let mut settings = EnclaveSettings::from_env(&self.enclave_env)
            .map_err(|e| StepError::context(format!("enclave settings of {}", self.service), e))?;
        settings.debug = self.debug;
        let read = || reuse::read_binary(&rootfs, &at, &binary_path);
        let enclave = reuse::enclave(&memo, cx, &elf, read, &settings, &binary_path)?;
        let mrenclave_bytes: [u8; 32] = hex::decode(&enclave.mrenclave)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| StepError::new("internal: a measured MRENCLAVE is not 32 bytes"))?;
        let (key, pem) = SigningKey::load_with_text(&self.key)
            .map_err(|e| StepError::context("signing key", e))?;
        let params = SigstructParams::for_mode(self.debug, self.date);
        let sigstruct = reuse::sigstruct(
            &memo,
            &key,
            blake3::hash(pem.as_bytes()).as_bytes(),
            &params,
            &mrenclave_bytes,
        )?;

        // Every file of the image: the service's own, the packages', the base's.
        let mut protected = image_entries(&rootfs).map_err(|e| {
            StepError::new(format!("the file system of {}'s image: {e}", self.service))
        })?;
        let tag = fspf_tag(&mut protected);

        let mrenclave = enclave.mrenclave;
        let mrsigner = hex::encode(key.mrsigner());
        // Straight into the store: all but the fspf tag are usually there already
        // (the same enclave and key), and then nothing is written.
        let mut stored = BTreeMap::from([("enclave.sgxs".to_string(), enclave.sgxs)]);
        for (name, bytes) in [
            ("sigstruct.bin", sigstruct.to_bytes().to_vec()),
            ("mrenclave", format!("{mrenclave}\n").into_bytes()),
            ("mrsigner", format!("{mrsigner}\n").into_bytes()),
            ("fspf_tag", format!("{tag}\n").into_bytes()),
        ] {
            stored.insert(name.to_string(), cx.store_bytes(&bytes)?);
        }
        let publish = Publish::Dir {
            dir: format!("enclave/{}", self.service),
            files: stored
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
            stored,
            publish: vec![publish],
            ..StepOutput::default()
        })
    }
}
