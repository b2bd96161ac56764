//! Fuzzes the luks parser (diskfab-lvm: LUKS1/LUKS2 headers and LUKS2 JSON).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_lvm::fuzz_luks(data);
});
