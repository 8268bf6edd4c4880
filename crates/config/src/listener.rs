//! Listener addresses in Kafka's form: `NAME://host:port`, comma-separated,
//! with `listener.security.protocol.map` giving each name its protocol.

use crate::error::ConfigError;

/// One listener or advertised listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Listener name, upper-case (`PLAINTEXT`, `CONTROLLER`, ...).
    pub name: String,
    /// Host or address; empty means every interface.
    pub host: String,
    /// TCP port; 0 asks the OS for a free one.
    pub port: u16,
}

impl Listener {
    /// `host:port` suitable for binding (empty host becomes `0.0.0.0`, IPv6
    /// hosts are bracketed).
    pub fn bind_address(&self) -> String {
        let host = if self.host.is_empty() {
            "0.0.0.0"
        } else {
            &self.host
        };
        if host.contains(':') {
            format!("[{host}]:{}", self.port)
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

impl std::fmt::Display for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.name, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.name, self.host, self.port)
        }
    }
}

/// Parses a listener list such as `PLAINTEXT://127.0.0.1:9092,CONTROLLER://:9093`.
pub fn parse_listeners(key: &str, items: &[String]) -> Result<Vec<Listener>, ConfigError> {
    let mut out: Vec<Listener> = Vec::new();
    for item in items {
        let bad = |message: &str| ConfigError::Invalid {
            key: key.to_string(),
            value: item.clone(),
            message: message.to_string(),
        };
        let (name, rest) = item
            .split_once("://")
            .ok_or_else(|| bad("expected NAME://host:port"))?;
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(bad("listener name must be letters, digits, '_' or '-'"));
        }
        let (host, port) = if let Some(r) = rest.strip_prefix('[') {
            let (h, p) = r
                .split_once("]:")
                .ok_or_else(|| bad("expected [ipv6]:port"))?;
            (h.to_string(), p)
        } else {
            let (h, p) = rest.rsplit_once(':').ok_or_else(|| bad("missing :port"))?;
            (h.to_string(), p)
        };
        let port: u16 = port
            .parse()
            .map_err(|_| bad("port must be a number from 0 to 65535"))?;
        let name = name.to_ascii_uppercase();
        if out.iter().any(|l| l.name == name) {
            return Err(bad("listener names must be unique"));
        }
        out.push(Listener { name, host, port });
    }
    Ok(out)
}

/// Parses `listener.security.protocol.map` (`NAME:PROTOCOL,...`).
pub fn parse_protocol_map(
    key: &str,
    items: &[String],
) -> Result<Vec<(String, String)>, ConfigError> {
    items
        .iter()
        .map(|item| {
            item.split_once(':')
                .map(|(n, p)| (n.trim().to_ascii_uppercase(), p.trim().to_ascii_uppercase()))
                .filter(|(n, p)| !n.is_empty() && !p.is_empty())
                .ok_or_else(|| ConfigError::Invalid {
                    key: key.to_string(),
                    value: item.clone(),
                    message: "expected NAME:PROTOCOL".into(),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(s: &str) -> Vec<String> {
        s.split(',').map(String::from).collect()
    }

    #[test]
    fn parses_listeners() {
        let l = parse_listeners(
            "listeners",
            &items("PLAINTEXT://127.0.0.1:9092,controller://:9093,EXT://[::1]:1"),
        )
        .unwrap();
        assert_eq!(l[0].bind_address(), "127.0.0.1:9092");
        assert_eq!(l[1].name, "CONTROLLER");
        assert_eq!(l[1].bind_address(), "0.0.0.0:9093");
        assert_eq!(l[2].bind_address(), "[::1]:1");
        assert_eq!(l[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    }

    #[test]
    fn rejects_bad_listeners() {
        for bad in [
            "127.0.0.1:9092",
            "PLAINTEXT://host",
            "PLAINTEXT://h:99999",
            "://h:1",
            "A://h:1,A://h:2",
        ] {
            assert!(parse_listeners("listeners", &items(bad)).is_err(), "{bad}");
        }
    }
}
