//! A SASL listener's mechanisms and the users its login modules know, in
//! Kafka's keys.
//!
//! A listener of protocol SASL_PLAINTEXT or SASL_SSL offers the mechanisms
//! of `sasl.enabled.mechanisms` (or its own
//! `listener.name.<name>.sasl.enabled.mechanisms`). Each mechanism's login
//! module is configured, as on Kafka brokers, with
//! `listener.name.<name>.<mechanism>.sasl.jaas.config` (listener and
//! mechanism in lower case). For PLAIN that is Kafka's `PlainLoginModule`,
//! whose `user_<name>="<password>"` options are the users it accepts:
//!
//! ```text
//! listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
//!     username="admin" password="admin-secret" user_admin="admin-secret" user_alice="alice-secret";
//! ```
//!
//! The mechanisms Strom has so far: PLAIN. Others (GSSAPI, Kafka's default,
//! SCRAM, OAUTHBEARER) are refused at start-up with the key that names them.

use std::collections::BTreeMap;

use crate::error::ConfigError;

/// The JAAS login module of PLAIN, as Kafka names it.
pub const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// A SASL mechanism Strom serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    /// RFC 4616: user name and password in the clear (use SASL_SSL).
    Plain,
}

impl SaslMechanism {
    /// The mechanism's SASL name.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// One SASL listener's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslListenerConfig {
    /// The listener.
    pub listener: String,
    /// The mechanisms offered, in the order configured.
    pub mechanisms: Vec<SaslMechanism>,
    /// PLAIN's users and passwords (`user_<name>` options).
    pub plain_users: BTreeMap<String, String>,
    /// `connections.max.reauth.ms` (KIP-368): the session lifetime given
    /// to clients that can re-authenticate; 0 is none.
    pub max_reauth_ms: u64,
}

/// Reads one listener's settings. `get(key)` answers a key's effective raw
/// value (set or default), `None` when it has none.
pub fn listener_sasl_config(
    listener: &str,
    get: impl Fn(&str) -> Result<Option<String>, ConfigError>,
) -> Result<SaslListenerConfig, ConfigError> {
    let prefix = format!("listener.name.{}.", listener.to_ascii_lowercase());
    let own = format!("{prefix}sasl.enabled.mechanisms");
    let (key, names) = match get(&own)? {
        Some(v) => (own, v),
        None => (
            "sasl.enabled.mechanisms".to_string(),
            get("sasl.enabled.mechanisms")?.unwrap_or_default(),
        ),
    };
    let mut mechanisms = Vec::new();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let mechanism = match name.to_ascii_uppercase().as_str() {
            "PLAIN" => SaslMechanism::Plain,
            other => {
                return Err(ConfigError::Invalid {
                    key,
                    value: other.to_string(),
                    message: "Strom offers PLAIN so far (GSSAPI, Kafka's default, SCRAM and \
                              OAUTHBEARER are not available): set sasl.enabled.mechanisms=PLAIN"
                        .into(),
                })
            }
        };
        if !mechanisms.contains(&mechanism) {
            mechanisms.push(mechanism);
        }
    }
    if mechanisms.is_empty() {
        return Err(ConfigError::Inconsistent {
            key,
            message: format!("SASL listener {listener} offers no mechanism"),
        });
    }
    let mut plain_users = BTreeMap::new();
    if mechanisms.contains(&SaslMechanism::Plain) {
        let jaas_key = format!("{prefix}plain.sasl.jaas.config");
        let text = get(&jaas_key)?.ok_or_else(|| ConfigError::Inconsistent {
            key: jaas_key.clone(),
            message: format!(
                "listener {listener} offers PLAIN: its login module must be configured, as \
                 {PLAIN_LOGIN_MODULE} required user_<name>=\"<password>\" ...;"
            ),
        })?;
        plain_users = plain_users_of(&jaas_key, &text)?;
    }
    let max_reauth_ms = match get("connections.max.reauth.ms")? {
        Some(v) => v.trim().parse::<i64>().map_err(|_| ConfigError::Invalid {
            key: "connections.max.reauth.ms".into(),
            value: v.clone(),
            message: "expected milliseconds".into(),
        })?,
        None => 0,
    };
    Ok(SaslListenerConfig {
        listener: listener.to_string(),
        mechanisms,
        plain_users,
        max_reauth_ms: u64::try_from(max_reauth_ms).unwrap_or(0),
    })
}

