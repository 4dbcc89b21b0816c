//! Fuzzes every parser that reads Bedrock's usage from bytes a server (or an attacker in the
//! middle) controls: the event-stream meter for both streaming operations, and the JSON and
//! header parsers. Run: `cargo fuzz run usage_parsers` from `controller/`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    aigov_gateway::meter::exercise(data);
});
