//! Fuzzes the rpm header decoder (index entries, string and integer tags, bounds).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::fuzz::fuzz_rpm(data);
});
