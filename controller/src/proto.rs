//! The ledger's gRPC messages and service, generated from `proto/aigov/ledger/v1/ledger.proto`.
#![allow(missing_docs, clippy::all)]

tonic::include_proto!("aigov.ledger.v1");
