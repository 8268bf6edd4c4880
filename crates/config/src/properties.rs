//! Java `.properties` files, the format of Kafka's `server.properties`.
//!
//! Supported: `key=value`, `key: value` and `key value` separators, `#` and
//! `!` comment lines, blank lines, lines continued with a trailing backslash,
//! and the escapes `\t \n \r \f \\ \= \: \# \!` and `\uXXXX`. Keys and values
//! are trimmed of leading whitespace like Java does; a later duplicate key
//! replaces an earlier one.

use std::collections::BTreeMap;

/// Parses properties text into an ordered map.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut logical = String::new();
    let mut continuing = false;
    for raw_line in text.lines() {
        let line = if continuing {
            raw_line.trim_start()
        } else {
            let t = raw_line.trim_start();
            if t.is_empty() || t.starts_with('#') || t.starts_with('!') {
                continue;
            }
            t
        };
        // A line ends in a continuation when it ends with an odd number of
        // backslashes.
        let trailing = line.chars().rev().take_while(|c| *c == '\\').count();
        if trailing % 2 == 1 {
            logical.push_str(&line[..line.len() - 1]);
            continuing = true;
            continue;
        }
        logical.push_str(line);
        continuing = false;
        let (key, value) = split_key_value(&logical);
        out.insert(key, value);
        logical.clear();
    }
    if !logical.is_empty() {
        let (key, value) = split_key_value(&logical);
        out.insert(key, value);
    }
    out
}

fn split_key_value(line: &str) -> (String, String) {
    let mut key_end = line.len();
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\x0c' => {
                key_end = i;
                break;
            }
            _ => {}
        }
    }
    let key = unescape(&line[..key_end]);
    let mut rest = line[key_end..].trim_start_matches([' ', '\t', '\x0c']);
    if let Some(r) = rest.strip_prefix(['=', ':']) {
        rest = r.trim_start_matches([' ', '\t', '\x0c']);
    }
    (key, unescape(rest))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(ch) => out.push(ch),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kafka_style_files() {
        let text = "# comment\n! also comment\n\nnode.id=1\nlisteners = PLAINTEXT://127.0.0.1:9092\nlog.dirs: /a,\\\n    /b\nkey\\=with\\:escapes=v\\u00e9\nempty=\nspaced value here\n";
        let p = parse_properties(text);
        assert_eq!(p["node.id"], "1");
        assert_eq!(p["listeners"], "PLAINTEXT://127.0.0.1:9092");
        assert_eq!(p["log.dirs"], "/a,/b");
        assert_eq!(p["key=with:escapes"], "vé");
        assert_eq!(p["empty"], "");
        assert_eq!(p["spaced"], "value here");
        assert_eq!(p.len(), 6);
    }

    #[test]
    fn later_keys_win() {
        let p = parse_properties("a=1\na=2\n");
        assert_eq!(p["a"], "2");
    }
}
