//! Fuzzes the sudoers parser (rules, aliases, Defaults, continuation lines) and admin rights.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::fuzz::fuzz_sudoers(data);
});
