//! SaslHandshake (key 17): the client names the SASL mechanism it will
//! authenticate with; the answer lists the listener's mechanisms. On a
//! listener without SASL, or out of turn, ILLEGAL_SASL_STATE (as Kafka's
//! request handler answers it); a mechanism the listener does not offer is
//! answered UNSUPPORTED_SASL_MECHANISM and the connection is closed. v0
//! means the token follows as a raw frame (see `crate::session`).

use kafka_protocol::messages::{ApiKey, SaslHandshakeRequest, SaslHandshakeResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};
use crate::session::SaslState;

/// SaslHandshake.
pub struct SaslHandshakeHandler;

impl Handler for SaslHandshakeHandler {
    type Request = SaslHandshakeRequest;
    type Response = SaslHandshakeResponse;
    const API_KEY: ApiKey = ApiKey::SaslHandshake;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 1 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(
        ctx: RequestContext,
        request: SaslHandshakeRequest,
    ) -> Reply<SaslHandshakeResponse> {
        let session = &ctx.session;
        let Some(authenticator) = session.authenticator() else {
            return Reply::Respond(
                SaslHandshakeResponse::default()
                    .with_error_code(ErrorCode::IllegalSaslState.code()),
            );
        };
        let mechanisms = authenticator
            .mechanism_names()
            .into_iter()
            .map(str_bytes)
            .collect();
        let response = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
        // A first login, or a re-authentication (KIP-368: v1, with the
        // mechanism of the login, where sessions have a lifetime).
        let reauthenticating = match session.state() {
            SaslState::AwaitingHandshake => None,
            SaslState::Authenticated {
                principal,
                mechanism: Some(m),
                ..
            } if authenticator.max_reauth_ms() > 0
                && ctx.api_version >= 1
                && m.name().eq_ignore_ascii_case(&request.mechanism) =>
            {
                Some(principal)
            }
            _ => {
                tracing::info!(peer = %ctx.peer, "closing connection: SaslHandshake out of turn");
                session.set_state(SaslState::Failed);
                return Reply::Respond(
                    response.with_error_code(ErrorCode::IllegalSaslState.code()),
                );
            }
        };
        match authenticator.mechanism(&request.mechanism) {
            Some(mechanism) => {
                session.set_state(SaslState::AwaitingToken {
                    mechanism,
                    raw: ctx.api_version == 0,
                    reauthenticating,
                });
                Reply::Respond(response)
            }
            None => {
                tracing::info!(peer = %ctx.peer, mechanism = %request.mechanism.as_str(), listener = %ctx.listener_name, "closing connection: SASL mechanism not enabled on this listener");
                session.set_state(SaslState::Failed);
                Reply::Respond(response.with_error_code(ErrorCode::UnsupportedSaslMechanism.code()))
            }
        }
    }
}
