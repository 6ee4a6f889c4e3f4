//! SGX enclave measurement (MRENCLAVE), SIGSTRUCT signing and verification, the
//! scone enclave layout, and file-system protection tags.
