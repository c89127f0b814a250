#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| protolab_fuzzing::impair::link_trace(data));
