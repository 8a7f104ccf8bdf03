//! TLS for cluster connections (rustls, through `ractor_cluster`'s TLS transport): the head
//! serves `--tls-cert` / `--tls-key`; a node trusts the certificates of `--tls-ca`.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls;

use super::ClusterError;

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClusterError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| ClusterError::Tls(format!("{}: {e}", path.display())))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClusterError::Tls(format!("{}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(ClusterError::Tls(format!(
            "{}: no certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The acceptor of a server with the certificate chain `cert` and private key `key` (PEM).
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, ClusterError> {
    let chain = certs(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ClusterError::Tls(format!("{}: {e}", key.display())))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ClusterError::Tls(e.to_string()))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A connector trusting the certificates of `ca` (PEM), and the server name to check for
/// `host`.
pub fn connector(
    ca: &Path,
    host: &str,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), ClusterError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certs(ca)? {
        roots
            .add(c)
            .map_err(|e| ClusterError::Tls(format!("{}: {e}", ca.display())))?;
    }
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| ClusterError::Tls(format!("server name `{host}`: {e}")))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}
