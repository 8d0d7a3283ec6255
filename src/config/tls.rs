//! `[tls]`: the addresses served over TLS and the certificate chain and key they present,
//! read and checked when the config is loaded, so `portico check` and a SIGHUP reload
//! refuse a missing, unreadable or mismatched file naming it, and the running server never
//! sees one.
//!
//! Accepting TLS connections is `server`'s; here the files become a rustls `ServerConfig`
//! offering HTTP/2 and HTTP/1.1 by ALPN.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use toml::Spanned;

use super::server::OneOrMany;
use super::source::{ConfigError, Validator};
use crate::cli::ListenAddr;

/// The TLS listeners and what they present.
#[derive(Clone)]
pub struct Tls {
    pub listen: Vec<SocketAddr>,
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// Built from the two files as they were when the config was loaded.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("listen", &self.listen)
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    listen: Spanned<OneOrMany>,
    certificate: Spanned<String>,
    key: Spanned<String>,
}

impl Validator<'_> {
    pub(super) fn tls(&self, raw: Option<&RawTls>) -> Result<Option<Tls>, ConfigError> {
        let Some(raw) = raw else {
            return Ok(None);
        };
        let listen = self
            .addresses(&raw.listen)?
            .into_iter()
            .map(|addr| match addr {
                ListenAddr::Tcp(addr) => Ok(addr),
                ListenAddr::Unix(_) => Err(self.spanned_error(
                    raw.listen.span(),
                    "TLS listens on TCP addresses; a unix socket is for a proxy on this host",
                )),
            })
            .collect::<Result<_, _>>()?;
        let base = self.base_dir();
        let certificate = base.join(raw.certificate.get_ref());
        let key = base.join(raw.key.get_ref());
        let chain = read_chain(&certificate)
            .map_err(|message| self.spanned_error(raw.certificate.span(), message))?;
        let private_key =
            read_key(&key).map_err(|message| self.spanned_error(raw.key.span(), message))?;
        let server_config = server_config(chain, private_key)
            .map_err(|message| self.spanned_error(raw.key.span(), message))?;
        Ok(Some(Tls {
            listen,
            certificate,
            key,
            server_config,
        }))
    }
}

fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| format!("{shown} is not a PEM certificate chain: {error}"))?;
    if chain.is_empty() {
        return Err(format!("{shown} holds no PEM certificate"));
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    let text = std::fs::read(path).map_err(|error| format!("cannot read {shown}: {error}"))?;
    PrivateKeyDer::from_pem_slice(&text)
        .map_err(|error| format!("{shown} holds no PEM private key: {error}"))
}

/// TLS 1.2 and 1.3 with rustls' safe defaults; ALPN offers h2 first (RFC 7301, RFC 9113 §3.2).
fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|error| error.to_string())?
        .with_no_client_auth();
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| format!("the key cannot be used: {error}"))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing_key);
    // A key that is not the certificate's would fail every handshake: refuse it here.
    certified
        .keys_match()
        .map_err(|_| "the key does not match the certificate".to_owned())?;
    let mut config = builder.with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(
        Arc::new(certified),
    )));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
