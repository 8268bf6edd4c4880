//! What group requests ask and what they get, independent of the wire
//! versions: the handlers translate Kafka's messages to and from these.

use std::sync::Arc;

use bytes::Bytes;
use strom_metadata::MetadataImage;
use strom_protocol::ErrorCode;

/// A JoinGroup.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// Group id.
    pub group_id: String,
    /// Member id; empty for a new member.
    pub member_id: String,
    /// Static membership instance id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Protocol type.
    pub protocol_type: String,
    /// Protocols with the member's metadata, in preference order.
    pub protocols: Vec<(String, Bytes)>,
    /// KIP-394 (v4+): a new member first gets an id with MEMBER_ID_REQUIRED.
    pub require_known_member_id: bool,
    /// KIP-814 (v9+): a rejoining static leader may skip the assignment.
    pub supports_skip_assignment: bool,
}

/// A member in the leader's JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Instance id.
    pub group_instance_id: Option<String>,
    /// Metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// JoinGroup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinOutcome {
    /// Error, if any.
    pub error: Option<ErrorCode>,
    /// Generation (−1 on error).
    pub generation_id: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: String,
    /// KIP-814: the static leader keeps the current assignment.
    pub skip_assignment: bool,
    /// The member's id.
    pub member_id: String,
    /// All members, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinOutcome {
    /// An error answer.
    pub fn error(member_id: impl Into<String>, code: ErrorCode) -> Self {
        Self {
            error: Some(code),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.into(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup.
#[derive(Debug, Clone)]
pub struct SyncParams {
    /// Group id.
    pub group_id: String,
    /// Generation.
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// Instance id.
    pub group_instance_id: Option<String>,
    /// Protocol type (v5+).
    pub protocol_type: Option<String>,
    /// Protocol name (v5+).
    pub protocol_name: Option<String>,
    /// The leader's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

/// SyncGroup's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncOutcome {
    /// Error, if any.
    pub error: Option<ErrorCode>,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Protocol name.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncOutcome {
    /// An error answer.
    pub fn error(code: ErrorCode) -> Self {
        Self {
            error: Some(code),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A Heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatParams {
    /// Group id.
    pub group_id: String,
    /// Generation.
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// Instance id.
    pub group_instance_id: Option<String>,
}

/// A member leaving (LeaveGroup v3+ leaves several at once).
#[derive(Debug, Clone)]
pub struct LeavingMember {
    /// Member id (may be empty when the instance id is given).
    pub member_id: String,
    /// Instance id.
    pub group_instance_id: Option<String>,
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct OffsetToCommit {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Leader epoch (−1: unknown).
    pub leader_epoch: i32,
    /// Metadata (null is stored as empty).
    pub metadata: String,
}

/// An OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitParams {
    /// Group id.
    pub group_id: String,
    /// Generation (−1 for groups not managed by the coordinator).
    pub generation_id: i32,
    /// Member id.
    pub member_id: String,
    /// Instance id.
    pub group_instance_id: Option<String>,
    /// Offsets.
    pub offsets: Vec<OffsetToCommit>,
}

/// One committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset (−1: none).
    pub offset: i64,
    /// Leader epoch (−1: none).
    pub leader_epoch: i32,
    /// Metadata.
    pub metadata: String,
}

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Instance id.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Metadata for the chosen protocol (Stable groups only).
    pub metadata: Bytes,
    /// Assignment (Stable groups only).
    pub assignment: Bytes,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// State name.
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen protocol.
    pub protocol: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type ("" for groups that only store offsets).
    pub protocol_type: String,
    /// State name.
    pub state: &'static str,
}

/// Where a group is coordinated, as FindCoordinator answers it.
#[derive(Debug, Clone)]
pub struct CoordinatorNode {
    /// The leader of the group's `__consumer_offsets` partition.
    pub node_id: i32,
    /// The image that names it as leader: the handler finds the node's
    /// endpoint on the client's listener there.
    pub image: Arc<MetadataImage>,
}
