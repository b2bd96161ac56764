//! Fuzzes the MBR (with extended/logical chains) and GPT header/entry parsers.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_part::fuzz_parse(data);
});
