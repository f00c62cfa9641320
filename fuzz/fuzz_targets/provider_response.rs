#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| nexus::fuzzing::provider_response(data));
