//! Key stores and trust stores, as Kafka's `ssl.*` keys describe them.
//!
//! A key store holds this broker's certificate chain (its own certificate
//! first) and private key; a trust store the certificates it trusts for
//! client certificates. Each comes from a file (`ssl.keystore.location`,
//! `ssl.truststore.location`) or inline PEM text
//! (`ssl.keystore.certificate.chain` with `ssl.keystore.key`,
//! `ssl.truststore.certificates`). Formats:
//!
//! - PEM: `CERTIFICATE` blocks, and in a key store one unencrypted private
//!   key (`PRIVATE KEY`, PKCS#8; `RSA PRIVATE KEY` and `EC PRIVATE KEY` are
//!   read too). An `ENCRYPTED PRIVATE KEY` is refused with the openssl
//!   command that decrypts it.
//! - PKCS#12, with the store password (`ssl.keystore.password`); the key
//!   must be under the same password (`ssl.key.password` equal to it or
//!   unset), as keytool and openssl write them by default.
//! - JKS, Kafka's default type name: as Java does, a PKCS#12 (or PEM) file
//!   is read under it; a real JKS file (magic `FEEDFEED`) is refused with
//!   the keytool command that converts it.

use std::path::PathBuf;

use p12_keystore::{KeyStore, KeyStoreEntry};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use strom_config::ssl::{SslConfig, StoreType};

use crate::error::SecurityError;

/// A JKS file's first four bytes.
const JKS_MAGIC: [u8; 4] = [0xFE, 0xED, 0xFE, 0xED];

/// A certificate chain and its private key.
#[derive(Debug)]
pub struct KeyMaterial {
    /// The broker's certificate first, then its issuers.
    pub chain: Vec<CertificateDer<'static>>,
    /// The private key of the first certificate.
    pub key: PrivateKeyDer<'static>,
}

/// The format a store's bytes are in, given the declared type.
fn format_of(key: &str, declared: StoreType, bytes: &[u8]) -> Result<StoreType, SecurityError> {
    if bytes.starts_with(&JKS_MAGIC) {
        return Err(SecurityError::Store {
            key: key.to_string(),
            message: "a JKS key store, which Strom does not read; convert it with \
                      `keytool -importkeystore -srckeystore store.jks -destkeystore store.p12 \
                      -deststoretype PKCS12` and set the type to PKCS12"
                .into(),
        });
    }
    Ok(match declared {
        StoreType::Pem => StoreType::Pem,
        StoreType::Pkcs12 => StoreType::Pkcs12,
        // A DER SEQUENCE is PKCS#12; anything else is read as PEM.
        StoreType::Jks if bytes.first() == Some(&0x30) => StoreType::Pkcs12,
        StoreType::Jks => StoreType::Pem,
    })
}

fn read_file(key: &str, path: &str) -> Result<Vec<u8>, SecurityError> {
    std::fs::read(path).map_err(|e| SecurityError::Read {
        key: key.to_string(),
        path: path.to_string(),
        message: e.to_string(),
    })
}

fn store_error(key: &str, message: impl Into<String>) -> SecurityError {
    SecurityError::Store {
        key: key.to_string(),
        message: message.into(),
    }
}

fn pem_certificates(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| store_error(key, format!("unreadable PEM certificate: {e}")))
}

fn pem_key(key: &str, pem: &[u8]) -> Result<PrivateKeyDer<'static>, SecurityError> {
    if pem
        .windows(b"ENCRYPTED PRIVATE KEY".len())
        .any(|w| w == b"ENCRYPTED PRIVATE KEY")
    {
        return Err(store_error(
            key,
            "an encrypted PEM private key, which Strom does not read; decrypt it with \
             `openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-plain.pem` (and keep the \
             file readable by the broker only), or use a PKCS12 key store",
        ));
    }
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| store_error(key, format!("no usable PEM private key: {e}")))
}

