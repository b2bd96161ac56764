//! Fuzzes the guest's SELinux policy files (`file_contexts`, `.subs`, `/etc/selinux/config`)
//! and lookups in them: `FILE_CONTEXTS` then a line `%%` then paths to look up.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_customize::selinux::fuzz_file_contexts(data);
});
