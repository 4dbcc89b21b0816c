//! go-plugin's AutoMTLS: Terraform generates a client certificate and passes it in
//! `PLUGIN_CLIENT_CERT`; the plugin generates its own for `localhost`, announces it in the
//! handshake line, and accepts only connections that present exactly Terraform's certificate.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};

use crate::Error;

/// The server's side of AutoMTLS: its certificate (for the handshake line) and TLS settings.
pub struct AutoMtls {
    /// The server certificate in DER, announced base64-encoded in the handshake line.
    pub server_cert: CertificateDer<'static>,
    /// TLS settings: this certificate, HTTP/2 only, Terraform's client certificate required.
    pub config: Arc<ServerConfig>,
}

impl AutoMtls {
    /// Sets up AutoMTLS for the PEM client certificate Terraform passed.
    pub fn new(client_cert_pem: &str) -> Result<AutoMtls, Error> {
        let transport =
            |what: &str, e: &dyn std::fmt::Display| Error::Transport(format!("{what}: {e}"));
        let client_cert = CertificateDer::from_pem_slice(client_cert_pem.as_bytes())
            .map_err(|e| transport("PLUGIN_CLIENT_CERT is not a PEM certificate", &e))?;
        let (server_cert, key) = generate_server_cert()?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(PinnedClientCert {
            cert: client_cert,
            algorithms: provider.signature_verification_algorithms,
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| transport("TLS versions", &e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![server_cert.clone()], key)
            .map_err(|e| transport("server certificate", &e))?;
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(AutoMtls {
            server_cert,
            config: Arc::new(config),
        })
    }
}

/// A self-signed certificate for `localhost`, shaped like the one go-plugin generates (a CA that
/// is its own leaf, for server and client auth), since Terraform trusts exactly this certificate.
fn generate_server_cert() -> Result<(CertificateDer<'static>, PrivateKeyDer<'static>), Error> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let failed =
        |e: rcgen::Error| Error::Transport(format!("generating the server certificate: {e}"));
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).map_err(failed)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "aigov");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
        KeyUsagePurpose::KeyAgreement,
        KeyUsagePurpose::KeyCertSign,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let cert = params.self_signed(&key).map_err(failed)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((cert.der().clone(), key))
}

/// Accepts exactly one client certificate, byte for byte, with a valid handshake signature.
///
/// WebPKI path building cannot be used: Terraform's certificate is a self-signed CA presented as a
/// leaf, which WebPKI rightly refuses. Pinning is stricter anyway: the certificate came to us over
/// the trusted channel of our own environment.
#[derive(Debug)]
struct PinnedClientCert {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::ApplicationVerificationFailure,
            ))
        }
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

/// The crypto provider the plugin's TLS uses (also for tests' clients).
pub fn crypto() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}
