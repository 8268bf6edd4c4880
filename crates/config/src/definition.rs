//! What a configuration key is: its Kafka type, default, accepted values and
//! documentation. Broker and topic tables are built from these.

use crate::error::ConfigError;

/// Kafka's config types, with the ids DescribeConfigs v3+ reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true`/`false`.
    Boolean,
    /// Free text.
    String,
    /// 32-bit integer.
    Int,
    /// 16-bit integer.
    Short,
    /// 64-bit integer.
    Long,
    /// Floating point.
    Double,
    /// Comma-separated list.
    List,
    /// Secret text, never shown.
    Password,
}

impl ConfigType {
    /// The `config_type` value of DescribeConfigs v3+.
    pub fn id(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Password => 9,
        }
    }
}

/// Which values a key accepts beyond its type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Validator {
    /// Any value of the type.
    Any,
    /// An integer in `[min, max]`.
    Range {
        /// Smallest accepted value.
        min: i64,
        /// Largest accepted value.
        max: i64,
    },
    /// A double in `[min, max]`.
    DoubleRange {
        /// Smallest accepted value.
        min: f64,
        /// Largest accepted value.
        max: f64,
    },
    /// One of these strings (exact match).
    OneOf(&'static [&'static str]),
    /// One of these strings, ignoring ASCII case.
    OneOfIgnoreCase(&'static [&'static str]),
    /// A list whose every item is one of these.
    ListOf(&'static [&'static str]),
    /// A non-empty list.
    NonEmptyList,
    /// `*` or `partition:broker` items (see [`crate::throttle`]).
    ThrottledReplicas,
}

/// Smallest i64 accepted, for ranges open below.
pub const NO_MIN: i64 = i64::MIN;
/// Largest i64 accepted, for ranges open above.
pub const NO_MAX: i64 = i64::MAX;

/// A typed value parsed from text.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigValue {
    /// Boolean.
    Bool(bool),
    /// Any integer type.
    Int(i64),
    /// Double.
    Double(f64),
    /// String or password.
    Text(String),
    /// List items, trimmed.
    List(Vec<String>),
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    /// Kafka's key.
    pub name: &'static str,
    /// Type.
    pub kind: ConfigType,
    /// Default as text; `None` means no value ("null" in Kafka).
    pub default: Option<&'static str>,
    /// Accepted values.
    pub validator: Validator,
    /// One-line documentation.
    pub doc: &'static str,
}

impl ConfigDef {
    /// Parses and validates `raw` for this key.
    pub fn parse(&self, raw: &str) -> Result<ConfigValue, ConfigError> {
        let raw = raw.trim();
        let err = |message: String| ConfigError::Invalid {
            key: self.name.to_string(),
            value: raw.to_string(),
            message,
        };
        let value = match self.kind {
            ConfigType::Boolean => match raw.to_ascii_lowercase().as_str() {
                "true" => ConfigValue::Bool(true),
                "false" => ConfigValue::Bool(false),
                _ => return Err(err("expected true or false".into())),
            },
            ConfigType::Int | ConfigType::Short | ConfigType::Long => {
                let v: i64 = raw
                    .parse()
                    .map_err(|_| err(format!("expected {}", type_name(self.kind))))?;
                let (lo, hi) = match self.kind {
                    ConfigType::Int => (i64::from(i32::MIN), i64::from(i32::MAX)),
                    ConfigType::Short => (i64::from(i16::MIN), i64::from(i16::MAX)),
                    _ => (i64::MIN, i64::MAX),
                };
                if v < lo || v > hi {
                    return Err(err(format!("out of range for {}", type_name(self.kind))));
                }
                ConfigValue::Int(v)
            }
            ConfigType::Double => ConfigValue::Double(
                raw.parse::<f64>()
                    .ok()
                    .filter(|d| d.is_finite())
                    .ok_or_else(|| err("expected a number".into()))?,
            ),
            ConfigType::String | ConfigType::Password => ConfigValue::Text(raw.to_string()),
            ConfigType::List => ConfigValue::List(list_items(raw)),
        };
        self.validate(&value).map_err(err)?;
        Ok(value)
    }

