//! TLS on a listener of security protocol SSL.
//!
//! [`TlsListener`] turns a listener's [`SslConfig`] into a rustls server
//! configuration: the key store's chain and key, the TLS versions of
//! `ssl.enabled.protocols`, the suites of `ssl.cipher.suites` (IANA names,
//! as Java takes them; rustls' own `TLS13_` spellings are accepted too),
//! and, for `ssl.client.auth` requested or required, a verifier of client
//! certificates against the trust store. A bad setting fails start-up with
//! the key that is wrong.
//!
//! Certificates rotate without a restart: [`TlsListener::watch`] looks at
//! the store files every [`RELOAD_CHECK_INTERVAL`] and, when one changed
//! (modification time, size or inode: a Kubernetes Secret's symlink swap
//! changes all three), builds a new configuration that every connection
//! accepted from then on uses; connections already open keep theirs. A
//! store that fails to load is logged and the previous configuration stays,
//! so a half-written file never takes a listener down. Inline PEM settings
//! have no file and change only with a restart.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use strom_config::ssl::{ClientAuth, SslConfig};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::error::SecurityError;
use crate::principal::PrincipalMapper;
use crate::stores::{load_key_store, load_trust_store, store_files};
use rustls_pki_types::CertificateDer;

/// How often the store files are checked for a change.
pub const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// What identifies a file's version.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    path: PathBuf,
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamps(files: &[PathBuf]) -> Vec<FileStamp> {
    files
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok();
            FileStamp {
                path: path.clone(),
                modified: meta.as_ref().and_then(|m| m.modified().ok()),
                len: meta.as_ref().map_or(0, |m| m.len()),
                inode: meta.as_ref().map_or(0, |m| m.ino()),
            }
        })
        .collect()
}

/// One SSL listener's TLS, reloaded when its stores change.
#[derive(Debug)]
pub struct TlsListener {
    config: SslConfig,
    principals: PrincipalMapper,
    current: RwLock<Arc<ServerConfig>>,
    loaded_from: Mutex<Vec<FileStamp>>,
}

impl TlsListener {
    /// Loads the stores and builds the configuration; errors name the key.
    pub fn new(config: SslConfig) -> Result<Arc<Self>, SecurityError> {
        let files = store_files(&config);
        let before = stamps(&files);
        let server = build_server_config(&config)?;
        let principals = PrincipalMapper::parse(&config.principal_mapping_rules)?;
        Ok(Arc::new(Self {
            config,
            principals,
            current: RwLock::new(Arc::new(server)),
            loaded_from: Mutex::new(before),
        }))
    }

    /// The listener's name.
    pub fn listener(&self) -> &str {
        &self.config.listener
    }

    /// The principal of a client that presented `chain` (`User:<name>`,
    /// its subject mapped by `ssl.principal.mapping.rules`); `None`
    /// without a certificate.
    pub fn principal_of(&self, chain: Option<&[CertificateDer<'_>]>) -> Option<String> {
        self.principals.principal(chain)
    }

    /// An acceptor with the current configuration.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.current.read()))
    }

    /// Rebuilds the configuration if a store file changed since the last
    /// load; true when a new one is in use. Blocking (reads files).
    pub fn reload_if_changed(&self) -> bool {
        let files = store_files(&self.config);
        let now = stamps(&files);
        if *self.loaded_from.lock() == now {
            return false;
        }
        match build_server_config(&self.config) {
            Ok(server) => {
                *self.current.write() = Arc::new(server);
                *self.loaded_from.lock() = now;
                tracing::info!(listener = %self.config.listener, "TLS key or trust store changed: new connections use the new certificates");
                true
            }
            Err(e) => {
                // Tried again at the next change (a file half written now
                // is whole then).
                *self.loaded_from.lock() = now;
                tracing::error!(listener = %self.config.listener, error = %e, "TLS stores changed but cannot be loaded; keeping the previous certificates");
                false
            }
        }
    }

