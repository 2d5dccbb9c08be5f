//! TLS to a broker: the client side of rustls with the `ring` provider
//! (as the listeners use), trusting a CA file the config names or else the
//! system's CA certificates.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::rustls;

/// How a connector reaches its broker over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerTls {
    /// A PEM file of the CAs to trust (`None`: the system's).
    pub ca: Option<PathBuf>,
}

impl BrokerTls {
    /// The client configuration, or what is wrong with the CA file.
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let roots = match &self.ca {
            Some(path) => roots_from(path)?,
            None => system_roots()?,
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

fn roots_from(path: &Path) -> Result<rustls::RootCertStore, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in certs {
        roots.add(cert).map_err(|e| {
            format!(
                "the CA file {} holds a bad certificate: {e}",
                path.display()
            )
        })?;
    }
    if roots.is_empty() {
        return Err(format!(
            "the CA file {} holds no certificate; give a PEM file with CERTIFICATE blocks",
            path.display()
        ));
    }
    Ok(roots)
}

fn system_roots() -> Result<rustls::RootCertStore, String> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    for cert in found.certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(
            "no system CA certificates were found (install ca-certificates); or give ca: the CA file of the broker's certificate".to_string(),
        );
    }
    Ok(roots)
}
