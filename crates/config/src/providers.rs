//! Kafka's configuration providers (KIP-297) with its environment variable
//! provider (KIP-887): values may name environment variables, resolved
//! when the configuration is loaded. With
//!
//! ```properties
//! config.providers=env
//! config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider
//! listeners=PLAINTEXT://${env:POD_IP}:9092
//! ```
//!
//! `${env:POD_IP}` is replaced by the variable `POD_IP`. A variable is
//! written `${provider:key}` (or `${provider:path:key}`, the path being
//! ignored by this provider). Variables of providers not configured are
//! left as they are, as Kafka does; a configured provider naming a variable
//! that is not set is an error naming the key, where Kafka would silently
//! keep the text. Only the environment provider is available.

use std::collections::BTreeMap;

use crate::error::ConfigError;

/// The class name Kafka gives its environment variable provider.
pub const ENV_VAR_CONFIG_PROVIDER_CLASS: &str =
    "org.apache.kafka.common.config.provider.EnvVarConfigProvider";

/// The key listing the providers.
pub const CONFIG_PROVIDERS: &str = "config.providers";

/// Whether `key` configures a provider (`config.providers.NAME.class` and
/// its parameters).
pub fn is_provider_key(key: &str) -> bool {
    key.starts_with("config.providers.")
}

/// Replaces every `${provider:key}` of a configured provider in the values
/// of `set` with the value of variable `key` in `environment`.
pub fn resolve_variables(
    set: &mut BTreeMap<String, String>,
    environment: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let Some(names) = set.get(CONFIG_PROVIDERS) else {
        return Ok(());
    };
    let mut providers = Vec::new();
    for name in crate::definition::list_items(names) {
        let name = name.as_str();
        let class_key = format!("config.providers.{name}.class");
        match set.get(&class_key).map(|c| c.trim()) {
            Some(ENV_VAR_CONFIG_PROVIDER_CLASS) => providers.push(name.to_string()),
            Some(other) => {
                return Err(ConfigError::Invalid {
                    key: class_key,
                    value: other.to_string(),
                    message: format!(
                        "the only config provider available is {ENV_VAR_CONFIG_PROVIDER_CLASS}"
                    ),
                })
            }
            None => {
                return Err(ConfigError::Inconsistent {
                    key: class_key,
                    message: format!("config.providers names {name}, which needs a class"),
                })
            }
        }
    }
    for (key, value) in set.iter_mut() {
        if key == CONFIG_PROVIDERS || is_provider_key(key) || !value.contains("${") {
            continue;
        }
        *value = substitute(key, value, &providers, environment)?;
    }
    Ok(())
}

fn substitute(
    key: &str,
    value: &str,
    providers: &[String],
    environment: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        let (before, from) = rest.split_at(start);
        out.push_str(before);
        let Some(end) = from.find('}') else {
            out.push_str(from);
            return Ok(out);
        };
        let (variable, after) = from.split_at(end + 1);
        let inner = variable
            .strip_prefix("${")
            .and_then(|v| v.strip_suffix('}'))
            .unwrap_or_default();
        match inner.split_once(':') {
            Some((provider, path_and_name)) if providers.iter().any(|p| p == provider) => {
                let name = path_and_name
                    .rsplit_once(':')
                    .map_or(path_and_name, |(_, n)| n);
                let resolved = environment
                    .get(name)
                    .ok_or_else(|| ConfigError::Inconsistent {
                        key: key.to_string(),
                        message: format!("environment variable {name} is not set"),
                    })?;
                out.push_str(resolved);
            }
            _ => out.push_str(variable),
        }
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn env_variables_are_replaced_where_a_provider_is_configured() {
        let mut set = map(&[
            ("config.providers", "env"),
            ("config.providers.env.class", ENV_VAR_CONFIG_PROVIDER_CLASS),
            (
                "listeners",
                "PLAINTEXT://${env:POD_IP}:9092,CONTROLLER://${env::POD_IP}:9093",
            ),
            ("http.listener", "${other:X}:9644"),
            ("log.dirs", "/data/${env:POD_NAME}"),
        ]);
        let env = map(&[("POD_IP", "10.0.0.7"), ("POD_NAME", "strom-1")]);
        resolve_variables(&mut set, &env).unwrap();
        assert_eq!(
            set["listeners"],
            "PLAINTEXT://10.0.0.7:9092,CONTROLLER://10.0.0.7:9093"
        );
        // An unconfigured provider's variable stays as written.
        assert_eq!(set["http.listener"], "${other:X}:9644");
        assert_eq!(set["log.dirs"], "/data/strom-1");
    }

    #[test]
    fn without_providers_nothing_changes() {
        let mut set = map(&[("listeners", "PLAINTEXT://${env:POD_IP}:9092")]);
        resolve_variables(&mut set, &map(&[("POD_IP", "1.2.3.4")])).unwrap();
        assert_eq!(set["listeners"], "PLAINTEXT://${env:POD_IP}:9092");
    }

    #[test]
    fn a_missing_variable_or_an_unknown_class_is_an_error() {
        let mut set = map(&[
            ("config.providers", "env"),
            ("config.providers.env.class", ENV_VAR_CONFIG_PROVIDER_CLASS),
            ("listeners", "PLAINTEXT://${env:POD_IP}:9092"),
        ]);
        let e = resolve_variables(&mut set, &BTreeMap::new()).unwrap_err();
        assert!(
            e.to_string().contains("listeners") && e.to_string().contains("POD_IP"),
            "{e}"
        );

        let mut set = map(&[
            ("config.providers", "file"),
            (
                "config.providers.file.class",
                "org.apache.kafka.common.config.provider.FileConfigProvider",
            ),
        ]);
        assert!(resolve_variables(&mut set, &BTreeMap::new()).is_err());
        let mut set = map(&[("config.providers", "env")]);
        assert!(resolve_variables(&mut set, &BTreeMap::new()).is_err());
    }

    #[test]
    fn an_unclosed_variable_is_kept() {
        let mut set = map(&[
            ("config.providers", "env"),
            ("config.providers.env.class", ENV_VAR_CONFIG_PROVIDER_CLASS),
            ("k", "a${env:X"),
        ]);
        resolve_variables(&mut set, &BTreeMap::new()).unwrap();
        assert_eq!(set["k"], "a${env:X");
    }
}
