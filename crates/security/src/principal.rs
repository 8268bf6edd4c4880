//! Principals from client certificates: the subject's distinguished name,
//! mapped by Kafka's `ssl.principal.mapping.rules`.
//!
//! The name is written as Java's `X500Principal.getName()` writes it (RFC
//! 2253): the relative distinguished names from the most specific (last in
//! the certificate) to the least, joined by `,`, each `TYPE=value` with the
//! types Java names (CN, C, L, ST, O, OU, STREET, DC, UID) and any other as
//! its dotted OID with the value's DER in hex (`1.2.840.113549.1.9.1=#16…`);
//! `,` `+` `"` `\` `<` `>` `;` in a value, and a leading `#` or space or a
//! trailing space, are escaped with `\`.
//!
//! Rules, in order, the first that matches wins (Kafka's
//! `SslPrincipalMapper`):
//!
//! - `RULE:pattern/replacement/` with an optional `L` or `U` after the last
//!   `/` (lower- or upper-case the result): when `pattern` (a regular
//!   expression) matches the whole name, the name becomes `replacement`
//!   with `$1`, `$2`… replaced by the groups. A `/` inside pattern or
//!   replacement is written `\/`.
//! - `DEFAULT`: the name as it is.
//!
//! Rules are separated by commas or new lines. A name no rule matches is
//! the name as it is, as under `DEFAULT`. The principal is `User:<name>`.

use regex::Regex;
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::error::SecurityError;

/// What a rule does to the case of its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Keep,
    Lower,
    Upper,
}

#[derive(Debug, Clone)]
enum Rule {
    Default,
    Map {
        pattern: Regex,
        replacement: String,
        case: Case,
    },
}

/// `ssl.principal.mapping.rules`, parsed.
#[derive(Debug, Clone)]
pub struct PrincipalMapper {
    rules: Vec<Rule>,
}

fn rule_error(message: impl Into<String>) -> SecurityError {
    SecurityError::Store {
        key: "ssl.principal.mapping.rules".into(),
        message: message.into(),
    }
}

/// Reads up to the next unescaped `/`: the text with `\/` made `/`, and
/// what follows the `/`.
fn until_slash(text: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, '/')) => out.push('/'),
                Some((_, other)) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '/' => return Some((out, text.get(i + 1..).unwrap_or(""))),
            c => out.push(c),
        }
    }
    None
}

impl PrincipalMapper {
    /// Parses the rules; an error names what is wrong.
    pub fn parse(rules: &str) -> Result<Self, SecurityError> {
        let mut parsed = Vec::new();
        let mut rest = rules;
        loop {
            rest = rest.trim_start_matches(|c: char| c.is_whitespace() || c == ',');
            if rest.is_empty() {
                break;
            }
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                parsed.push(Rule::Default);
                rest = after;
                continue;
            }
            let Some(after) = rest.strip_prefix("RULE:") else {
                return Err(rule_error(format!(
                    "expected DEFAULT or RULE:pattern/replacement/[LU] at {:?}",
                    rest.chars().take(40).collect::<String>()
                )));
            };
            let (pattern, after) = until_slash(after)
                .ok_or_else(|| rule_error("a RULE without its '/' after the pattern"))?;
            let (replacement, after) = until_slash(after)
                .ok_or_else(|| rule_error("a RULE without its '/' after the replacement"))?;
            let (case, after) = match after.chars().next() {
                Some('L') => (Case::Lower, after.get(1..).unwrap_or("")),
                Some('U') => (Case::Upper, after.get(1..).unwrap_or("")),
                _ => (Case::Keep, after),
            };
            // The whole name must match, as Java's Matcher.matches().
            let pattern = Regex::new(&format!("^(?:{pattern})$"))
                .map_err(|e| rule_error(format!("pattern {pattern:?}: {e}")))?;
            parsed.push(Rule::Map {
                pattern,
                replacement: java_replacement(&replacement),
                case,
            });
            // Anything up to the next separator belongs to no rule.
            rest = after
                .find([',', '\n'])
                .and_then(|i| after.get(i..))
                .unwrap_or("");
        }
        if parsed.is_empty() {
            parsed.push(Rule::Default);
        }
        Ok(Self { rules: parsed })
    }

    /// The short name of the distinguished name `dn`.
    pub fn map(&self, dn: &str) -> String {
        for rule in &self.rules {
            match rule {
                Rule::Default => return dn.to_string(),
                Rule::Map {
                    pattern,
                    replacement,
                    case,
                } => {
                    if pattern.is_match(dn) {
                        let name = pattern.replace(dn, replacement.as_str()).into_owned();
                        return match case {
                            Case::Keep => name,
                            Case::Lower => name.to_lowercase(),
                            Case::Upper => name.to_uppercase(),
                        };
                    }
                }
            }
        }
        dn.to_string()
    }

    /// `User:<short name>` of a client's certificate chain (its first
    /// certificate); `None` when there is none or it does not parse.
    pub fn principal(&self, chain: Option<&[CertificateDer<'_>]>) -> Option<String> {
        let first = chain?.first()?;
        let dn = distinguished_name(first)?;
        Some(format!("User:{}", self.map(&dn)))
    }
}

