//! TLS identities for the CAS: the server CA and certificate `scone cas serve`
//! creates in its CAS directory, the client certificate that identifies a user to
//! a CAS (created on first use in the CAS config directory), and the rustls
//! configurations of both sides. A CAS accepts any client certificate whose key
//! the client proves to hold; the certificate's SHA-256 fingerprint is the
//! client's identity, and the creator of a session owns it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName as TlsName, SignatureScheme};
use sha2::{Digest, Sha256};

use super::durable::{private_dir, read_optional, write_private};
use super::error::CasError;

/// Environment variable that overrides the CAS config directory.
pub const CAS_CONFIG_DIR_ENV: &str = "SCONE_CAS_CONFIG_DIR";

/// The CAS config directory (client identity, trusted CA): `$SCONE_CAS_CONFIG_DIR`,
/// else `<user config dir>/scone/cas`.
pub fn default_config_dir() -> Result<PathBuf, CasError> {
    if let Some(dir) = std::env::var_os(CAS_CONFIG_DIR_ENV).filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    dirs::config_dir()
        .map(|d| d.join("scone").join("cas"))
        .ok_or_else(|| {
            CasError::Identity(format!(
                "no user config directory is known; set {CAS_CONFIG_DIR_ENV}"
            ))
        })
}

/// SHA-256 (hex) of a DER certificate: a client's identity on a CAS.
pub fn cert_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn rcgen_err(what: &str) -> impl FnOnce(rcgen::Error) -> CasError + '_ {
    move |e| CasError::Identity(format!("cannot generate {what}: {e}"))
}

fn certs_from_pem(pem: &str, what: &str) -> Result<Vec<CertificateDer<'static>>, CasError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CasError::Identity(format!("{what} is not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(CasError::Identity(format!(
            "{what} holds no PEM certificate"
        )));
    }
    Ok(certs)
}

fn key_from_pem(pem: &str, what: &str) -> Result<PrivateKeyDer<'static>, CasError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| CasError::Identity(format!("{what} is not a PEM private key")))
}

fn read_text(path: &Path) -> Result<Option<String>, CasError> {
    match read_optional(path)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| CasError::Identity(format!("{} is not a PEM text file", path.display()))),
    }
}

