//! Fuzzes the qcow2 header parser and, when a header parses, opening the bytes as an image and
//! reading through its L1/L2 tables.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_image::fuzz_qcow2(data);
});
