//! Tests of the broker configuration (`broker.rs`): keys, synonyms,
//! validation messages, and the sample `config/server.properties`.

use super::*;

fn inputs(pairs: &[(&str, &str)]) -> ConfigInputs {
    ConfigInputs {
        overrides: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    }
}

#[test]
fn single_node_defaults() {
    let c = BrokerConfig::single_node_defaults().unwrap().config;
    assert_eq!(c.node_id, 1);
    assert_eq!(c.listeners[0].to_string(), "PLAINTEXT://127.0.0.1:9092");
    assert_eq!(
        c.advertised_listeners[0].to_string(),
        "PLAINTEXT://127.0.0.1:9092"
    );
    assert_eq!(c.log_dirs, vec![PathBuf::from("./data")]);
    assert!(c.auto_create_topics_enable);
    assert!(c.controller_quorum_voters.is_empty());
    assert_eq!(c.socket_request_max_bytes, 104_857_600);
}

#[test]
fn dedicated_roles_follow_kafkas_rules() {
    let voters = (
        "controller.quorum.voters",
        "1@127.0.0.1:9093,2@127.0.0.1:9094",
    );
    let load = |pairs: &[(&str, &str)]| BrokerConfig::load(&inputs(pairs));
    // A broker-only node follows the voters and has no controller listener.
    let c = load(&[("process.roles", "broker"), ("node.id", "4"), voters])
        .unwrap()
        .config;
    assert!(c.is_broker() && !c.is_controller());
    // A controller-only node listens on a controller listener only.
    let c = load(&[
        ("process.roles", "controller"),
        ("node.id", "1"),
        voters,
        ("listeners", "CONTROLLER://127.0.0.1:9093"),
    ])
    .unwrap()
    .config;
    assert!(c.is_controller() && !c.is_broker());
    for (pairs, key) in [
        (
            vec![("process.roles", "broker")],
            "controller.quorum.voters",
        ),
        (
            vec![("process.roles", "broker"), ("node.id", "1"), voters],
            "controller.quorum.voters",
        ),
        (
            vec![
                ("process.roles", "broker"),
                ("node.id", "4"),
                voters,
                (
                    "listeners",
                    "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
                ),
            ],
            "listeners",
        ),
        (
            vec![("process.roles", "controller"), ("node.id", "1"), voters],
            "listeners",
        ),
        (
            vec![
                ("process.roles", "controller"),
                ("node.id", "3"),
                voters,
                ("listeners", "CONTROLLER://127.0.0.1:9093"),
            ],
            "controller.quorum.voters",
        ),
        (
            vec![
                ("process.roles", "controller"),
                ("listeners", "CONTROLLER://127.0.0.1:9093"),
            ],
            "process.roles",
        ),
    ] {
        match load(&pairs) {
            Err(ConfigError::Inconsistent { key: k, .. }) => assert_eq!(k, key, "{pairs:?}"),
            other => panic!("{pairs:?}: {other:?}"),
        }
    }
}

#[test]
fn sources_layer_and_env_maps_keys() {
    let env = ConfigInputs::from_env_vars(vec![
        ("STROM_CFG_LOG_RETENTION_HOURS".to_string(), "2".to_string()),
        ("HOME".to_string(), "/root".to_string()),
    ]);
    assert_eq!(
        env.get("log.retention.hours").map(String::as_str),
        Some("2")
    );
    assert_eq!(env.len(), 1);
    let i = ConfigInputs {
        file: [("num.partitions".to_string(), "3".to_string())].into(),
        env,
        overrides: [("num.partitions".to_string(), "4".to_string())].into(),
        ..Default::default()
    };
    let c = BrokerConfig::load(&i).unwrap().config;
    assert_eq!(c.num_partitions, 4);
    let d = c.describe();
    let e = d.iter().find(|e| e.name == "num.partitions").unwrap();
    assert_eq!(
        (e.value.as_deref(), e.source),
        (Some("4"), ConfigSource::StaticBrokerConfig)
    );
    let e = d.iter().find(|e| e.name == "delete.topic.enable").unwrap();
    assert_eq!(e.source, ConfigSource::DefaultConfig);
}

