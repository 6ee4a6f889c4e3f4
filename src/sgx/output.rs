//! Writing enclave outputs crash-safely: one file (`write_atomic`) or the whole
//! `target/enclave/<service>/` folder (`enclave.sgxs`, `sigstruct.bin`, `mrenclave`,
//! `mrsigner`; the last two as lowercase hex and a newline), or a file the user
//! named (`write_user_output`: `scone enclave sign -o`), which is written whole the
//! same way and so refused where that would replace something other than a file:
//! a device, a FIFO, a folder, a link, or an input of the command.

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::error::SgxError;
use super::layout::Enclave;
use super::sigstruct::Sigstruct;

/// Writes `bytes` to `path` crash-safely ([`crate::durable::write`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SgxError> {
    crate::durable::write(path, bytes).map_err(|e| SgxError::io(path, e))
}

/// Checks that `path`, an output the user named, may be replaced by a new file:
/// it does not exist, or it is a regular file (not a link) that is none of
/// `inputs` (`(flag, path)`: compared by device and inode, so also through
/// another name or a hard link).
pub fn check_user_output(path: &Path, inputs: &[(&str, &Path)]) -> Result<(), SgxError> {
    let refuse = |reason: String| SgxError::OutputRefused {
        path: path.to_path_buf(),
        reason,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SgxError::io(path, e)),
    };
    const WHOLE: &str = "the SIGSTRUCT is written as a new file put in place of the old one";
    if meta.file_type().is_symlink() {
        let to = std::fs::read_link(path)
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let what = match std::fs::metadata(path) {
            Ok(target) => crate::regular_file::not_a_file(&target),
            Err(_) => None,
        };
        return Err(refuse(match what {
            Some(what) => format!(
                "is a link to {what} ({to}), not a regular file: {WHOLE}, which would \
                 replace the link; give a file path (then `cat` or copy that file)"
            ),
            None => format!(
                "is a symbolic link (to {to}): {WHOLE}, which would replace the link, not \
                 write through it; give the path it leads to"
            ),
        }));
    }
    if let Some(what) = crate::regular_file::not_a_file(&meta) {
        return Err(refuse(format!(
            "is {what}, not a regular file: {WHOLE}, which would replace it; give a file \
             path (then `cat` or copy that file)"
        )));
    }
    for (flag, input) in inputs {
        if let Ok(theirs) = std::fs::metadata(input) {
            if (theirs.dev(), theirs.ino()) == (meta.dev(), meta.ino()) {
                return Err(refuse(format!(
                    "is the same file as {flag} {}: writing the output would destroy it; \
                     give another output path",
                    input.display()
                )));
            }
        }
    }
    Ok(())
}

/// Writes `bytes` to `path`, an output the user named, crash-safely, once
/// [`check_user_output`] allows it.
pub fn write_user_output(
    path: &Path,
    bytes: &[u8],
    inputs: &[(&str, &Path)],
) -> Result<(), SgxError> {
    check_user_output(path, inputs)?;
    write_atomic(path, bytes)
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
