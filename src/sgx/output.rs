//! Writing enclave outputs crash-safely: one file (`write_atomic`) or the whole
//! `target/enclave/<service>/` folder (`enclave.sgxs`, `sigstruct.bin`, `mrenclave`,
//! `mrsigner`; the last two as lowercase hex and a newline).

use std::path::Path;

use super::error::SgxError;
use super::layout::Enclave;
use super::sigstruct::Sigstruct;

/// Writes `bytes` to `path` crash-safely ([`crate::durable::write`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SgxError> {
    crate::durable::write(path, bytes).map_err(|e| SgxError::io(path, e))
}

/// Writes `enclave.sgxs`, `sigstruct.bin`, `mrenclave` and `mrsigner` into `dir`.
pub fn write_enclave_dir(
    dir: &Path,
    enclave: &Enclave,
    sigstruct: &Sigstruct,
) -> Result<(), SgxError> {
    write_atomic(&dir.join("enclave.sgxs"), &enclave.sgxs)?;
    write_atomic(&dir.join("sigstruct.bin"), &sigstruct.to_bytes())?;
    write_atomic(
        &dir.join("mrenclave"),
        format!("{}\n", hex::encode(enclave.mrenclave)).as_bytes(),
    )?;
    write_atomic(
        &dir.join("mrsigner"),
        format!("{}\n", hex::encode(sigstruct.mrsigner())).as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sgx::layout::{build_enclave, EnclaveSettings};
    use crate::sgx::measure::measure;

    #[test]
    fn enclave_dir_holds_consistent_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let elf = std::fs::read("/bin/ls").expect("/bin/ls");
        let settings = EnclaveSettings {
            heap: 1 << 20,
            threads: 1,
            ..EnclaveSettings::default()
        };
        let enclave = build_enclave(&elf, &settings).expect("layout");
        let key = crate::sgx::tests::sig1_key();
        let sig = Sigstruct::sign(&key, &Default::default(), &enclave.mrenclave).expect("signs");
        let out = dir.path().join("enclave/python_hello_user");
        write_enclave_dir(&out, &enclave, &sig).expect("writes");
        let sgxs = std::fs::read(out.join("enclave.sgxs")).expect("sgxs");
        let mrenclave = std::fs::read_to_string(out.join("mrenclave")).expect("mrenclave");
        assert_eq!(
            mrenclave.trim(),
            hex::encode(measure(&sgxs).expect("valid").mrenclave)
        );
        let back = Sigstruct::from_bytes(&std::fs::read(out.join("sigstruct.bin")).expect("sig"))
            .expect("1808");
        assert_eq!(back.enclavehash(), enclave.mrenclave);
        let mrsigner = std::fs::read_to_string(out.join("mrsigner")).expect("mrsigner");
        assert_eq!(mrsigner, format!("{}\n", hex::encode(key.mrsigner())));
        let names: Vec<_> = std::fs::read_dir(&out)
            .expect("list")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 4, "no temp files left: {names:?}");
    }
}
