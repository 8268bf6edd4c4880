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

#[test]
fn the_sample_cluster_configs_agree() {
    use strom_config::{BrokerConfig, ConfigInputs};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/cluster");
    let configs: Vec<BrokerConfig> = (1..=3)
        .map(|i| {
            let file = ConfigInputs::read_file(&root.join(format!("node-{i}.properties"))).unwrap();
            let inputs = ConfigInputs {
                file,
                ..Default::default()
            };
            BrokerConfig::load(&inputs).unwrap().config
        })
        .collect();
    for (i, c) in configs.iter().enumerate() {
        assert_eq!(c.node_id, i as i32 + 1);
        assert_eq!(c.cluster_id, configs[0].cluster_id);
        assert!(c.cluster_id.is_some());
        assert_eq!(
            c.controller_quorum_voters,
            configs[0].controller_quorum_voters
        );
        // Each node's controller listener is its entry in the voters.
        let voter = c
            .controller_quorum_voters
            .iter()
            .find(|v| v.id == c.node_id)
            .unwrap();
        let controller = c
            .listeners
            .iter()
            .find(|l| c.controller_listener_names.contains(&l.name))
            .unwrap();
        assert_eq!(
            (voter.host.as_str(), voter.port),
            (controller.host.as_str(), controller.port)
        );
        assert!(README.contains(&format!("config/cluster/node-{}.properties", i + 1)));
    }
}

/// Every metric the broker registers (the `strom_*` names in
/// `metrics.rs`) is listed in the README's metrics table, and the table
/// names no metric that does not exist.
#[test]
fn metrics_table_names_every_metric() {
    let source = include_str!("../../server/src/metrics.rs");
    // The definitions, not the unit tests' expected output.
    let source = source.split("#[cfg(test)]").next().unwrap();
    let names = |text: &str, quoted: bool| -> std::collections::BTreeSet<String> {
        let mut found = std::collections::BTreeSet::new();
        let pattern = if quoted { "\"strom_" } else { "`strom_" };
        for (i, _) in text.match_indices(pattern) {
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
        found
    };
    let registered = names(source, true);
    assert!(registered.len() > 20, "{registered:?}");
    let table: String = README
        .lines()
        .filter(|l| l.starts_with("| `strom_"))
        .collect::<Vec<_>>()
        .join("\n");
    let listed = names(&table, false);
    assert_eq!(registered, listed, "README metrics table vs metrics.rs");
}