#[test]
fn invalid_values_name_the_key() {
    for (k, v) in [
        ("num.partitions", "0"),
        ("num.partitions", "x"),
        ("log.retention.hours", "soon"),
        ("listeners", "nonsense"),
        ("auto.create.topics.enable", "maybe"),
        ("process.roles", "worker"),
        ("listener.security.protocol.map", "PLAINTEXT:KERBEROS"),
        ("listeners", "SSL://127.0.0.1:9093"),
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:9093"),
    ] {
        let e = BrokerConfig::load(&inputs(&[(k, v)])).unwrap_err();
        // A secured listener without its settings names the key it lacks:
        // SSL a key store, SASL mechanisms (GSSAPI, the default, is not
        // offered).
        let k = if v.starts_with("SSL:") {
            "ssl.keystore.location"
        } else if v.starts_with("SASL_") {
            "sasl.enabled.mechanisms"
        } else {
            k
        };
        assert!(e.to_string().contains(k), "{k}={v}: {e}");
    }
}

#[test]
fn ssl_listeners_read_their_own_ssl_keys_and_the_broker_wide_ones() {
    let l = BrokerConfig::load(&inputs(&[
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,EXTERNAL://127.0.0.1:9094,CONTROLLER://127.0.0.1:9093",
        ),
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,EXTERNAL:SSL,CONTROLLER:PLAINTEXT",
        ),
        ("ssl.keystore.location", "/etc/strom/broker.p12"),
        ("listener.name.external.ssl.keystore.password", "secret"),
        ("listener.name.external.ssl.client.auth", "requested"),
        ("ssl.truststore.location", "/etc/strom/ca.pem"),
    ]))
    .unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let c = l.config;
    assert_eq!(c.listener_ssl.len(), 1);
    let ssl = &c.listener_ssl[0];
    assert_eq!(ssl.listener, "EXTERNAL");
    assert_eq!(
        ssl.keystore_location.as_deref(),
        Some("/etc/strom/broker.p12")
    );
    assert_eq!(ssl.keystore_password.as_deref(), Some("secret"));
    assert_eq!(ssl.client_auth, crate::ssl::ClientAuth::Requested);
    assert_eq!(c.inter_broker_listener_name, "PLAINTEXT");
    // A listener's bad value names the listener's key.
    let e = BrokerConfig::load(&inputs(&[
        ("listeners", "SSL://127.0.0.1:9093"),
        ("ssl.keystore.location", "/k"),
        ("listener.name.ssl.ssl.enabled.protocols", "SSLv3"),
    ]))
    .unwrap_err();
    assert_eq!(
        e.key(),
        Some("listener.name.ssl.ssl.enabled.protocols"),
        "{e}"
    );
    // The controller quorum and a multi-node inter-broker listener stay
    // PLAINTEXT for now, and say so.
    let e = BrokerConfig::load(&inputs(&[
        (
            "listener.security.protocol.map",
            "PLAINTEXT:PLAINTEXT,CONTROLLER:SSL",
        ),
        (
            "listeners",
            "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093",
        ),
        ("ssl.keystore.location", "/k"),
    ]))
    .unwrap_err();
    assert!(e.to_string().contains("controller quorum"), "{e}");
}

#[test]
fn unknown_keys_warn() {
    let l = BrokerConfig::load(&inputs(&[("no.such.key", "1")])).unwrap();
    assert_eq!(l.warnings.len(), 1);
    assert!(l.warnings[0].contains("no.such.key"));
}

#[test]
fn broker_id_is_node_id() {
    let c = BrokerConfig::load(&inputs(&[("broker.id", "7")]))
        .unwrap()
        .config;
    assert_eq!(c.node_id, 7);
    assert!(BrokerConfig::load(&inputs(&[("broker.id", "7"), ("node.id", "8")])).is_err());
}

