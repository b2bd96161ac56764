//! Fuzzes VMDK sparse/stream extents (header, footer, grain directory and tables, compressed
//! grains) and the text descriptor parser.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_image::fuzz_vmdk(data);
});
