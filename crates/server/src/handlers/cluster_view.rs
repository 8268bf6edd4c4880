//! The cluster as the handlers show it to clients: which brokers they can
//! reach on their listener, which of those are live, and which controller
//! id to name. Metadata, DescribeCluster, DescribeTopicPartitions and
//! FindCoordinator share it.

use std::collections::HashSet;

use strom_metadata::MetadataImage;

use crate::context::RequestContext;

/// The controller id clients are given: the active controller when it is
/// also a live broker (combined nodes), else this broker, which forwards
/// admin requests to it (KRaft likewise names a broker, since clients
/// cannot reach controller-only nodes); −1 during an election.
pub(crate) fn controller_id_for_clients(ctx: &RequestContext, image: &MetadataImage) -> i32 {
    let active = ctx.broker.controller.active_controller_id();
    if active < 0 || image.broker(active).is_some_and(|b| !b.fenced) {
        active
    } else {
        ctx.broker.node_id()
    }
}

/// Brokers that clients on `listener` can reach: with an endpoint on that
/// listener, and unfenced unless `include_fenced`.
pub(crate) fn reachable_brokers<'a>(
    image: &'a MetadataImage,
    listener: &'a str,
    include_fenced: bool,
) -> impl Iterator<
    Item = (
        &'a strom_metadata::BrokerRegistration,
        &'a strom_metadata::BrokerEndpoint,
    ),
> + 'a {
    image
        .brokers()
        .filter(move |b| include_fenced || !b.fenced)
        .filter_map(move |b| {
            b.endpoints
                .iter()
                .find(|e| e.name == listener)
                .map(|e| (b, e))
        })
}

/// Ids of the unfenced brokers clients on `listener` can reach: the
/// partition leaders worth naming to them.
pub(crate) fn live_broker_ids(image: &MetadataImage, listener: &str) -> HashSet<i32> {
    reachable_brokers(image, listener, false)
        .map(|(b, _)| b.broker_id)
        .collect()
}
