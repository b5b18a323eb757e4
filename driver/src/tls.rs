//! RTSPS: the one TLS layer of rtsp-toolkit, between the socket bytes and
//! the protocol machines, for every runtime (tokio, smol, blocking) and both
//! ends (`docs/ARCHITECTURE.md`, "TLS").
//!
//! rustls is itself sans-IO, like the machines: [`TlsLayer`] takes the
//! ciphertext a runtime read ([`TlsLayer::receive`]) and gives the
//! plaintext, takes the plaintext a machine wants sent
//! ([`TlsLayer::send`]) and gives the ciphertext to write
//! ([`TlsLayer::take_outgoing`]). The client's [`ClientDriver`](crate::ClientDriver)
//! and the server's connection loop (`rtsp-toolkit-media`) each hold one, so
//! no runtime has a TLS wrapper of its own.
//!
//! Trust, on the client: the system's roots (`rustls-native-certs`), or the
//! CAs of a PEM file ([`ClientOptions::ca_file`]), or one pinned
//! certificate by its SHA-256 fingerprint ([`ClientOptions::tls_fingerprint`]),
//! or nothing ([`ClientOptions::insecure`]).

use std::io::{self, Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;

use rtsp_toolkit_core::client::ClientOptions;
use rtsp_toolkit_core::tls::{format_fingerprint, parse_fingerprint, TlsInfo};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, ServerConfig, SignatureScheme};
use sha2::{Digest as _, Sha256};

/// rustls' ring provider: ring builds with a C compiler alone (aws-lc-rs,
/// rustls' default, needs cmake and more), see the workspace `Cargo.toml`.
/// (rustls marks it deprecated because ring has no post-quantum key
/// exchange; the classical suites are what cameras speak.)
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// SHA-256 of a certificate (DER), as [`format_fingerprint`] writes it.
pub fn fingerprint(der: &[u8]) -> String {
    format_fingerprint(&Sha256::digest(der))
}