    /// Checks the store files every [`RELOAD_CHECK_INTERVAL`] until
    /// shutdown.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        if store_files(&self.config).is_empty() {
            return;
        }
        let mut tick = tokio::time::interval(RELOAD_CHECK_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
                _ = tick.tick() => {
                    let me = Arc::clone(&self);
                    let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
                }
            }
        }
    }
}

fn tls_error(config: &SslConfig, message: impl std::fmt::Display) -> SecurityError {
    SecurityError::Tls {
        listener: config.listener.clone(),
        message: message.to_string(),
    }
}

/// rustls' ring provider with the suites `ssl.cipher.suites` names.
fn provider(config: &SslConfig) -> Result<CryptoProvider, SecurityError> {
    // ring, not aws-lc-rs: no C library to build (the static container
    // image), at the price of post-quantum key exchange, which rustls 0.23.48
    // deprecates ring's provider for; Kafka clients negotiate classic
    // groups (X25519, P-256) with it.
    #[allow(deprecated)]
    let mut provider = rustls::crypto::ring::default_provider();
    if config.cipher_suites.is_empty() {
        return Ok(provider);
    }
    let iana = |s: &rustls::SupportedCipherSuite| {
        let name = s.suite().as_str().unwrap_or_default();
        (name.replacen("TLS13_", "TLS_", 1), name.to_string())
    };
    for wanted in &config.cipher_suites {
        if !provider.cipher_suites.iter().any(|s| {
            let (i, r) = iana(s);
            *wanted == i || *wanted == r
        }) {
            let known: Vec<String> = provider.cipher_suites.iter().map(|s| iana(s).0).collect();
            return Err(SecurityError::Store {
                key: "ssl.cipher.suites".into(),
                message: format!(
                    "{wanted} is not a suite Strom offers ({})",
                    known.join(", ")
                ),
            });
        }
    }
    provider.cipher_suites.retain(|s| {
        let (i, r) = iana(s);
        config.cipher_suites.iter().any(|w| *w == i || *w == r)
    });
    Ok(provider)
}

