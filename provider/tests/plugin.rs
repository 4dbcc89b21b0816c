//! The go-plugin contract, driven the way Terraform drives it: the magic cookie, protocol
//! negotiation, the handshake line, AutoMTLS that admits only Terraform's certificate, SIGINT
//! ignored, and `--debug` with `TF_REATTACH_PROVIDERS`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use aigov_provider::plugin::{MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE};
use aigov_provider::proto::tfplugin6::get_provider_schema;
use aigov_provider::proto::tfplugin6::provider_client::ProviderClient;
use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BINARY: &str = env!("CARGO_BIN_EXE_terraform-provider-aigov");

/// A certificate shaped like the one Terraform generates for itself (a self-signed CA).
fn terraform_like_cert() -> (String, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let der = cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.pem(), der, key)
}

/// Starts the provider as Terraform would and returns it with its handshake line.
fn start_as_terraform(client_pem: &str, versions: &str) -> (Child, String) {
    let mut child = Command::new(BINARY)
        .env(MAGIC_COOKIE_KEY, MAGIC_COOKIE_VALUE)
        .env("PLUGIN_PROTOCOL_VERSIONS", versions)
        .env("PLUGIN_CLIENT_CERT", client_pem)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

/// Trusts exactly the certificate the handshake line announced, as go-plugin's client does.
#[derive(Debug)]
struct PinnedServer(CertificateDer<'static>);

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "not the announced certificate".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = aigov_provider::tls::crypto().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(m, c, d, &algs)
    }

    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = aigov_provider::tls::crypto().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(m, c, d, &algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        aigov_provider::tls::crypto()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Connects over TLS and exchanges HTTP/2 prefaces; `Ok(alpn)` when the server accepted us.
async fn tls_exchange(
    addr: &str,
    server_cert: CertificateDer<'static>,
    client: Option<(CertificateDer<'static>, PrivateKeyDer<'static>)>,
) -> Result<Vec<u8>, String> {
    let builder = ClientConfig::builder_with_provider(aigov_provider::tls::crypto())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinnedServer(server_cert)));
    let mut config = match client {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    // TLS 1.3 reports a refused client certificate on the first read.
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .map_err(|e| e.to_string())?;
    let mut frame_header = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(5), tls.read_exact(&mut frame_header))
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| e.to_string())?;
    Ok(tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec())
}

#[test]
fn run_by_hand_it_says_it_is_a_plugin_and_exits_1() {
    let out = Command::new(BINARY).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("This binary is a plugin"));
}

#[test]
fn a_client_without_protocol_6_is_refused() {
    let (pem, _, _) = terraform_like_cert();
    let (mut child, line) = start_as_terraform(&pem, "5");
    let status = child.wait().unwrap();
    assert!(!status.success());
    assert!(
        line.is_empty(),
        "no handshake for an unsupported protocol: {line}"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("plugin protocol 6"), "{err}");
}

#[tokio::test]
async fn automtls_admits_only_terraforms_certificate_and_sigint_is_ignored() {
    let (pem, cert, key) = terraform_like_cert();
    let (mut child, line) = start_as_terraform(&pem, "5,6");
    let parts: Vec<&str> = line.split('|').collect();
    assert_eq!(parts.len(), 6, "handshake line {line:?}");
    assert_eq!(&parts[..3], ["1", "6", "tcp"]);
    assert!(parts[3].starts_with("127.0.0.1:"), "loopback only: {line}");
    assert_eq!(parts[4], "grpc");
    let announced = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(parts[5])
        .expect("the certificate as unpadded base64 DER");
    let server_cert = CertificateDer::from(announced);
    let addr = parts[3].to_owned();

    let alpn = tls_exchange(&addr, server_cert.clone(), Some((cert, key))).await;
    assert_eq!(
        alpn.as_deref(),
        Ok(&b"h2"[..]),
        "Terraform's certificate is admitted, over HTTP/2"
    );
    let (_, other_cert, other_key) = terraform_like_cert();
    let other = tls_exchange(&addr, server_cert.clone(), Some((other_cert, other_key))).await;
    assert!(other.is_err(), "another certificate is refused");
    let anonymous = tls_exchange(&addr, server_cert, None).await;
    assert!(anonymous.is_err(), "no certificate is refused");

    // Ctrl-C reaches the whole process group; the provider waits for Terraform instead.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-INT", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGINT stopped the provider"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn debug_mode_prints_a_reattach_value_and_serves_the_schema() {
    let mut child = Command::new(BINARY)
        .arg("--debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut reattach = None;
    for _ in 0..10 {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        if let Some(value) = line.trim().strip_prefix("TF_REATTACH_PROVIDERS='") {
            reattach = Some(value.trim_end_matches('\'').to_owned());
            break;
        }
    }
    let reattach: serde_json::Value =
        serde_json::from_str(&reattach.expect("a TF_REATTACH_PROVIDERS line")).unwrap();
    let entry = &reattach["registry.terraform.io/aigov/aigov"];
    assert_eq!(entry["ProtocolVersion"], 6);
    assert_eq!(entry["Pid"], child.id());
    let addr = entry["Addr"]["String"].as_str().unwrap().to_owned();

    let mut client = ProviderClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let schema = client
        .get_provider_schema(get_provider_schema::Request {})
        .await
        .unwrap()
        .into_inner();
    let mut resources: Vec<&String> = schema.resource_schemas.keys().collect();
    resources.sort();
    assert_eq!(
        resources,
        [
            "aigov_alarm",
            "aigov_alert_channel",
            "aigov_budget",
            "aigov_budget_template",
            "aigov_cluster_budget",
            "aigov_invocation_logging",
            "aigov_log_group",
            "aigov_pricing_override"
        ]
    );
    assert!(schema.data_source_schemas.contains_key("aigov_model_price"));
    child.kill().unwrap();
    child.wait().unwrap();
}
