//! Fuzzes the delta file reader.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_delta::format::fuzz_read(data);
});