/// Java's `$1` and `\$` in a replacement, as the regex crate writes them
/// (`${1}`, `$$`).
fn java_replacement(replacement: &str) -> String {
    let mut out = String::new();
    let mut chars = replacement.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => {}
            },
            '$' => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                if digits.is_empty() {
                    out.push_str("$$");
                } else {
                    out.push_str(&format!("${{{digits}}}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Java's short names of attribute types.
fn attribute_name(oid: &str) -> Option<&'static str> {
    Some(match oid {
        "2.5.4.3" => "CN",
        "2.5.4.6" => "C",
        "2.5.4.7" => "L",
        "2.5.4.8" => "ST",
        "2.5.4.9" => "STREET",
        "2.5.4.10" => "O",
        "2.5.4.11" => "OU",
        "0.9.2342.19200300.100.1.25" => "DC",
        "0.9.2342.19200300.100.1.1" => "UID",
        _ => return None,
    })
}

fn escape(value: &str) -> String {
    let mut out = String::new();
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The subject of a certificate, as Java's `X500Principal.getName()`.
pub fn distinguished_name(der: &CertificateDer<'_>) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der.as_ref()).ok()?;
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    match (attribute_name(&oid), attr.as_str()) {
                        (Some(name), Ok(value)) => format!("{name}={}", escape(value)),
                        _ => {
                            let value = attr.attr_value();
                            let data = value.data;
                            let mut der = vec![value.tag().0 as u8];
                            match data.len() {
                                n if n < 0x80 => der.push(n as u8),
                                n if n <= 0xff => der.extend([0x81, n as u8]),
                                n => der.extend([0x82, (n >> 8) as u8, n as u8]),
                            }
                            der.extend_from_slice(data);
                            let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                            format!("{oid}=#{hex}")
                        }
                    }
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    Some(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(subject: &[(rcgen::DnType, &str)]) -> CertificateDer<'static> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        for (t, v) in subject {
            params.distinguished_name.push(t.clone(), *v);
        }
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn names_are_written_as_java_writes_them_most_specific_first() {
        let cert = certificate(&[
            (rcgen::DnType::CountryName, "US"),
            (rcgen::DnType::OrganizationName, "Acme, Inc."),
            (rcgen::DnType::OrganizationalUnitName, "ServiceUsers"),
            (rcgen::DnType::CommonName, "app-1"),
        ]);
        assert_eq!(
            distinguished_name(&cert).unwrap(),
            "CN=app-1,OU=ServiceUsers,O=Acme\\, Inc.,C=US"
        );
    }

    #[test]
    fn the_first_matching_rule_maps_the_name() {
        let m = PrincipalMapper::parse(
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/,\nRULE:^CN=(.*?),OU=(.*?),O=(.*?),L=(.*?),ST=(.*?),C=(.*?)$/$1@$2/L, DEFAULT",
        )
        .unwrap();
        assert_eq!(m.map("CN=app-1,OU=ServiceUsers,O=Acme,C=US"), "app-1");
        assert_eq!(
            m.map("CN=Alice,OU=Sales,O=Acme,L=Paris,ST=IDF,C=FR"),
            "alice@sales"
        );
        assert_eq!(m.map("CN=other"), "CN=other");
        let upper = PrincipalMapper::parse("RULE:^CN=([^,]*).*$/$1/U").unwrap();
        assert_eq!(upper.map("CN=bob,O=x"), "BOB");
        // Slashes are escaped; a name no rule matches is kept.
        let slash = PrincipalMapper::parse("RULE:^CN=a\\/b$/ab\\//").unwrap();
        assert_eq!(slash.map("CN=a/b"), "ab/");
        assert_eq!(slash.map("CN=c"), "CN=c");
        assert_eq!(PrincipalMapper::parse("").unwrap().map("CN=x"), "CN=x");
        for bad in ["RULE:^CN=(.*$/$1/", "RULE:nothing", "SOMETHING"] {
            assert!(PrincipalMapper::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_chain_gives_the_principal_of_its_first_certificate() {
        let m = PrincipalMapper::parse("DEFAULT").unwrap();
        let cert = certificate(&[(rcgen::DnType::CommonName, "app")]);
        assert_eq!(m.principal(Some(&[cert])).as_deref(), Some("User:CN=app"));
        assert_eq!(m.principal(None), None);
        assert_eq!(m.principal(Some(&[])), None);
    }
}