/// A client's TLS identity: certificate and private key, PEM.
#[derive(Clone)]
pub struct ClientIdentity {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key (PKCS#8), PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("fingerprint", &self.fingerprint().unwrap_or_default())
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

impl ClientIdentity {
    /// A new self-signed client certificate (ECDSA P-256) named `common_name`.
    pub fn generate(common_name: &str) -> Result<ClientIdentity, CasError> {
        let key = KeyPair::generate().map_err(rcgen_err("a client key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(rcgen_err("a client certificate"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        params.distinguished_name = dn;
        let cert = params
            .self_signed(&key)
            .map_err(rcgen_err("a client certificate"))?;
        Ok(ClientIdentity {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Reads `client.crt` and `client.key` from `dir`, creating both (mode 0600,
    /// directory 0700) when neither exists.
    pub fn load_or_create(dir: &Path) -> Result<ClientIdentity, CasError> {
        let (cert_path, key_path) = (dir.join("client.crt"), dir.join("client.key"));
        match (read_text(&cert_path)?, read_text(&key_path)?) {
            (Some(cert_pem), Some(key_pem)) => {
                let identity = ClientIdentity { cert_pem, key_pem };
                identity.check()?;
                Ok(identity)
            }
            (None, None) => {
                private_dir(dir)?;
                let identity = ClientIdentity::generate("scone CAS client")?;
                write_private(&key_path, identity.key_pem.as_bytes())?;
                write_private(&cert_path, identity.cert_pem.as_bytes())?;
                Ok(identity)
            }
            _ => Err(CasError::Identity(format!(
                "only one of {} and {} exists; restore the other or remove both to create a \
                 new client identity",
                cert_path.display(),
                key_path.display()
            ))),
        }
    }

    fn check(&self) -> Result<(), CasError> {
        certs_from_pem(&self.cert_pem, "the client certificate")?;
        key_from_pem(&self.key_pem, "the client key")?;
        Ok(())
    }

    /// The identity's fingerprint ([`cert_fingerprint`] of its certificate).
    pub fn fingerprint(&self) -> Result<String, CasError> {
        let certs = certs_from_pem(&self.cert_pem, "the client certificate")?;
        Ok(cert_fingerprint(&certs[0]))
    }

    /// A rustls client configuration presenting this identity and trusting only
    /// the CA certificates in `ca_pem`.
    pub fn client_config(&self, ca_pem: &str) -> Result<rustls::ClientConfig, CasError> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in certs_from_pem(ca_pem, "the CAS CA file")? {
            roots.add(cert).map_err(|e| {
                CasError::Identity(format!("the CAS CA certificate is unusable: {e}"))
            })?;
        }
        let certs = certs_from_pem(&self.cert_pem, "the client certificate")?;
        let key = key_from_pem(&self.key_pem, "the client key")?;
        rustls::ClientConfig::builder_with_provider(ring())
            .with_safe_default_protocol_versions()
            .map_err(|e| CasError::Identity(e.to_string()))?
            .with_root_certificates(roots)
            .with_client_auth_cert(certs, key)
            .map_err(|e| CasError::Identity(format!("the client key does not fit: {e}")))
    }
}

/// The server side of `scone cas serve`: a CA kept in `<cas dir>/tls/` (its
/// certificate is what clients trust) and a server certificate issued from it at
/// each start for the names the server answers to.
pub struct ServerTls {
    /// Path of the CA certificate clients should trust.
    pub ca_cert_path: PathBuf,
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("ca_cert_path", &self.ca_cert_path)
            .finish_non_exhaustive()
    }
}

impl ServerTls {
    /// Loads the CA from `<cas_dir>/tls/` (creating it on first start) and issues a
    /// server certificate for `localhost`, `127.0.0.1`, `::1` and `hosts`.
    pub fn load_or_create(cas_dir: &Path, hosts: &[String]) -> Result<ServerTls, CasError> {
        let dir = cas_dir.join("tls");
        private_dir(&dir)?;
        let (ca_cert_path, ca_key_path) = (dir.join("ca.crt"), dir.join("ca.key"));
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(rcgen_err("the CAS CA"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "scone local CAS CA");
        ca_params.distinguished_name = dn;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca_key = match (read_text(&ca_cert_path)?, read_text(&ca_key_path)?) {
            (Some(_), Some(key_pem)) => KeyPair::from_pem(&key_pem).map_err(|_| {
                CasError::Identity(format!("{} is not a usable key", ca_key_path.display()))
            })?,
            _ => {
                let key = KeyPair::generate().map_err(rcgen_err("the CAS CA key"))?;
                let cert = ca_params
                    .self_signed(&key)
                    .map_err(rcgen_err("the CAS CA"))?;
                write_private(&ca_key_path, key.serialize_pem().as_bytes())?;
                write_private(&ca_cert_path, cert.pem().as_bytes())?;
                key
            }
        };
        // The CA parameters are fixed, so the issuer built from them and the stored
        // key names exactly the stored CA certificate (subject and key identifier).
        let issuer = Issuer::from_params(&ca_params, &ca_key);

        let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
        for host in hosts {
            if !names.contains(host) {
                names.push(host.clone());
            }
        }
        let server_key = KeyPair::generate().map_err(rcgen_err("the CAS server key"))?;
        let mut params =
            CertificateParams::new(names).map_err(rcgen_err("the CAS server certificate"))?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "scone local CAS");
        params.distinguished_name = dn;
        let cert = params
            .signed_by(&server_key, &issuer)
            .map_err(rcgen_err("the CAS server certificate"))?;
        let key = key_from_pem(&server_key.serialize_pem(), "the CAS server key")?;
        Ok(ServerTls {
            ca_cert_path,
            cert_chain: vec![cert.der().clone()],
            key,
        })
    }

    /// The rustls server configuration: this certificate, a client certificate
    /// required from every client.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, CasError> {
        let provider = ring();
        let verifier = Arc::new(AnyClientCertificate {
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| CasError::Identity(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(|e| CasError::Identity(format!("the CAS server key does not fit: {e}")))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// Requires a client certificate and checks that the client holds its key (the
/// handshake signature); any such certificate is accepted as an identity, as
/// SCONE CAS does.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[TlsName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn client_identity_is_created_once_and_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = dir.path().join("cas");
        let first = ClientIdentity::load_or_create(&cfg).expect("creates");
        let again = ClientIdentity::load_or_create(&cfg).expect("loads");
        assert_eq!(
            first.fingerprint().expect("fp"),
            again.fingerprint().expect("fp")
        );
        for file in ["client.crt", "client.key"] {
            let mode = std::fs::metadata(cfg.join(file))
                .expect("stat")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        assert!(!format!("{first:?}").contains("PRIVATE KEY"));
        std::fs::remove_file(cfg.join("client.key")).expect("rm");
        assert!(ClientIdentity::load_or_create(&cfg).is_err());
    }

    #[test]
    fn server_tls_keeps_its_ca_and_builds_configs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = ServerTls::load_or_create(dir.path(), &["cas.example".into()]).expect("creates");
        let ca = std::fs::read_to_string(&a.ca_cert_path).expect("ca");
        let b = ServerTls::load_or_create(dir.path(), &[]).expect("loads");
        assert_eq!(
            ca,
            std::fs::read_to_string(&b.ca_cert_path).expect("ca"),
            "CA kept"
        );
        assert!(b.server_config().is_ok());
        let client = ClientIdentity::generate("t").expect("identity");
        assert!(client.client_config(&ca).is_ok());
        assert!(client.client_config("not pem").is_err());
    }
}
