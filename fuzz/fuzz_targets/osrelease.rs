//! Fuzzes the os-release parsers: inspection's (distribution, version, osinfo id) and
//! customization's (ID and ID_LIKE, which pick the guest's family).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::fuzz::fuzz_os_release(data);
    diskfab_customize::guest::fuzz_os_release(data);
});
