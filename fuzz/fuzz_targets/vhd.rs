//! Fuzzes the VHD footer, dynamic header, block table and sector bitmaps.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_image::fuzz_vhd(data);
});
