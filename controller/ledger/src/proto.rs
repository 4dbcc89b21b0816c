//! The ledger's gRPC messages and (with feature `grpc`) its tonic client and server, generated
//! from `proto/aigov/ledger/v1/ledger.proto`.
#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/aigov.ledger.v1.rs"));
