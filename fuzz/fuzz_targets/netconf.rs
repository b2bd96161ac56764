//! Fuzzes every guest network configuration format inspection reads; the first byte selects
//! ifupdown, NetworkManager keyfile, systemd-networkd, ifcfg, netplan YAML or udev rules.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    diskfab_inspect::fuzz::fuzz_netconf(data);
});