    fn validate(&self, value: &ConfigValue) -> Result<(), String> {
        match (self.validator, value) {
            (Validator::Any, _) => Ok(()),
            (Validator::Range { min, max }, ConfigValue::Int(v)) => {
                if *v < min || *v > max {
                    Err(range_text(min, max))
                } else {
                    Ok(())
                }
            }
            (Validator::DoubleRange { min, max }, ConfigValue::Double(v)) => {
                if *v < min || *v > max {
                    Err(format!("value must be in [{min}, {max}]"))
                } else {
                    Ok(())
                }
            }
            (Validator::OneOf(allowed), ConfigValue::Text(v)) => {
                if allowed.contains(&v.as_str()) {
                    Ok(())
                } else {
                    Err(format!("value must be one of {}", allowed.join(", ")))
                }
            }
            (Validator::OneOfIgnoreCase(allowed), ConfigValue::Text(v)) => {
                if allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) {
                    Ok(())
                } else {
                    Err(format!("value must be one of {}", allowed.join(", ")))
                }
            }
            (Validator::ListOf(allowed), ConfigValue::List(items)) => {
                match items.iter().find(|i| !allowed.contains(&i.as_str())) {
                    Some(bad) => Err(format!(
                        "'{bad}' is not allowed; items must be among {}",
                        allowed.join(", ")
                    )),
                    None => Ok(()),
                }
            }
            (Validator::NonEmptyList, ConfigValue::List(items)) => {
                if items.is_empty() {
                    Err("list must not be empty".into())
                } else {
                    Ok(())
                }
            }
            (Validator::ThrottledReplicas, ConfigValue::List(items)) => {
                crate::throttle::ThrottledReplicas::parse(items).map(|_| ())
            }
            _ => Ok(()),
        }
    }

    /// The accepted values in words, for error messages and docs.
    pub fn accepted_text(&self) -> String {
        match self.validator {
            Validator::Any => type_name(self.kind).to_string(),
            Validator::Range { min, max } => range_text(min, max),
            Validator::DoubleRange { min, max } => format!("[{min}, {max}]"),
            Validator::OneOf(a) | Validator::OneOfIgnoreCase(a) => a.join(", "),
            Validator::ListOf(a) => format!("list of {}", a.join(", ")),
            Validator::NonEmptyList => "non-empty list".into(),
            Validator::ThrottledReplicas => "* or a list of [partitionId]:[brokerId]".into(),
        }
    }
}

/// The items of a list value: split at commas, trimmed, empty ones
/// dropped.
pub fn list_items(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn range_text(min: i64, max: i64) -> String {
    match (min == NO_MIN, max == NO_MAX) {
        (true, true) => "any integer".into(),
        (false, true) => format!("value must be at least {min}"),
        (true, false) => format!("value must be at most {max}"),
        (false, false) => format!("value must be in [{min}, {max}]"),
    }
}

fn type_name(kind: ConfigType) -> &'static str {
    match kind {
        ConfigType::Boolean => "a boolean",
        ConfigType::String => "a string",
        ConfigType::Int => "a 32-bit integer",
        ConfigType::Short => "a 16-bit integer",
        ConfigType::Long => "a 64-bit integer",
        ConfigType::Double => "a number",
        ConfigType::List => "a comma-separated list",
        ConfigType::Password => "a password",
    }
}

/// Finds a key in a table.
pub fn find<'a>(table: &'a [ConfigDef], name: &str) -> Option<&'a ConfigDef> {
    table.iter().find(|d| d.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    const INT: ConfigDef = ConfigDef {
        name: "x",
        kind: ConfigType::Int,
        default: Some("1"),
        validator: Validator::Range {
            min: 1,
            max: NO_MAX,
        },
        doc: "",
    };

    #[test]
    fn ints_are_range_checked_and_typed() {
        assert_eq!(INT.parse(" 5 ").unwrap(), ConfigValue::Int(5));
        assert!(INT.parse("0").is_err());
        assert!(INT.parse("3000000000").is_err());
        assert!(INT.parse("five").is_err());
        let msg = INT.parse("0").unwrap_err().to_string();
        assert!(msg.contains('x') && msg.contains("at least 1"), "{msg}");
    }

    #[test]
    fn lists_and_choices() {
        let d = ConfigDef {
            name: "cleanup.policy",
            kind: ConfigType::List,
            default: Some("delete"),
            validator: Validator::ListOf(&["delete", "compact"]),
            doc: "",
        };
        assert_eq!(
            d.parse("compact, delete").unwrap(),
            ConfigValue::List(vec!["compact".into(), "delete".into()])
        );
        assert!(d.parse("delete,bogus").is_err());
    }
}