#[test]
fn wildcard_listeners_advertise_a_hostname() {
    let c = BrokerConfig::load(&inputs(&[("listeners", "PLAINTEXT://0.0.0.0:9092")]))
        .unwrap()
        .config;
    assert_ne!(c.advertised_listeners[0].host, "0.0.0.0");
    let e = BrokerConfig::load(&inputs(&[(
        "advertised.listeners",
        "PLAINTEXT://0.0.0.0:9092",
    )]));
    assert!(e.is_err());
}

#[test]
fn the_sample_server_properties_loads_without_warnings() {
    let text = include_str!("../../../config/server.properties");
    let inputs = ConfigInputs {
        file: crate::properties::parse_properties(text),
        ..Default::default()
    };
    let loaded = BrokerConfig::load(&inputs).unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        loaded.config.listeners[0].to_string(),
        "PLAINTEXT://127.0.0.1:9092"
    );
}

#[test]
fn queued_max_request_bytes_is_unlimited_or_at_least_the_largest_frame() {
    let load = |pairs: &[(&str, &str)]| BrokerConfig::load(&inputs(pairs));
    let c = load(&[]).unwrap().config;
    assert_eq!(c.queued_max_request_bytes, None);
    assert_eq!(c.queued_max_requests, 500);
    for unlimited in ["-1", "0"] {
        let c = load(&[("queued.max.request.bytes", unlimited)])
            .unwrap()
            .config;
        assert_eq!(c.queued_max_request_bytes, None, "{unlimited}");
    }
    let c = load(&[
        ("queued.max.request.bytes", "8388608"),
        ("socket.request.max.bytes", "8388608"),
    ])
    .unwrap()
    .config;
    assert_eq!(c.queued_max_request_bytes, Some(8_388_608));
    // Kafka refuses a budget smaller than socket.request.max.bytes.
    match load(&[("queued.max.request.bytes", "8388608")]) {
        Err(ConfigError::Inconsistent { key, message }) => {
            assert_eq!(key, "queued.max.request.bytes");
            assert!(
                message.contains("socket.request.max.bytes=104857600"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(load(&[("queued.max.requests", "0")]).is_err());
}

#[test]
fn connection_limits_follow_kafkas_formats() {
    let load = |pairs: &[(&str, &str)]| BrokerConfig::load(&inputs(pairs));
    let c = load(&[]).unwrap().config;
    assert_eq!(c.max_connections_per_ip, 2_147_483_647);
    assert!(c.max_connections_per_ip_overrides.is_empty());
    assert_eq!(c.max_connection_creation_rate_per_sec, 2_147_483_647);
    let c = load(&[
        ("max.connections.per.ip", "3"),
        (
            "max.connections.per.ip.overrides",
            "127.0.0.2:10, broker-a.example:0,::1:5",
        ),
        ("max.connection.creation.rate", "5"),
    ])
    .unwrap()
    .config;
    assert_eq!(c.max_connections_per_ip, 3);
    assert_eq!(
        c.max_connections_per_ip_overrides,
        vec![
            ("127.0.0.2".to_string(), 10),
            ("broker-a.example".to_string(), 0),
            ("::1".to_string(), 5),
        ]
    );
    assert_eq!(c.max_connection_creation_rate_per_sec, 5);
    for bad in ["127.0.0.2", "127.0.0.2:x", ":3", "h:-1", "h:2147483648"] {
        match load(&[("max.connections.per.ip.overrides", bad)]) {
            Err(ConfigError::Invalid { key, .. }) => {
                assert_eq!(key, "max.connections.per.ip.overrides", "{bad}")
            }
            other => panic!("{bad}: {other:?}"),
        }
    }
    // Kafka: 0 per IP only with overrides.
    assert!(load(&[("max.connections.per.ip", "0")]).is_err());
    let c = load(&[
        ("max.connections.per.ip", "0"),
        ("max.connections.per.ip.overrides", "127.0.0.1:2"),
    ])
    .unwrap()
    .config;
    assert_eq!(c.max_connections_per_ip, 0);
    // 0 would never accept a connection again (Kafka allows it).
    assert!(load(&[("max.connection.creation.rate", "0")]).is_err());
}
