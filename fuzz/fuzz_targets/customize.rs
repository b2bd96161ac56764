//! Fuzzes what users and images hand the customization layer as bytes: instances CSV, spec TOML,
//! static network arguments and host names, and the stamp plan file.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_customize::planfile::fuzz_inputs(data);
});
