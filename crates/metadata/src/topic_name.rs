//! Kafka's rules for topic names (`Topic.validate` and the collision check
//! between `.` and `_`), and the internal topics.

/// Longest legal topic name.
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// The group coordinator's internal topic.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";
/// The transaction coordinator's internal topic.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// The metadata log's name, which no topic may take.
pub const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// Why a topic name is not legal, in Kafka's words.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return Err(format!(
            "Topic name is illegal, it can't be longer than {MAX_TOPIC_NAME_LENGTH} characters, topic name: {name}"
        ));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err(format!(
            "Topic name \"{name}\" is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"
        ));
    }
    Ok(())
}

/// Whether a topic is one of Kafka's internal topics.
pub fn is_internal_topic(name: &str) -> bool {
    name == CONSUMER_OFFSETS_TOPIC || name == TRANSACTION_STATE_TOPIC
}

/// The name with `.` replaced by `_`: two topics with the same unified
/// name would collide in metric names, so Kafka refuses the second.
pub fn unify_collision_chars(name: &str) -> String {
    name.replace('.', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_rules() {
        for ok in ["a", "orders.v1", "A_b-c", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "ä", "a/b", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
        assert_eq!(unify_collision_chars("a.b_c"), "a_b_c");
        assert!(is_internal_topic("__consumer_offsets"));
    }
}
