//! Fuzzes the Windows registry hive reader through every lookup Windows inspection makes.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| diskfab_inspect::fuzz_hive(data));
