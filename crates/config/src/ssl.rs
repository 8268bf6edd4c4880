//! A listener's security protocol and TLS settings, in Kafka's keys.
//!
//! `listener.security.protocol.map` gives each listener name its protocol.
//! A listener of protocol SSL reads Kafka's `ssl.*` keys, each of which may
//! be set for that listener alone as `listener.name.<name>.ssl.*` (the
//! listener name in lower case, as Kafka writes it); the prefixed key wins.
//! The values are checked here for form only; the files they name are read
//! (and re-read when they change) by `strom-security`.

use crate::error::ConfigError;

/// The `ssl.*` keys a listener may override with its
/// `listener.name.<name>.` prefix.
pub const LISTENER_SSL_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.cipher.suites",
    "ssl.principal.mapping.rules",
];

/// The TLS protocol versions Strom speaks (rustls has no older ones).
pub const SUPPORTED_TLS_PROTOCOLS: &[&str] = &["TLSv1.2", "TLSv1.3"];

/// A listener's security protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecurityProtocol {
    /// No TLS, no authentication.
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL authentication, no TLS.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name.
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections speak TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether clients must authenticate with SASL.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// The format of a key store or trust store file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    /// PEM text: certificates (and, in a key store, a PKCS#8 key).
    Pem,
    /// PKCS#12, password-protected.
    Pkcs12,
    /// Kafka's default name (Java's keystore type). Java reads PKCS#12 files
    /// under it too, so Strom does the same (and PEM); a real JKS file is
    /// refused with a message saying how to convert it.
    Jks,
}

impl StoreType {
    fn parse(key: &str, value: &str) -> Result<Self, ConfigError> {
        match value.to_ascii_uppercase().as_str() {
            "PEM" => Ok(StoreType::Pem),
            "PKCS12" => Ok(StoreType::Pkcs12),
            "JKS" => Ok(StoreType::Jks),
            _ => Err(ConfigError::Invalid {
                key: key.to_string(),
                value: value.to_string(),
                message: "expected PEM, PKCS12 or JKS".into(),
            }),
        }
    }
}

/// `ssl.client.auth`: whether the listener asks clients for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Never asked.
    None,
    /// Asked; a client without one is still served.
    Requested,
    /// Required: a client without a certificate the trust store vouches for
    /// fails the handshake.
    Required,
}

