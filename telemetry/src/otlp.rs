//! The transport pieces telemetry's OTLP exporters (`otlp_export`) are built
//! from, per [`OtlpConfig`]: gRPC metadata, TLS for tonic, the HTTPS
//! connector for hyper (rustls).
//!
//! Must be called inside telemetry's own runtime context: tonic and hyper
//! spawn their connection tasks onto the current runtime.

use std::sync::Arc;

use crate::config::{OtlpConfig, Signal};
use crate::error::InitError;

/// The configured headers as gRPC metadata (keys lowercased, as gRPC wants).
pub(crate) fn grpc_metadata(
    cfg: &OtlpConfig,
    signal: Signal,
) -> Result<tonic::metadata::MetadataMap, InitError> {
    let mut metadata = tonic::metadata::MetadataMap::new();
    for (k, v) in &cfg.headers {
        let key = tonic::metadata::MetadataKey::from_bytes(k.to_ascii_lowercase().as_bytes())
            .map_err(|e| InitError::header(signal, k, e))?;
        let value = v.parse().map_err(|e| InitError::header(signal, k, e))?;
        metadata.insert(key, value);
    }
    Ok(metadata)
}

/// TLS for an `https://` gRPC endpoint (none for `http://`), its PEM files
/// read and parsed now: tonic only parses them on first connect, and a bad
/// file must fail start-up instead.
pub(crate) fn tonic_tls(
    cfg: &OtlpConfig,
    signal: Signal,
) -> Result<Option<tonic::transport::ClientTlsConfig>, InitError> {
    if !cfg.endpoint.starts_with("https://") {
        return Ok(None);
    }
    let mut tls = tonic::transport::ClientTlsConfig::new();
    match &cfg.certificate {
        Some(ca) => {
            let pem = read_pem(signal, "CERTIFICATE", ca)?;
            parse_certs(signal, "CERTIFICATE", ca, &pem)?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        None => tls = tls.with_native_roots(),
    }
    if let (Some(cert), Some(key)) = (&cfg.client_certificate, &cfg.client_key) {
        let cert_pem = read_pem(signal, "CLIENT_CERTIFICATE", cert)?;
        parse_certs(signal, "CLIENT_CERTIFICATE", cert, &cert_pem)?;
        let key_pem = read_pem(signal, "CLIENT_KEY", key)?;
        parse_key(signal, key, &key_pem)?;
        tls = tls.identity(tonic::transport::Identity::from_pem(cert_pem, key_pem));
    }
    if let Some(host) = host_of(&cfg.endpoint) {
        tls = tls.domain_name(host);
    }
    Ok(Some(tls))
}

pub(crate) type Connector =
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>;

pub(crate) fn https_connector(cfg: &OtlpConfig, signal: Signal) -> Result<Connector, InitError> {
    let mut roots = rustls::RootCertStore::empty();
    match &cfg.certificate {
        Some(ca) => {
            let pem = read_pem(signal, "CERTIFICATE", ca)?;
            for cert in parse_certs(signal, "CERTIFICATE", ca, &pem)? {
                roots
                    .add(cert)
                    .map_err(|e| InitError::tls(signal, "CERTIFICATE", ca, e))?;
            }
        }
        None if cfg.endpoint.starts_with("https://") => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
        None => {}
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| InitError::tls(signal, "CERTIFICATE", std::path::Path::new(""), e))?
        .with_root_certificates(roots);
    let tls = match (&cfg.client_certificate, &cfg.client_key) {
        (Some(cert_path), Some(key_path)) => {
            let cert_pem = read_pem(signal, "CLIENT_CERTIFICATE", cert_path)?;
            let certs = parse_certs(signal, "CLIENT_CERTIFICATE", cert_path, &cert_pem)?;
            let key_pem = read_pem(signal, "CLIENT_KEY", key_path)?;
            let key = parse_key(signal, key_path, &key_pem)?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| InitError::tls(signal, "CLIENT_KEY", key_path, e))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .build())
}

fn parse_certs(
    signal: Signal,
    var: &str,
    path: &std::path::Path,
    pem: &[u8],
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, InitError> {
    use rustls::pki_types::pem::PemObject;
    let certs: Result<Vec<_>, _> = rustls::pki_types::CertificateDer::pem_slice_iter(pem).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(InitError::tls(
            signal,
            var,
            path,
            "no CERTIFICATE block found",
        )),
        Err(e) => Err(InitError::tls(signal, var, path, e)),
    }
}

fn parse_key(
    signal: Signal,
    path: &std::path::Path,
    pem: &[u8],
) -> Result<rustls::pki_types::PrivateKeyDer<'static>, InitError> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| InitError::tls(signal, "CLIENT_KEY", path, e))
}

fn read_pem(signal: Signal, var: &str, path: &std::path::Path) -> Result<Vec<u8>, InitError> {
    std::fs::read(path).map_err(|e| InitError::tls(signal, var, path, e))
}

fn host_of(endpoint: &str) -> Option<String> {
    endpoint
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.host().map(|h| h.trim_matches(['[', ']']).to_string()))
}
