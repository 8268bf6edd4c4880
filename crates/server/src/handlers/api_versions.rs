//! ApiVersions (key 18): the APIs and versions this broker serves, taken
//! from the handler registry. Versions this broker does not know are
//! answered in the v0 format before dispatch (KIP-511, see `connection`).
//! Features are not advertised, and no tagged field is written at its
//! default value (librdkafka before 2.1 cannot read those).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::ErrorCode;

use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// ApiVersions.
pub struct ApiVersionsHandler;

/// Kafka's pattern for client software name and version (v3+).
fn valid_software_field(s: &str) -> bool {
    let b = s.as_bytes();
    let edge = |c: u8| c.is_ascii_alphanumeric();
    match (b.first(), b.last()) {
        (Some(&f), Some(&l)) => {
            edge(f)
                && edge(l)
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'.')
        }
        _ => false,
    }
}

impl Handler for ApiVersionsHandler {
    type Request = ApiVersionsRequest;
    type Response = ApiVersionsResponse;
    const API_KEY: ApiKey = ApiKey::ApiVersions;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 4 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(
        ctx: RequestContext,
        request: ApiVersionsRequest,
    ) -> Reply<ApiVersionsResponse> {
        if ctx.api_version >= 3
            && !(valid_software_field(&request.client_software_name)
                && valid_software_field(&request.client_software_version))
        {
            return Reply::Respond(
                ApiVersionsResponse::default().with_error_code(ErrorCode::InvalidRequest.code()),
            );
        }
        let api_keys = ctx
            .broker
            .registry
            .advertised()
            .into_iter()
            .map(|(key, min, max)| {
                ApiVersion::default()
                    .with_api_key(key)
                    .with_min_version(min)
                    .with_max_version(max)
            })
            .collect();
        Reply::Respond(ApiVersionsResponse::default().with_api_keys(api_keys))
    }
}

#[cfg(test)]
mod tests {
    use super::valid_software_field;

    #[test]
    fn software_fields_follow_kafkas_pattern() {
        for ok in [
            "librdkafka",
            "confluent-kafka-python",
            "2.16.1",
            "a",
            "kafka-python.3",
        ] {
            assert!(valid_software_field(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a b", "a_b", ".x"] {
            assert!(!valid_software_field(bad), "{bad}");
        }
    }
}
