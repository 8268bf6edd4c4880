//! The README stays true: its compatibility table matches the handler
//! registry, and its configuration reference names every key Strom knows.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use kafka_protocol::messages::ApiKey;
use strom_config::broker::BROKER_CONFIGS;
use strom_config::topic::TOPIC_CONFIGS;
use strom_server::registry::HandlerRegistry;

const README: &str = include_str!("../../../README.md");

#[test]
fn compatibility_table_matches_the_registry() {
    let mut registry = HandlerRegistry::new();
    strom_server::handlers::register_all(&mut registry);
    let ranges = registry.ranges();
    for (key, advertised_min, served_min, max) in &ranges {
        let name = format!("{:?}", ApiKey::try_from(*key).unwrap());
        let versions = if advertised_min == served_min && advertised_min == max {
            format!("{max}")
        } else if advertised_min == served_min {
            format!("{advertised_min}–{max}")
        } else {
            format!("{advertised_min}–{max} ({served_min}–{max} served)")
        };
        let row = format!("| {name} | {key} | {versions} |");
        assert!(README.contains(&row), "README lacks the row: {row}");
    }
    let rows = README.lines().filter(|l| {
        l.starts_with("| ") && l.contains(" | ") && {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            cells.len() == 5 && cells[2].parse::<i16>().is_ok()
        }
    });
    assert_eq!(
        rows.count(),
        ranges.len(),
        "the README lists APIs the broker does not serve"
    );
}

#[test]
fn configuration_reference_names_every_key() {
    for def in BROKER_CONFIGS {
        assert!(
            README.contains(&format!("`{}`", def.name)),
            "README lacks broker key {}",
            def.name
        );
    }
    for def in TOPIC_CONFIGS {
        assert!(
            README.contains(&format!("`{}`", def.def.name)),
            "README lacks topic key {}",
            def.def.name
        );
    }
}