/// The rustls server configuration of `config`.
pub fn build_server_config(config: &SslConfig) -> Result<ServerConfig, SecurityError> {
    let provider = Arc::new(provider(config)?);
    let versions: Vec<&'static SupportedProtocolVersion> = config
        .enabled_protocols
        .iter()
        .filter_map(|p| match p.as_str() {
            "TLSv1.2" => Some(&rustls::version::TLS12),
            "TLSv1.3" => Some(&rustls::version::TLS13),
            _ => None,
        })
        .collect();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&versions)
        .map_err(|e| tls_error(config, e))?;
    let builder = match config.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Requested | ClientAuth::Required => {
            let trusted = load_trust_store(config)?.ok_or_else(|| SecurityError::Store {
                key: "ssl.truststore.location".into(),
                message: "ssl.client.auth asks for client certificates but no trust store is set"
                    .into(),
            })?;
            let mut roots = RootCertStore::empty();
            for cert in trusted {
                roots.add(cert).map_err(|e| SecurityError::Store {
                    key: "ssl.truststore.location".into(),
                    message: format!("a certificate that cannot be trusted: {e}"),
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::clone(&provider));
            let verifier = if config.client_auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build().map_err(|e| tls_error(config, e))?)
        }
    };
    let material = load_key_store(config)?;
    builder
        .with_single_cert(material.chain, material.key)
        .map_err(|e| tls_error(config, format!("key store: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_config::ssl::StoreType;

    /// A CA, and a server certificate for 127.0.0.1 it signed: (CA PEM,
    /// server chain PEM, server key PEM).
    fn certificates(name: &str) -> (String, String, String) {
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("{name} CA"));
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
        (ca.pem(), cert.pem(), key.serialize_pem())
    }

    fn config(dir: &std::path::Path, chain: &str, key: &str) -> SslConfig {
        let path = dir.join("server.pem");
        std::fs::write(&path, format!("{chain}{key}")).unwrap();
        SslConfig {
            listener: "SSL".into(),
            keystore_type: StoreType::Jks,
            keystore_location: Some(path.display().to_string()),
            keystore_password: None,
            key_password: None,
            keystore_certificate_chain: None,
            keystore_key: None,
            truststore_type: StoreType::Jks,
            truststore_location: None,
            truststore_password: None,
            truststore_certificates: None,
            client_auth: ClientAuth::None,
            enabled_protocols: vec!["TLSv1.2".into(), "TLSv1.3".into()],
            cipher_suites: Vec::new(),
            principal_mapping_rules: "DEFAULT".into(),
        }
    }

    #[test]
    fn a_pem_key_store_loads_and_a_changed_file_is_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let (_, chain, key) = certificates("first");
        let c = config(dir.path(), &chain, &key);
        let listener = TlsListener::new(c.clone()).unwrap();
        assert!(!listener.reload_if_changed(), "nothing changed");
        let (_, chain2, key2) = certificates("second");
        let path = c.keystore_location.clone().unwrap();
        // Replaced as Kubernetes does: a new file swapped in.
        let fresh = dir.path().join("server.pem.new");
        std::fs::write(&fresh, format!("{chain2}{key2}")).unwrap();
        std::fs::rename(&fresh, &path).unwrap();
        assert!(listener.reload_if_changed());
        // A broken file is not taken.
        std::fs::write(&path, "not a certificate").unwrap();
        assert!(!listener.reload_if_changed());
    }

    #[test]
    fn bad_stores_and_suites_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, chain, key) = certificates("x");
        let mut c = config(dir.path(), &chain, &key);
        c.cipher_suites = vec!["TLS_RSA_WITH_RC4_128_MD5".into()];
        assert!(
            matches!(build_server_config(&c), Err(SecurityError::Store { key, .. }) if key == "ssl.cipher.suites")
        );
        c.cipher_suites = vec!["TLS_AES_256_GCM_SHA384".into()];
        build_server_config(&c).unwrap();
        // A JKS file is refused with the way out.
        let jks = dir.path().join("store.jks");
        std::fs::write(&jks, [0xFE, 0xED, 0xFE, 0xED, 0, 0, 0, 2]).unwrap();
        c.keystore_location = Some(jks.display().to_string());
        let e = build_server_config(&c).unwrap_err().to_string();
        assert!(e.contains("keytool -importkeystore"), "{e}");
        // Client auth without a trust store; then with one.
        let mut c = config(dir.path(), &chain, &key);
        c.client_auth = ClientAuth::Required;
        assert!(build_server_config(&c).is_err());
        c.truststore_certificates = Some(ca);
        build_server_config(&c).unwrap();
        // An encrypted key is refused with the openssl command.
        let c = config(
            dir.path(),
            &chain,
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let e = build_server_config(&c).unwrap_err().to_string();
        assert!(e.contains("openssl pkcs8"), "{e}");
    }

    #[test]
    fn a_pkcs12_key_store_loads_with_its_password() {
        let dir = tempfile::tempdir().unwrap();
        let (_, chain, key) = certificates("p12");
        let key_der = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let certs: Vec<p12_keystore::Certificate> = CertificateDerIter::parse(&chain);
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(
            "broker",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
                key_der.secret_der(),
                [1u8; 20],
                certs,
            )),
        );
        let bytes = store.writer("changeit").write().unwrap();
        let path = dir.path().join("server.p12");
        std::fs::write(&path, bytes).unwrap();
        let mut c = config(dir.path(), &chain, &key);
        c.keystore_location = Some(path.display().to_string());
        c.keystore_password = Some("changeit".into());
        build_server_config(&c).unwrap();
        c.keystore_type = StoreType::Pkcs12;
        build_server_config(&c).unwrap();
        c.keystore_password = Some("wrong".into());
        let e = build_server_config(&c).unwrap_err().to_string();
        assert!(e.contains("wrong password"), "{e}");
    }

    /// PEM certificates as p12-keystore's type.
    struct CertificateDerIter;

    impl CertificateDerIter {
        fn parse(pem: &str) -> Vec<p12_keystore::Certificate> {
            rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
                .map(|c| p12_keystore::Certificate::from_der(&c.unwrap()).unwrap())
                .collect()
        }
    }

    use rustls_pki_types::pem::PemObject;
}
