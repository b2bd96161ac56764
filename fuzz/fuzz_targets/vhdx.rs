//! Fuzzes VHDX headers, region tables, metadata and the block table (input spread over MiB
//! boundaries by `fuzz_vhdx`).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_image::fuzz_vhdx(data);
});
