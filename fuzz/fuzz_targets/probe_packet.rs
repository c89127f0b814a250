#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| protolab_fuzzing::udpecho::probe_packet(data));
