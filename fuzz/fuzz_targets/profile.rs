#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| rtsp_toolkit_conformance::fuzzing::profile(data));
