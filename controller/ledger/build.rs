//! Compiles the ledger's `.proto` with protox (pure Rust), so no `protoc` is needed to build.
//! The messages are always generated; the tonic client and server only with feature `grpc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/aigov/ledger/v1/ledger.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    let grpc = std::env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure()
        .build_client(grpc)
        .build_server(grpc)
        // Ordered, so a record's metadata reads (and prints) the same every time.
        .btree_map(".aigov.ledger.v1.UsageRecord.request_metadata")
        .compile_fds(descriptors)?;
    Ok(())
}
