//! SaslAuthenticate (key 36): the client's SASL token for the mechanism its
//! SaslHandshake chose. Success makes the connection's principal the user
//! (`crate::session`); a failure is answered SASL_AUTHENTICATION_FAILED
//! with Kafka's message and the connection is closed. Out of turn, or on a
//! listener without SASL: ILLEGAL_SASL_STATE. With
//! `connections.max.reauth.ms`, v1+ answers carry it as
//! `session_lifetime_ms` and the session expires after it (KIP-368); a
//! re-authentication must keep the principal.

use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslAuthenticateResponse};
use kafka_protocol::protocol::VersionRange;
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::context::RequestContext;
use crate::registry::{Handler, Reply};
use crate::session::SaslState;

/// SaslAuthenticate.
pub struct SaslAuthenticateHandler;

impl Handler for SaslAuthenticateHandler {
    type Request = SaslAuthenticateRequest;
    type Response = SaslAuthenticateResponse;
    const API_KEY: ApiKey = ApiKey::SaslAuthenticate;
    const VERSIONS: VersionRange = VersionRange { min: 0, max: 2 };

    fn error_codes(r: &Self::Response, count: &mut dyn FnMut(i16)) {
        count(r.error_code);
    }

    async fn handle(
        ctx: RequestContext,
        request: SaslAuthenticateRequest,
    ) -> Reply<SaslAuthenticateResponse> {
        let session = &ctx.session;
        let illegal = |message: &str| {
            SaslAuthenticateResponse::default()
                .with_error_code(ErrorCode::IllegalSaslState.code())
                .with_error_message(Some(str_bytes(message)))
        };
        let Some(authenticator) = session.authenticator() else {
            return Reply::Respond(illegal("this listener does not use SASL"));
        };
        let SaslState::AwaitingToken {
            mechanism,
            raw: false,
            reauthenticating,
        } = session.state()
        else {
            tracing::info!(peer = %ctx.peer, "closing connection: SaslAuthenticate out of turn");
            session.set_state(SaslState::Failed);
            return Reply::Respond(illegal("SaslAuthenticate before a SaslHandshake v1"));
        };
        let outcome = authenticator
            .authenticate(mechanism, &request.auth_bytes)
            .and_then(|principal| match &reauthenticating {
                Some(before) if *before != principal => Err(strom_security::SaslFailure {
                    client_message: format!(
                        "Cannot change principals during re-authentication from {before} to {principal}"
                    ),
                    detail: format!("re-authentication as {principal} instead of {before}"),
                }),
                _ => Ok(principal),
            });
        match outcome {
            Ok(principal) => {
                // Clients of SaslAuthenticate v0 cannot re-authenticate:
                // their sessions do not expire (as Kafka).
                let lifetime_ms = match authenticator.max_reauth_ms() {
                    ms if ms > 0 && ctx.api_version >= 1 => ms,
                    _ => 0,
                };
                tracing::info!(peer = %ctx.peer, listener = %ctx.listener_name, %principal, mechanism = mechanism.name(), reauthentication = reauthenticating.is_some(), session_lifetime_ms = lifetime_ms, "client authenticated");
                session.set_state(SaslState::Authenticated {
                    principal,
                    mechanism: Some(mechanism),
                    expires_at: (lifetime_ms > 0).then(|| {
                        std::time::Instant::now() + std::time::Duration::from_millis(lifetime_ms)
                    }),
                });
                Reply::Respond(
                    SaslAuthenticateResponse::default()
                        .with_session_lifetime_ms(i64::try_from(lifetime_ms).unwrap_or(i64::MAX)),
                )
            }
            Err(failure) => {
                tracing::info!(peer = %ctx.peer, listener = %ctx.listener_name, mechanism = mechanism.name(), reason = %failure.detail, "closing connection: SASL authentication failed");
                session.set_state(SaslState::Failed);
                Reply::Respond(
                    SaslAuthenticateResponse::default()
                        .with_error_code(ErrorCode::SaslAuthenticationFailed.code())
                        .with_error_message(Some(str_bytes(failure.client_message))),
                )
            }
        }
    }
}
