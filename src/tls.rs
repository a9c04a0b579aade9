//! TLS under every transport, in one place: what a client trusts and offers, the embedded
//! targets' self-signed identity, and the client connect that puts TLS over the counting
//! stream (so the wire count stays ciphertext and the plaintext is counted above it).
//!
//! rustls with the ring provider. A client trusts exactly the certificates it is given (the
//! embedded target's own, or `tls.ca`), never the system's, or nothing at all (`insecure`).

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, anyhow, bail};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientSessionMemoryCache, Resumption};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, ring};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsConnector;

use crate::plan::{TlsCipher, TlsPlan, TlsVersion};
use crate::wire::{ClientStream, CountingStream};

/// The name the embedded targets' certificates are issued to and clients ask for (SNI).
pub const EMBEDDED_SERVER_NAME: &str = "localhost";

/// Sessions one client keeps for resumption: one server, a few tickets.
const SESSIONS_PER_CLIENT: usize = 4;

/// The application protocol a client asks for (ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alpn {
    Http1,
    H2,
    /// No ALPN extension (MQTT).
    None,
}

impl Alpn {
    fn protocols(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::Http1 => vec![b"http/1.1".to_vec()],
            Alpn::H2 => vec![b"h2".to_vec()],
            Alpn::None => Vec::new(),
        }
    }

    fn slot(self) -> usize {
        self as usize
    }
}

/// Whose certificate a client accepts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Trust {
    /// Exactly these certificates (DER) as roots.
    Certificates(Vec<Vec<u8>>),
    /// Anything: `tls.insecure`, labelled in the result.
    Insecure,
}

/// What a client needs to speak TLS to one endpoint. Serializable, so that worker processes
/// get the same trust; the built configurations stay in the process that built them.
#[derive(Clone, Serialize, Deserialize)]
pub struct EndpointTls {
    pub server_name: String,
    pub trust: Trust,
    pub version: TlsVersion,
    pub resumption: bool,
    #[serde(default)]
    pub cipher: Option<TlsCipher>,
    #[serde(skip)]
    configs: Arc<[OnceLock<Arc<ClientConfig>>; 3]>,
}

impl fmt::Debug for EndpointTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndpointTls")
            .field("server_name", &self.server_name)
            .field("version", &self.version)
            .field("resumption", &self.resumption)
            .field("cipher", &self.cipher)
            .finish_non_exhaustive()
    }
}

impl EndpointTls {
    pub fn new(plan: &TlsPlan, server_name: String, trust: Trust) -> EndpointTls {
        EndpointTls {
            server_name,
            trust,
            version: plan.version,
            resumption: plan.resumption,
            cipher: plan.cipher,
            configs: Arc::default(),
        }
    }

    /// The TLS of an external target named by `host`: `tls.ca`'s certificates, or none
    /// checked with `tls.insecure`.
    pub fn external(plan: &TlsPlan, host: &str) -> anyhow::Result<EndpointTls> {
        let trust = match (&plan.ca, plan.insecure) {
            (_, true) => Trust::Insecure,
            (Some(ca), false) => Trust::Certificates(read_pem_certificates(ca)?),
            (None, false) => bail!(
                "a TLS target needs tls.ca = \"ca.pem\" (its CA certificate), or tls.insecure = \
                 true to skip checking it; the system's trust store is never used"
            ),
        };
        Ok(EndpointTls::new(plan, host.to_string(), trust))
    }

    /// The provider, its cipher suites narrowed to `tls.cipher` if one is chosen.
    fn provider(&self) -> Arc<CryptoProvider> {
        let mut provider = ring::default_provider();
        if let Some(cipher) = self.cipher {
            provider
                .cipher_suites
                .retain(|suite| aead_of(suite) == Some(cipher));
        }
        Arc::new(provider)
    }

    /// The shared configuration for `alpn`, built once per process.
    fn config(&self, alpn: Alpn) -> anyhow::Result<Arc<ClientConfig>> {
        let slot = &self.configs[alpn.slot()];
        if let Some(config) = slot.get() {
            return Ok(Arc::clone(config));
        }
        let built = Arc::new(self.build(alpn)?);
        Ok(Arc::clone(slot.get_or_init(|| built)))
    }