/// One SSL listener's TLS settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SslConfig {
    /// The listener.
    pub listener: String,
    /// `ssl.keystore.type`.
    pub keystore_type: StoreType,
    /// `ssl.keystore.location`.
    pub keystore_location: Option<String>,
    /// `ssl.keystore.password`.
    pub keystore_password: Option<String>,
    /// `ssl.key.password`: the private key's own password (PKCS#12 stores
    /// use one password for both in Strom; an encrypted PEM key is refused).
    pub key_password: Option<String>,
    /// `ssl.keystore.certificate.chain`: the chain as inline PEM.
    pub keystore_certificate_chain: Option<String>,
    /// `ssl.keystore.key`: the key as inline PEM.
    pub keystore_key: Option<String>,
    /// `ssl.truststore.type`.
    pub truststore_type: StoreType,
    /// `ssl.truststore.location`.
    pub truststore_location: Option<String>,
    /// `ssl.truststore.password`.
    pub truststore_password: Option<String>,
    /// `ssl.truststore.certificates`: trusted certificates as inline PEM.
    pub truststore_certificates: Option<String>,
    /// `ssl.client.auth`.
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`.
    pub enabled_protocols: Vec<String>,
    /// `ssl.cipher.suites` (IANA names, as Java takes them); empty: rustls'
    /// defaults.
    pub cipher_suites: Vec<String>,
    /// `ssl.principal.mapping.rules`, as written (parsed by
    /// strom-security).
    pub principal_mapping_rules: String,
}

/// Reads one listener's settings. `get(key)` answers a key's effective raw
/// value (set or default), `None` when it has none.
pub fn listener_ssl_config(
    listener: &str,
    get: impl Fn(&str) -> Result<Option<String>, ConfigError>,
) -> Result<SslConfig, ConfigError> {
    let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
    // The listener's own key first, then the broker-wide one.
    let value = |key: &str| -> Result<Option<String>, ConfigError> {
        match get(&format!("{prefix}{key}"))? {
            Some(v) => Ok(Some(v)),
            None => get(key),
        }
        .map(|v| v.filter(|s| !s.trim().is_empty()))
    };
    let key_of = |key: &str| -> String {
        if get(&format!("{prefix}{key}")).ok().flatten().is_some() {
            format!("{prefix}{key}")
        } else {
            key.to_string()
        }
    };
    let list = |key: &str| -> Result<Vec<String>, ConfigError> {
        Ok(value(key)?
            .map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default())
    };
    let store_type = |key: &str| -> Result<StoreType, ConfigError> {
        match value(key)? {
            Some(v) => StoreType::parse(&key_of(key), v.trim()),
            None => Ok(StoreType::Jks),
        }
    };
    let client_auth = match value("ssl.client.auth")?
        .unwrap_or_else(|| "none".into())
        .trim()
        .to_ascii_lowercase()
        .as_str()
    {
        "none" => ClientAuth::None,
        "requested" => ClientAuth::Requested,
        "required" => ClientAuth::Required,
        other => {
            return Err(ConfigError::Invalid {
                key: key_of("ssl.client.auth"),
                value: other.to_string(),
                message: "expected none, requested or required".into(),
            })
        }
    };
    let enabled_protocols = list("ssl.enabled.protocols")?;
    for p in &enabled_protocols {
        if !SUPPORTED_TLS_PROTOCOLS.contains(&p.as_str()) {
            return Err(ConfigError::Invalid {
                key: key_of("ssl.enabled.protocols"),
                value: p.clone(),
                message: format!(
                    "Strom speaks {} only (older protocols are insecure and rustls has none)",
                    SUPPORTED_TLS_PROTOCOLS.join(" and ")
                ),
            });
        }
    }
    if enabled_protocols.is_empty() {
        return Err(ConfigError::Inconsistent {
            key: key_of("ssl.enabled.protocols"),
            message: "at least one of TLSv1.2, TLSv1.3 is needed".into(),
        });
    }
    let config = SslConfig {
        listener: listener.to_string(),
        keystore_type: store_type("ssl.keystore.type")?,
        keystore_location: value("ssl.keystore.location")?,
        keystore_password: value("ssl.keystore.password")?,
        key_password: value("ssl.key.password")?,
        keystore_certificate_chain: value("ssl.keystore.certificate.chain")?,
        keystore_key: value("ssl.keystore.key")?,
        truststore_type: store_type("ssl.truststore.type")?,
        truststore_location: value("ssl.truststore.location")?,
        truststore_password: value("ssl.truststore.password")?,
        truststore_certificates: value("ssl.truststore.certificates")?,
        client_auth,
        enabled_protocols,
        cipher_suites: list("ssl.cipher.suites")?,
        principal_mapping_rules: value("ssl.principal.mapping.rules")?
            .unwrap_or_else(|| "DEFAULT".into()),
    };
    let inline = config.keystore_certificate_chain.is_some() || config.keystore_key.is_some();
    if config.keystore_location.is_some() == inline {
        return Err(ConfigError::Inconsistent {
            key: key_of("ssl.keystore.location"),
            message: format!(
                "listener {listener} uses TLS: set ssl.keystore.location, or \
                 ssl.keystore.certificate.chain with ssl.keystore.key (inline PEM), not both"
            ),
        });
    }
    if inline && (config.keystore_certificate_chain.is_none() || config.keystore_key.is_none()) {
        return Err(ConfigError::Inconsistent {
            key: key_of("ssl.keystore.key"),
            message: "ssl.keystore.certificate.chain and ssl.keystore.key go together".into(),
        });
    }
    if config.client_auth != ClientAuth::None
        && config.truststore_location.is_none()
        && config.truststore_certificates.is_none()
    {
        return Err(ConfigError::Inconsistent {
            key: key_of("ssl.client.auth"),
            message: format!(
                "listener {listener} asks clients for certificates but has no trust store \
                 (ssl.truststore.location or ssl.truststore.certificates)"
            ),
        });
    }
    Ok(config)
}

/// Whether `key` is one listener's own security key: an `ssl.*` key
/// (`listener.name.<name>.ssl.*`), its SASL mechanisms
/// (`listener.name.<name>.sasl.enabled.mechanisms`) or a mechanism's login
/// module (`listener.name.<name>.<mechanism>.sasl.jaas.config`); the broker
/// key it is read as.
pub fn listener_override_base(key: &str) -> Option<&'static str> {
    let rest = key.strip_prefix("listener.name.")?;
    let (_, base) = rest.split_once('.')?;
    if let Some(k) = LISTENER_SSL_KEYS.iter().find(|k| **k == base) {
        return Some(k);
    }
    if base == "sasl.enabled.mechanisms" {
        return Some("sasl.enabled.mechanisms");
    }
    let (mechanism, rest) = base.split_once('.')?;
    (rest == "sasl.jaas.config" && !mechanism.is_empty()).then_some("sasl.jaas.config")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<SslConfig, ConfigError> {
        let set: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        listener_ssl_config("EXTERNAL", |k| {
            Ok(set
                .get(k)
                .cloned()
                .or_else(|| (k == "ssl.enabled.protocols").then(|| "TLSv1.2,TLSv1.3".to_string())))
        })
    }

    #[test]
    fn a_listeners_own_keys_win_over_the_broker_wide_ones() {
        let c = config(&[
            ("ssl.keystore.location", "/broker.p12"),
            (
                "listener.name.external.ssl.keystore.location",
                "/external.p12",
            ),
            ("listener.name.external.ssl.keystore.type", "pkcs12"),
            ("ssl.client.auth", "required"),
            ("ssl.truststore.certificates", "-----BEGIN CERTIFICATE-----"),
        ])
        .unwrap();
        assert_eq!(c.keystore_location.as_deref(), Some("/external.p12"));
        assert_eq!(c.keystore_type, StoreType::Pkcs12);
        assert_eq!(c.truststore_type, StoreType::Jks, "Kafka's default");
        assert_eq!(c.client_auth, ClientAuth::Required);
        assert_eq!(c.enabled_protocols, ["TLSv1.2", "TLSv1.3"]);
    }

    #[test]
    fn inconsistent_or_unsupported_settings_are_refused_with_their_key() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "ssl.keystore.location"),
            (
                &[("ssl.keystore.location", "/k"), ("ssl.keystore.key", "x")],
                "ssl.keystore.location",
            ),
            (&[("ssl.keystore.key", "x")], "ssl.keystore.key"),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.client.auth", "always"),
                ],
                "ssl.client.auth",
            ),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.client.auth", "required"),
                ],
                "ssl.client.auth",
            ),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("listener.name.external.ssl.enabled.protocols", "TLSv1.1"),
                ],
                "listener.name.external.ssl.enabled.protocols",
            ),
            (
                &[
                    ("ssl.keystore.location", "/k"),
                    ("ssl.keystore.type", "BKS"),
                ],
                "ssl.keystore.type",
            ),
        ];
        for (pairs, key) in cases {
            let e = config(pairs).unwrap_err();
            assert_eq!(e.key(), Some(*key), "{pairs:?}: {e}");
        }
    }

    #[test]
    fn listener_overrides_are_recognised() {
        assert_eq!(
            listener_override_base("listener.name.external.ssl.keystore.location"),
            Some("ssl.keystore.location")
        );
        assert_eq!(listener_override_base("listener.name.external.foo"), None);
        assert_eq!(
            listener_override_base("listener.name.sasl_ssl.plain.sasl.jaas.config"),
            Some("sasl.jaas.config")
        );
        assert_eq!(
            listener_override_base("listener.name.sasl_ssl.sasl.enabled.mechanisms"),
            Some("sasl.enabled.mechanisms")
        );
        assert_eq!(listener_override_base("ssl.keystore.location"), None);
    }
}
