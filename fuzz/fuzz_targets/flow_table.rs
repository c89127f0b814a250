#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| protolab_fuzzing::udpecho::flow_table(data));