/// The client's TLS settings for a session: how the server's certificate is
/// checked, from [`ClientOptions::ca_file`], [`ClientOptions::tls_fingerprint`]
/// and [`ClientOptions::insecure`] (the first of fingerprint, insecure, CA
/// file, system roots that is set). The message says what is wrong with them.
pub fn client_config(options: &ClientOptions) -> Result<Arc<ClientConfig>, String> {
    let provider = provider();
    let check = if let Some(pin) = &options.tls_fingerprint {
        Check::Pinned(parse_fingerprint(pin).map_err(|e| format!("bad tls_fingerprint: {e}"))?)
    } else if options.insecure {
        Check::Insecure
    } else {
        let mut roots = RootCertStore::empty();
        match &options.ca_file {
            Some(path) => {
                let (added, _) = roots.add_parsable_certificates(read_certificates(path)?);
                if added == 0 {
                    return Err(format!("the CA file {} holds no usable certificate", path.display()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            // Every certificate's issuer is unknown then: the handshake says so.
            tracing::warn!("no trusted root certificate found on this system (Debian: ca-certificates)");
            Check::NoRoots
        } else {
            let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("cannot use the trusted certificates: {e}"))?;
            Check::WebPki(webpki)
        }
    };
    let verifier = Arc::new(Verifier {
        check,
        provider: provider.clone(),
    });
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A server's TLS settings (its certificate chain and key), shared by its
/// connections: [`ServerTlsConfig::from_pem_files`], then one
/// [`TlsLayer::server`] per connection.
#[derive(Debug, Clone)]
pub struct ServerTlsConfig {
    config: Arc<ServerConfig>,
    fingerprint: String,
}

impl ServerTlsConfig {
    /// The certificate chain (leaf first) and private key of PEM files
    /// (`serve --tls-cert --tls-key`); the message says what is wrong.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<ServerTlsConfig, String> {
        let chain = read_certificates(cert)?;
        let Some(leaf) = chain.first() else {
            return Err(format!("{} holds no certificate", cert.display()));
        };
        let fingerprint = fingerprint(leaf.as_ref());
        let config = server_config(chain, key)?;
        Ok(ServerTlsConfig { config, fingerprint })
    }

    /// The leaf certificate's SHA-256 fingerprint, as clients pin it
    /// ([`ClientOptions::tls_fingerprint`]).
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

fn server_config(chain: Vec<CertificateDer<'static>>, key: &Path) -> Result<Arc<ServerConfig>, String> {
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read a private key from {}: {e}", key.display()))?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
    Ok(Arc::new(config))
}

/// Every certificate of a PEM file.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let read_err = |e: rustls::pki_types::pem::Error| format!("cannot read certificates from {}: {e}", path.display());
    CertificateDer::pem_file_iter(path)
        .map_err(read_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_err)
}

/// How the client checks the server's certificate.
#[derive(Debug)]
enum Check {
    /// The end-entity certificate's SHA-256 is this; nothing else is checked.
    Pinned([u8; 32]),
    /// Anything goes (the signatures of the handshake are still checked).
    Insecure,
    /// A chain to one of the roots, valid now, for the server's name.
    WebPki(Arc<WebPkiServerVerifier>),
    /// The system has no roots: no issuer is known.
    NoRoots,
}

#[derive(Debug)]
struct Verifier {
    check: Check,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.check {
            Check::Pinned(want) => {
                let got = Sha256::digest(end_entity.as_ref());
                if got.as_slice() == want {
                    Ok(ServerCertVerified::assertion())
                } else {
                    Err(rustls::Error::General(format!(
                        "certificate fingerprint mismatch: expected {}, the server's is {}",
                        format_fingerprint(want),
                        format_fingerprint(&got)
                    )))
                }
            }
            Check::Insecure => Ok(ServerCertVerified::assertion()),
            Check::NoRoots => Err(rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)),
            Check::WebPki(v) => v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a handshake or a TLS connection failed, in words a camera's user
/// understands (`name` is the server name the client checked).
pub fn describe_error(error: &rustls::Error, name: &str) -> String {
    use rustls::Error as E;
    use CertificateError as C;
    let cert = |e: &CertificateError| match e {
        C::UnknownIssuer => "the server's certificate has an unknown issuer (not signed by a trusted CA; \
                             give its CA file, pin its fingerprint, or use insecure)"
            .to_owned(),
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("the server's certificate is not valid for the name {name:?} (name mismatch)")
        }
        C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired".to_owned(),
        C::NotValidYet | C::NotValidYetContext { .. } => "the server's certificate is not valid yet".to_owned(),
        C::BadSignature => "the server's certificate has a bad signature".to_owned(),
        C::Revoked => "the server's certificate is revoked".to_owned(),
        C::Other(e) if e.to_string().contains("CaUsedAsEndEntity") => {
            "the server's certificate is a CA certificate used as its own (self-signed with CA:TRUE; \
             pin its fingerprint, or use insecure)"
                .to_owned()
        }
        C::Other(e) => format!("the server's certificate was refused: {e}"),
        other => format!("the server's certificate was refused: {other:?}"),
    };
    match error {
        E::InvalidCertificate(e) => format!("TLS handshake failed: {}", cert(e)),
        E::General(m) => format!("TLS handshake failed: {m}"),
        E::InvalidMessage(_) | E::InappropriateMessage { .. } | E::InappropriateHandshakeMessage { .. } => {
            format!("TLS failed: the peer does not speak TLS (a plain RTSP port?): {error}")
        }
        E::AlertReceived(alert) => format!("TLS handshake failed: the peer sent the alert {alert:?}"),
        other => format!("TLS failed: {other}"),
    }
}

/// One TLS connection, client or server, as bytes in and bytes out.
#[derive(Debug)]
pub struct TlsLayer {
    conn: rustls::Connection,
}

/// What [`TlsLayer::receive`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// The handshake ended with these bytes.
    pub handshake_done: bool,
    /// The peer closed the TLS session (close_notify): no more plaintext.
    pub closed: bool,
}

impl TlsLayer {
    /// A client connection to `server_name` (a DNS name, sent as SNI, or an
    /// IP address), its ClientHello ready in [`TlsLayer::take_outgoing`].
    pub fn client(config: &Arc<ClientConfig>, server_name: &str) -> Result<TlsLayer, String> {
        let name = ServerName::try_from(server_name.to_owned())
            .map_err(|_| format!("{server_name:?} is not a valid TLS server name"))?;
        let conn = rustls::ClientConnection::new(config.clone(), name).map_err(|e| e.to_string())?;
        Ok(TlsLayer::new(conn.into()))
    }

    /// A server connection, waiting for the ClientHello.
    pub fn server(config: &ServerTlsConfig) -> Result<TlsLayer, String> {
        let conn = rustls::ServerConnection::new(config.config.clone()).map_err(|e| e.to_string())?;
        Ok(TlsLayer::new(conn.into()))
    }

    fn new(mut conn: rustls::Connection) -> TlsLayer {
        // Everything sent is taken out at once (`take_outgoing`): no limit
        // that would make `send` take part of a frame.
        conn.set_buffer_limit(None);
        TlsLayer { conn }
    }

    /// Whether the handshake is still running.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Hands in `cipher`, bytes read from the socket; the plaintext they
    /// carried is appended to `plain`. A failed connection queues its alert
    /// for [`TlsLayer::take_outgoing`]; see [`describe_error`] for its words.
    pub fn receive(&mut self, mut cipher: &[u8], plain: &mut Vec<u8>) -> Result<Received, rustls::Error> {
        let was_handshaking = self.conn.is_handshaking();
        let mut closed = false;
        while !cipher.is_empty() {
            match self.conn.read_tls(&mut cipher) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(rustls::Error::General(e.to_string())),
            }
            let state = self.conn.process_new_packets()?;
            let n = state.plaintext_bytes_to_read();
            if n > 0 {
                let start = plain.len();
                plain.resize(start + n, 0);
                let read = self.conn.reader().read(&mut plain[start..]).unwrap_or(0);
                plain.truncate(start + read);
            }
            closed |= state.peer_has_closed();
        }
        Ok(Received {
            handshake_done: was_handshaking && !self.conn.is_handshaking(),
            closed,
        })
    }

    /// Queues `plain` to be sent, encrypted (buffered until the handshake is
    /// done).
    pub fn send(&mut self, plain: &[u8]) {
        // A `Vec`-backed buffer without limit: it takes everything.
        let _ = self.conn.writer().write_all(plain);
    }

    /// Whether there are bytes to write ([`TlsLayer::take_outgoing`]).
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// The bytes to write to the socket now (handshake, records, alerts).
    pub fn take_outgoing(&mut self) -> Vec<u8> {
        let mut out = Vec::new();
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut out) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        out
    }

    /// Queues close_notify (the end of the TLS session) for [`TlsLayer::take_outgoing`].
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }

    /// The version, cipher suite and peer certificate's fingerprint, once
    /// the handshake is done.
    pub fn info(&self) -> Option<TlsInfo> {
        let version = match self.conn.protocol_version()? {
            rustls::ProtocolVersion::TLSv1_3 => "TLSv1.3".to_owned(),
            rustls::ProtocolVersion::TLSv1_2 => "TLSv1.2".to_owned(),
            other => format!("{other:?}"),
        };
        let suite = self.conn.negotiated_cipher_suite()?.suite();
        let cipher_suite = suite.as_str().map_or_else(|| format!("{suite:?}"), str::to_owned);
        let peer_fingerprint = self
            .conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| fingerprint(c.as_ref()));
        Some(TlsInfo {
            version,
            cipher_suite,
            peer_fingerprint,
        })
    }
}

