//! Fuzzes the lvm parser (diskfab-lvm: PV label, metadata areas, metadata text, LV mapping).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_lvm::fuzz_lvm(data);
});
