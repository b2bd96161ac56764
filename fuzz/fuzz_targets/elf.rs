//! Fuzzes the ELF header architecture detection (the guest's /bin/sh and friends).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::fuzz::fuzz_elf(data);
});