/// An `io::Error` for a failed TLS connection (kind `InvalidData`).
pub fn io_error(error: &rustls::Error, name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, describe_error(error, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate for `localhost` in PEM files; their directory.
    fn certificate(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rtsp-driver-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
        dir
    }

    /// Moves each side's outgoing bytes to the other until neither has any.
    fn pump(client: &mut TlsLayer, server: &mut TlsLayer, to_client: &mut Vec<u8>, to_server: &mut Vec<u8>) {
        for _ in 0..16 {
            let (c, s) = (client.take_outgoing(), server.take_outgoing());
            if c.is_empty() && s.is_empty() {
                return;
            }
            server.receive(&c, to_server).unwrap();
            client.receive(&s, to_client).unwrap();
        }
        panic!("the handshake does not settle");
    }

    #[test]
    fn a_client_and_a_server_layer_talk_through_bytes_alone() {
        let dir = certificate("talk");
        let server_config = ServerTlsConfig::from_pem_files(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
        let options = ClientOptions::default().with_tls_fingerprint(server_config.fingerprint());
        let mut client = TlsLayer::client(&client_config(&options).unwrap(), "localhost").unwrap();
        let mut server = TlsLayer::server(&server_config).unwrap();
        assert!(client.is_handshaking() && client.info().is_none());
        client.send(b"OPTIONS * RTSP/1.0\r\n\r\n");
        let (mut to_client, mut to_server) = (Vec::new(), Vec::new());
        pump(&mut client, &mut server, &mut to_client, &mut to_server);
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(to_server, b"OPTIONS * RTSP/1.0\r\n\r\n");
        server.send(b"RTSP/1.0 200 OK\r\n\r\n");
        pump(&mut client, &mut server, &mut to_client, &mut to_server);
        assert_eq!(to_client, b"RTSP/1.0 200 OK\r\n\r\n");
        let info = client.info().unwrap();
        assert_eq!(info.version, "TLSv1.3");
        assert_eq!(info.peer_fingerprint.as_deref(), Some(server_config.fingerprint()));
        server.close();
        let closing = server.take_outgoing();
        assert!(client.receive(&closing, &mut Vec::new()).unwrap().closed);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_system_roots_refuse_a_self_signed_certificate_and_plain_bytes_are_not_tls() {
        let dir = certificate("refuse");
        let server_config = ServerTlsConfig::from_pem_files(&dir.join("cert.pem"), &dir.join("key.pem")).unwrap();
        let mut client = TlsLayer::client(&client_config(&ClientOptions::default()).unwrap(), "localhost").unwrap();
        let mut server = TlsLayer::server(&server_config).unwrap();
        let hello = client.take_outgoing();
        server.receive(&hello, &mut Vec::new()).unwrap();
        let err = client.receive(&server.take_outgoing(), &mut Vec::new()).unwrap_err();
        assert!(describe_error(&err, "localhost").contains("unknown issuer"), "{err}");

        let mut client = TlsLayer::client(&client_config(&ClientOptions::default()).unwrap(), "localhost").unwrap();
        let err = client
            .receive(b"RTSP/1.0 400 Bad Request\r\n\r\n", &mut Vec::new())
            .unwrap_err();
        assert!(
            describe_error(&err, "localhost").contains("does not speak TLS"),
            "{err}"
        );
        assert!(TlsLayer::client(&client_config(&ClientOptions::default()).unwrap(), "bad name!").is_err());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn bad_files_say_which() {
        let missing = Path::new("/nonexistent/x.pem");
        let err = ServerTlsConfig::from_pem_files(missing, missing).unwrap_err();
        assert!(err.contains("/nonexistent/x.pem"), "{err}");
        let err = client_config(&ClientOptions::default().with_ca_file(missing)).unwrap_err();
        assert!(err.contains("/nonexistent/x.pem"), "{err}");
        let err = client_config(&ClientOptions::default().with_tls_fingerprint("zz")).unwrap_err();
        assert!(err.contains("tls_fingerprint"), "{err}");
    }
}