fn pkcs12(key: &str, bytes: &[u8], password: Option<&str>) -> Result<KeyStore, SecurityError> {
    KeyStore::from_pkcs12(bytes, password.unwrap_or("")).map_err(|e| {
        store_error(
            key,
            format!("unreadable PKCS12 store (wrong password?): {e}"),
        )
    })
}

/// The key store of `config`'s listener.
pub fn load_key_store(config: &SslConfig) -> Result<KeyMaterial, SecurityError> {
    if let (Some(chain), Some(key)) = (&config.keystore_certificate_chain, &config.keystore_key) {
        let material = KeyMaterial {
            chain: pem_certificates("ssl.keystore.certificate.chain", chain.as_bytes())?,
            key: pem_key("ssl.keystore.key", key.as_bytes())?,
        };
        return non_empty("ssl.keystore.certificate.chain", material);
    }
    let key = "ssl.keystore.location";
    let path = config
        .keystore_location
        .as_deref()
        .ok_or_else(|| store_error(key, "no key store is configured"))?;
    let bytes = read_file(key, path)?;
    let material = match format_of("ssl.keystore.type", config.keystore_type, &bytes)? {
        StoreType::Pkcs12 | StoreType::Jks => {
            let password = config.keystore_password.as_deref();
            if config.key_password.is_some() && config.key_password.as_deref() != password {
                return Err(store_error(
                    "ssl.key.password",
                    "differs from ssl.keystore.password; Strom reads PKCS12 stores whose \
                     key is under the store's password (re-export it with one password)",
                ));
            }
            let store = pkcs12(key, &bytes, password)?;
            let (_, chain) = store
                .private_key_chain()
                .ok_or_else(|| store_error(key, format!("{path} holds no private key")))?;
            KeyMaterial {
                chain: chain
                    .chain()
                    .iter()
                    .map(|c| CertificateDer::from(c.as_der().to_vec()))
                    .collect(),
                key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().to_vec())),
            }
        }
        StoreType::Pem => KeyMaterial {
            chain: pem_certificates(key, &bytes)?,
            key: pem_key(key, &bytes)?,
        },
    };
    non_empty(key, material)
}

fn non_empty(key: &str, material: KeyMaterial) -> Result<KeyMaterial, SecurityError> {
    if material.chain.is_empty() {
        return Err(store_error(key, "holds no certificate"));
    }
    Ok(material)
}

/// The trusted certificates of `config`'s listener, if it has a trust store.
pub fn load_trust_store(
    config: &SslConfig,
) -> Result<Option<Vec<CertificateDer<'static>>>, SecurityError> {
    let (key, certs) = if let Some(pem) = &config.truststore_certificates {
        let key = "ssl.truststore.certificates";
        (key, pem_certificates(key, pem.as_bytes())?)
    } else if let Some(path) = &config.truststore_location {
        let key = "ssl.truststore.location";
        let bytes = read_file(key, path)?;
        let certs = match format_of("ssl.truststore.type", config.truststore_type, &bytes)? {
            StoreType::Pkcs12 | StoreType::Jks => {
                let store = pkcs12(key, &bytes, config.truststore_password.as_deref())?;
                store
                    .entries()
                    .flat_map(|(_, entry)| match entry {
                        KeyStoreEntry::Certificate(c) => vec![c.as_der().to_vec()],
                        KeyStoreEntry::PrivateKeyChain(chain) => {
                            chain.chain().iter().map(|c| c.as_der().to_vec()).collect()
                        }
                        KeyStoreEntry::Secret(_) => Vec::new(),
                    })
                    .map(CertificateDer::from)
                    .collect()
            }
            StoreType::Pem => pem_certificates(key, &bytes)?,
        };
        (key, certs)
    } else {
        return Ok(None);
    };
    if certs.is_empty() {
        return Err(store_error(key, "holds no certificate"));
    }
    Ok(Some(certs))
}

/// The files `config` reads, whose change means reloading.
pub fn store_files(config: &SslConfig) -> Vec<PathBuf> {
    [&config.keystore_location, &config.truststore_location]
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .collect()
}