    fn build(&self, alpn: Alpn) -> anyhow::Result<ClientConfig> {
        let versions: &[&rustls::SupportedProtocolVersion] = match self.version {
            TlsVersion::V1_3 => &[&rustls::version::TLS13],
            TlsVersion::V1_2 => &[&rustls::version::TLS12],
        };
        let builder = ClientConfig::builder_with_provider(self.provider())
            .with_protocol_versions(versions)
            .context("choosing the TLS version")?;
        let mut config = match &self.trust {
            Trust::Certificates(ders) => {
                let mut roots = RootCertStore::empty();
                for der in ders {
                    roots
                        .add(CertificateDer::from(der.clone()))
                        .context("adding a trusted certificate")?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Trust::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnything(
                    provider().signature_verification_algorithms,
                )))
                .with_no_client_auth(),
        };
        config.alpn_protocols = alpn.protocols();
        // With SSLKEYLOGFILE set, the session secrets go there (NSS key log format), so that a
        // capture can be decrypted by its witness (`scripts/verify-capture.sh`); unset, nothing.
        config.key_log = Arc::new(rustls::KeyLogFile::new());
        Ok(config)
    }

    /// This client's configuration: the shared one with the client's own session store, so
    /// that a reconnect resumes the client's session and never another client's.
    pub fn client_config(
        &self,
        alpn: Alpn,
        sessions: &Sessions,
    ) -> anyhow::Result<Arc<ClientConfig>> {
        let mut config = (*self.config(alpn)?).clone();
        config.resumption = if self.resumption {
            Resumption::store(sessions.store())
        } else {
            Resumption::disabled()
        };
        Ok(Arc::new(config))
    }
}

/// One client's TLS sessions, kept across its reconnects (created on first use).
#[derive(Clone, Default)]
pub struct Sessions(OnceLock<Arc<ClientSessionMemoryCache>>);

impl fmt::Debug for Sessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Sessions")
    }
}

impl Sessions {
    fn store(&self) -> Arc<ClientSessionMemoryCache> {
        Arc::clone(
            self.0
                .get_or_init(|| Arc::new(ClientSessionMemoryCache::new(SESSIONS_PER_CLIENT))),
        )
    }
}

/// Connects to `addr`, with TLS over the counting stream when `tls` is given; returns once
/// the handshake is done, so that its bytes are the connection's setup.
pub async fn connect(
    addr: SocketAddr,
    tls: Option<&EndpointTls>,
    sessions: &Sessions,
    alpn: Alpn,
) -> anyhow::Result<ClientStream> {
    let tcp = CountingStream::connect(addr).await?;
    let Some(tls) = tls else {
        return Ok(ClientStream::plain(tcp));
    };
    let connector = TlsConnector::from(tls.client_config(alpn, sessions)?);
    let name = ServerName::try_from(tls.server_name.clone())
        .with_context(|| format!("TLS server name {:?}", tls.server_name))?;
    let stream = connector
        .connect(name, tcp.scanning_tls())
        .await
        .with_context(|| format!("TLS handshake with {addr}"))?;
    Ok(ClientStream::tls(stream))
}

/// The crypto provider every TLS config here uses.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// The AEAD of a cipher suite, in either TLS version.
fn aead_of(suite: &rustls::SupportedCipherSuite) -> Option<TlsCipher> {
    let name = format!("{:?}", suite.suite());
    if name.contains("CHACHA20_POLY1305") {
        Some(TlsCipher::Chacha20Poly1305)
    } else if name.contains("AES_128_GCM") {
        Some(TlsCipher::Aes128Gcm)
    } else if name.contains("AES_256_GCM") {
        Some(TlsCipher::Aes256Gcm)
    } else {
        None
    }
}

/// A self-signed certificate and its key, generated at start by an embedded target.
pub struct Identity {
    pub certificate_der: Vec<u8>,
    key_der: Vec<u8>,
}

impl Identity {
    /// A fresh ECDSA P-256 certificate for `EMBEDDED_SERVER_NAME` and the target's address
    /// (clients that connect by address, rumqttc, check that one).
    pub fn generate(ip: std::net::IpAddr) -> anyhow::Result<Identity> {
        let names = vec![EMBEDDED_SERVER_NAME.to_string(), ip.to_string()];
        let issued = rcgen::generate_simple_self_signed(names)
            .context("generating a self-signed certificate")?;
        Ok(Identity {
            certificate_der: issued.cert.der().to_vec(),
            key_der: issued.signing_key.serialize_der(),
        })
    }

    /// A server configuration offering TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1 by ALPN.
    pub fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        let key = PrivateKeyDer::try_from(self.key_der.clone())
            .map_err(|e| anyhow!("the generated key: {e}"))?;
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(rustls::ALL_VERSIONS)
            .context("choosing TLS versions")?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(self.certificate_der.clone())],
                key,
            )
            .context("the generated certificate")?;
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The certificates of a PEM file.
fn read_pem_certificates(path: &std::path::Path) -> anyhow::Result<Vec<Vec<u8>>> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing the certificates in {}", path.display()))?;
    if certs.is_empty() {
        bail!("{} holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// `tls.insecure`: accepts any certificate, but still checks the handshake's signatures.
#[derive(Debug)]
struct AcceptAnything(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
