//! The ledger's gRPC messages and (with feature `grpc`) its tonic client and server, generated
//! from `proto/aigov/ledger/v1/ledger.proto`.
#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/aigov.ledger.v1.rs"));

impl Refusal {
    /// Whether a refusal is the budget's policy (a model not allowed, a required metadata key
    /// missing) rather than its spend: such a call counts as a request, not as throttled.
    pub fn is_policy(refusal: i32) -> bool {
        [
            Refusal::ModelForbidden as i32,
            Refusal::MetadataMissing as i32,
        ]
        .contains(&refusal)
    }
}
