//! Fuzzes the VDI header parser and block map.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_image::fuzz_vdi(data);
});