/// The `user_<name>` options of a `PlainLoginModule` JAAS entry.
pub fn plain_users_of(key: &str, text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
    let (module, options) = parse_jaas(key, text)?;
    if module != PLAIN_LOGIN_MODULE {
        return Err(ConfigError::Invalid {
            key: key.to_string(),
            value: module,
            message: format!("PLAIN's login module is {PLAIN_LOGIN_MODULE}"),
        });
    }
    let users: BTreeMap<String, String> = options
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("user_")?.to_string(), v)))
        .collect();
    if users.is_empty() {
        return Err(ConfigError::Inconsistent {
            key: key.to_string(),
            message: "no user_<name>=\"<password>\" option: nobody could log in".into(),
        });
    }
    Ok(users)
}

/// One JAAS entry, `<module class> <flag> (<option>=<value>)* ;`: the
/// module class and the options (values unquoted, `\"` and `\\` escapes
/// resolved).
fn parse_jaas(key: &str, text: &str) -> Result<(String, Vec<(String, String)>), ConfigError> {
    let bad = |message: &str| ConfigError::Invalid {
        key: key.to_string(),
        // Never echo the text: it holds passwords.
        value: "(hidden)".into(),
        message: message.to_string(),
    };
    let mut chars = text.trim().chars().peekable();
    let mut word = || -> String {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut w = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' || c == ';' {
                break;
            }
            w.push(c);
            chars.next();
        }
        w
    };
    let module = word();
    let flag = word();
    if module.is_empty()
        || !["required", "requisite", "sufficient", "optional"].contains(&flag.as_str())
    {
        return Err(bad(
            "expected '<LoginModule class> required option=\"value\" ... ;'",
        ));
    }
    let mut options = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            Some(';') => {
                chars.next();
                break;
            }
            None => return Err(bad("the entry must end with ';'")),
            _ => {}
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() || c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return Err(bad("expected option=\"value\""));
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(bad("unterminated quoted value")),
                    },
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(bad("unterminated quoted value")),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == ';' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        options.push((name, value));
    }
    if chars.any(|c| !c.is_whitespace()) {
        return Err(bad("one login module entry only"));
    }
    Ok((module, options))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<SaslListenerConfig, ConfigError> {
        let set: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        listener_sasl_config("SASL_PLAINTEXT", |k| Ok(set.get(k).cloned()))
    }

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
        username="admin" password="admin-secret"
        user_admin="admin-secret" user_alice="al\"ice";"#;

    #[test]
    fn plain_users_come_from_the_listeners_jaas_entry() {
        let c = config(&[
            ("sasl.enabled.mechanisms", "PLAIN"),
            ("listener.name.sasl_plaintext.plain.sasl.jaas.config", JAAS),
        ])
        .unwrap();
        assert_eq!(c.mechanisms, [SaslMechanism::Plain]);
        assert_eq!(c.plain_users.len(), 2);
        assert_eq!(c.plain_users["admin"], "admin-secret");
        assert_eq!(c.plain_users["alice"], "al\"ice");
    }

    #[test]
    fn missing_or_unsupported_settings_name_their_key_and_hide_passwords() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("sasl.enabled.mechanisms", "GSSAPI")], "sasl.enabled.mechanisms"),
            (&[("sasl.enabled.mechanisms", "")], "sasl.enabled.mechanisms"),
            (
                &[("sasl.enabled.mechanisms", "PLAIN")],
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            ),
            (
                &[
                    ("sasl.enabled.mechanisms", "PLAIN"),
                    (
                        "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                        "org.apache.kafka.common.security.plain.PlainLoginModule required user_a=\"secret\"",
                    ),
                ],
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            ),
            (
                &[
                    ("listener.name.sasl_plaintext.sasl.enabled.mechanisms", "PLAIN"),
                    (
                        "listener.name.sasl_plaintext.plain.sasl.jaas.config",
                        "com.example.Other required user_a=\"secret\";",
                    ),
                ],
                "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            ),
        ];
        for (pairs, key) in cases {
            let e = config(pairs).unwrap_err();
            assert_eq!(e.key(), Some(*key), "{pairs:?}: {e}");
            assert!(!e.to_string().contains("secret"), "{e}");
        }
    }
}
