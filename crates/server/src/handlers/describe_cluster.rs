//! DescribeCluster (key 60): cluster id, controller and brokers as seen by
//! clients of the listener the request came in on. Asking a broker for
//! controller endpoints is MISMATCHED_ENDPOINT_TYPE, as in Kafka.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{ApiKey, BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::ErrorCode;

use super::cluster_view::{controller_id_for_clients, reachable_brokers};
use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_AUTHORIZED_OPERATIONS};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// DescribeCluster.
pub struct DescribeClusterHandler;

/// Endpoint types of v1+.
const ENDPOINT_TYPE_BROKER: i8 = 1;
const ENDPOINT_TYPE_CONTROLLER: i8 = 2;

impl Handler for DescribeClusterHandler {
    type Request = DescribeClusterRequest;
    type Response = DescribeClusterResponse;
    const API_KEY: ApiKey = ApiKey::DescribeCluster;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(
        ctx: RequestContext,
        request: DescribeClusterRequest,
    ) -> Reply<DescribeClusterResponse> {
        let version = ctx.api_version;
        let refuse = |code: ErrorCode, message: &str| {
            Reply::Respond(
                DescribeClusterResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(str_bytes(message)))
                    .with_endpoint_type(if version >= 1 {
                        request.endpoint_type
                    } else {
                        1
                    }),
            )
        };
        match request.endpoint_type {
            ENDPOINT_TYPE_BROKER => {}
            ENDPOINT_TYPE_CONTROLLER => {
                let code = if version >= 1 {
                    ErrorCode::MismatchedEndpointType
                } else {
                    ErrorCode::InvalidRequest
                };
                return refuse(
                    code,
                    "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
                );
            }
            _ => {
                let code = if version >= 1 {
                    ErrorCode::UnsupportedEndpointType
                } else {
                    ErrorCode::InvalidRequest
                };
                return refuse(code, "Unsupported endpoint type");
            }
        }
        let image = ctx.image();
        let include_fenced = version >= 2 && request.include_fenced_brokers;
        let brokers = reachable_brokers(&image, &ctx.listener_name, include_fenced)
            .map(|(b, e)| {
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.broker_id))
                    .with_host(str_bytes(e.host.clone()))
                    .with_port(i32::from(e.port))
                    .with_rack(b.rack.clone().map(str_bytes))
                    .with_is_fenced(version >= 2 && b.fenced)
            })
            .collect();
        Reply::Respond(
            DescribeClusterResponse::default()
                .with_cluster_id(str_bytes(ctx.broker.cluster_id.clone()))
                .with_controller_id(BrokerId(controller_id_for_clients(&ctx, &image)))
                .with_brokers(brokers)
                .with_cluster_authorized_operations(
                    if request.include_cluster_authorized_operations {
                        CLUSTER_AUTHORIZED_OPERATIONS
                    } else {
                        AUTHORIZED_OPERATIONS_OMITTED
                    },
                ),
        )
    }
}
