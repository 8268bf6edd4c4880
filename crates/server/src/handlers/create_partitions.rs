//! CreatePartitions (key 37): grow topics to a new partition count, placed
//! by the controller or by explicit assignments; `validate_only` writes
//! nothing. The answer waits until this broker hosts the new partitions.

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::VersionRange;
use strom_controller::CreatePartitions;

use super::{metadata_wait, str_bytes};
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// CreatePartitions.
pub struct CreatePartitionsHandler;

impl Handler for CreatePartitionsHandler {
    type Request = CreatePartitionsRequest;
    type Response = CreatePartitionsResponse;
    const API_KEY: ApiKey = ApiKey::CreatePartitions;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 3 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        r.results.iter().for_each(|t| count(t.error_code));
    }

    async fn handle(
        ctx: RequestContext,
        request: CreatePartitionsRequest,
    ) -> Reply<CreatePartitionsResponse> {
        let names: Vec<_> = request.topics.iter().map(|t| t.name.clone()).collect();
        let asks = request
            .topics
            .into_iter()
            .map(|t| CreatePartitions {
                name: t.name.0.to_string(),
                count: t.count,
                assignments: t.assignments.map(|a| {
                    a.into_iter()
                        .map(|x| x.broker_ids.into_iter().map(|b| b.0).collect())
                        .collect()
                }),
            })
            .collect();
        let (results, offset) = ctx
            .broker
            .controller
            .create_partitions(
                asks,
                request.validate_only,
                metadata_wait(request.timeout_ms),
            )
            .await;
        if let Some(offset) = offset {
            ctx.broker
                .wait_for_metadata(offset, metadata_wait(request.timeout_ms))
                .await;
        }
        let results = names
            .into_iter()
            .zip(results)
            .map(|(name, r)| match r {
                Ok(()) => CreatePartitionsTopicResult::default()
                    .with_name(name)
                    .with_error_message(None),
                Err(e) => CreatePartitionsTopicResult::default()
                    .with_name(name)
                    .with_error_code(e.code.code())
                    .with_error_message(e.message.map(str_bytes)),
            })
            .collect();
        Reply::Respond(CreatePartitionsResponse::default().with_results(results))
    }
}
