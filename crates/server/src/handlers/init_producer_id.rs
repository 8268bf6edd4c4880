//! InitProducerId (key 22): a new producer id and epoch for an idempotent
//! producer (no transactional id). Every call gets a fresh id, as in Kafka.
//! Transactional producers are refused until transactions are supported.

use kafka_protocol::messages::{ApiKey, InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::ErrorCode;

use crate::context::RequestContext;
use crate::registry::{Handler, Reply};

/// InitProducerId.
pub struct InitProducerIdHandler;

impl Handler for InitProducerIdHandler {
    type Request = InitProducerIdRequest;
    type Response = InitProducerIdResponse;
    const API_KEY: ApiKey = ApiKey::InitProducerId;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 5 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(
        ctx: RequestContext,
        request: InitProducerIdRequest,
    ) -> Reply<InitProducerIdResponse> {
        let refused = |code: ErrorCode| {
            Reply::Respond(
                InitProducerIdResponse::default()
                    .with_error_code(code.code())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1),
            )
        };
        if request.transactional_id.is_some() {
            // There is no transaction coordinator to own the id yet.
            return refused(ErrorCode::CoordinatorNotAvailable);
        }
        match ctx.broker.producer_ids.generate().await {
            Ok(id) => Reply::Respond(
                InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(id))
                    .with_producer_epoch(0),
            ),
            Err(e) => {
                tracing::error!(error = %e, "cannot allocate a producer id");
                refused(e.code)
            }
        }
    }
}
