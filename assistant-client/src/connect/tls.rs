//! TLS for the client, with rustls: the server's certificate checked
//! against `--ca-cert` or the system's roots, and a client certificate for
//! mutual TLS.

use std::{path::Path, sync::Arc};

use tokio_rustls::{
    TlsConnector,
    rustls::{
        self, ClientConfig, RootCertStore,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    },
};

use super::ConnectArgs;
use crate::ClientError;

/// The TLS connector the flags ask for, and the name to check the server's
/// certificate against.
pub(super) fn connector(
    args: &ConnectArgs,
    host: &str,
) -> Result<(TlsConnector, ServerName<'static>), ClientError> {
    let setup = |what: String| ClientError::Setup(what);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    match &args.ca_cert {
        Some(ca) => {
            for cert in certificates(ca)? {
                roots
                    .add(cert)
                    .map_err(|err| setup(format!("cannot trust {}: {err}", ca.display())))?;
            }
        }
        None => {
            // Certificates the system cannot parse are skipped, as
            // browsers and curl skip them.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
    }
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| setup(format!("cannot set up TLS: {err}")))?
        .with_root_certificates(roots);
    let mut config = match (&args.cert, &args.key) {
        (Some(cert), Some(key)) => {
            let key = PrivateKeyDer::from_pem_file(key).map_err(|err| {
                setup(format!(
                    "cannot read a PEM private key from {}: {err}",
                    key.display()
                ))
            })?;
            builder
                .with_client_auth_cert(certificates(cert)?, key)
                .map_err(|err| {
                    setup(format!(
                        "the key does not fit the certificate {}: {err}",
                        cert.display()
                    ))
                })?
        }
        _ => builder.with_no_client_auth(),
    };
    // gRPC runs on HTTP/2, which TLS servers agree to through ALPN.
    config.alpn_protocols = vec![b"h2".to_vec()];
    let name = ServerName::try_from(host.to_owned()).map_err(|err| ClientError::BadAddress {
        server: args.server.clone(),
        reason: format!("`{host}` cannot be checked against a certificate: {err}"),
    })?;
    Ok((TlsConnector::from(Arc::new(config)), name))
}

/// Every certificate in a PEM file; an error if it holds none.
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|err| {
            ClientError::Setup(format!(
                "cannot read PEM certificates from {}: {err}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ClientError::Setup(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(certs)
}

/// The TLS failure behind `err`, if it is one: a certificate that is not
/// trusted, is for another host, or has expired; or a server that refused
/// ours.
pub(crate) fn tls_error(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // h2 keeps the I/O error behind a method, not as a source.
        let io = err
            .downcast_ref::<std::io::Error>()
            .or_else(|| err.downcast_ref::<h2::Error>().and_then(h2::Error::get_io));
        if let Some(found) = io.and_then(tls_in_io) {
            return Some(found);
        }
        cause = err.source();
    }
    None
}

/// The TLS failure an I/O error carries, if any.
fn tls_in_io(io: &std::io::Error) -> Option<String> {
    if let Some(tls) = io
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return Some(tls.to_string());
    }
    // Once a connection is up, h2 keeps only the kind and text of an I/O
    // error, so a TLS alert that arrives then (under TLS 1.3, a refused
    // client certificate) is known by rustls's text alone.
    let text = io.to_string();
    (io.kind() == std::io::ErrorKind::InvalidData && text.starts_with("received fatal alert"))
        .then_some(text)
}
