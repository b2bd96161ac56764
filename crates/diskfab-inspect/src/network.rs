//! Network configuration in the guest's own format: ifupdown, NetworkManager keyfiles,
//! systemd-networkd, RHEL ifcfg files and netplan YAML ([`crate::netplan`]); and every MAC
//! address binding, including udev persistent-net rules.

use crate::read;
use diskfab_fs::Filesystem;
use serde::Serialize;

/// One configured interface.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Interface {
    /// Which configuration format declared it.
    pub source: String,
    /// Interface name (or match pattern).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// MAC address the configuration binds to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    /// `dhcp`, `static`, `manual`, `loopback`...
    pub method: String,
    /// Addresses (CIDR where known).
    pub addresses: Vec<String>,
    /// Default gateway (IPv4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Default gateway (IPv6), where the format says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// DHCPv6 on or off, where the format says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhcp6: Option<bool>,
    /// DNS servers.
    pub dns: Vec<String>,
}

pub(crate) fn ifupdown(s: &str) -> Vec<Interface> {
    let mut out: Vec<Interface> = Vec::new();
    for l in s.lines().map(str::trim) {
        let w: Vec<&str> = l.split_whitespace().collect();
        match w.as_slice() {
            ["iface", name, _fam, method, ..] => out.push(Interface {
                source: "ifupdown".into(),
                name: Some(name.to_string()),
                method: method.to_string(),
                ..Default::default()
            }),
            ["address", a, ..] => {
                if let Some(i) = out.last_mut() {
                    i.addresses.push(a.to_string());
                }
            }
            ["gateway", g, ..] => {
                if let Some(i) = out.last_mut() {
                    i.gateway = Some(g.to_string());
                }
            }
            ["dns-nameservers", rest @ ..] => {
                if let Some(i) = out.last_mut() {
                    i.dns.extend(rest.iter().map(|x| x.to_string()));
                }
            }
            ["hwaddress", .., m] => {
                if let Some(i) = out.last_mut() {
                    i.mac = Some(m.to_lowercase());
                }
            }
            _ => {}
        }
    }
    out
}

pub(crate) fn networkmanager(s: &str) -> Interface {
    let mut i = Interface {
        source: "networkmanager".into(),
        method: "auto".into(),
        ..Default::default()
    };
    for (sec, k, v) in read::ini(s) {
        match (sec.as_str(), k.as_str()) {
            ("connection", "interface-name") => i.name = Some(v),
            ("ethernet", "mac-address") => i.mac = Some(v.to_lowercase()),
            ("ipv4", "method") => i.method = if v == "auto" { "dhcp".into() } else { v },
            ("ipv4", k) if k.starts_with("address") => {
                let mut parts = v.split(',');
                i.addresses.extend(parts.next().map(str::to_string));
                if let Some(g) = parts.next() {
                    i.gateway = Some(g.to_string());
                }
            }
            ("ipv4", "gateway") => i.gateway = Some(v),
            ("ipv4", "dns") => i.dns.extend(
                v.split([';', ','])
                    .filter(|x| !x.is_empty())
                    .map(str::to_string),
            ),
            _ => {}
        }
    }
    i
}

pub(crate) fn networkd(s: &str) -> Interface {
    let mut i = Interface {
        source: "systemd-networkd".into(),
        method: "static".into(),
        dhcp6: Some(false),
        ..Default::default()
    };
    for (sec, k, v) in read::ini(s) {
        match (sec.as_str(), k.as_str()) {
            ("Match", "Name") => i.name = Some(v),
            ("Match", "MACAddress" | "PermanentMACAddress") => i.mac = Some(v.to_lowercase()),
            ("Network", "DHCP") => {
                if ["yes", "ipv4", "true"].contains(&v.as_str()) {
                    i.method = "dhcp".into();
                }
                i.dhcp6 = Some(["yes", "ipv6", "true"].contains(&v.as_str()));
            }
            ("Network", "Address") | ("Address", "Address") => i.addresses.push(v),
            ("Network", "Gateway") | ("Route", "Gateway") => i.gateway = Some(v),
            ("Network", "DNS") => i.dns.extend(v.split_whitespace().map(str::to_string)),
            _ => {}
        }
    }
    i
}

pub(crate) fn ifcfg(s: &str) -> Interface {
    let kv = read::key_values(s);
    let get = |k: &str| kv.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone());
    let mut i = Interface {
        source: "ifcfg".into(),
        name: get("DEVICE"),
        mac: get("HWADDR").map(|m| m.to_lowercase()),
        method: match get("BOOTPROTO").as_deref() {
            Some("dhcp") => "dhcp".into(),
            Some("none") | Some("static") => "static".into(),
            Some(o) => o.to_string(),
            None => "static".into(),
        },
        gateway: get("GATEWAY"),
        ..Default::default()
    };
    if let Some(a) = get("IPADDR") {
        i.addresses.push(match get("PREFIX") {
            Some(p) => format!("{a}/{p}"),
            None => a,
        });
    }
    for n in 1..=3 {
        i.dns.extend(get(&format!("DNS{n}")));
    }
    i
}

/// Every interface the guest configures, in any of the supported formats.
pub fn interfaces(fs: &mut dyn Filesystem, warnings: &mut Vec<String>) -> Vec<Interface> {
    let mut out = Vec::new();
    let mut files = vec!["/etc/network/interfaces".to_string()];
    files.extend(
        read::list(fs, "/etc/network/interfaces.d")
            .into_iter()
            .map(|f| format!("/etc/network/interfaces.d/{f}")),
    );
    for f in files {
        if let Some(t) = read::text(fs, &f, warnings) {
            out.extend(ifupdown(&t));
        }
    }
    for f in read::list(fs, "/etc/NetworkManager/system-connections") {
        if let Some(t) = read::text(
            fs,
            &format!("/etc/NetworkManager/system-connections/{f}"),
            warnings,
        ) {
            out.push(networkmanager(&t));
        }
    }
    for dir in ["/etc/systemd/network", "/run/systemd/network"] {
        for f in read::list(fs, dir)
            .into_iter()
            .filter(|f| f.ends_with(".network"))
        {
            if let Some(t) = read::text(fs, &format!("{dir}/{f}"), warnings) {
                out.push(networkd(&t));
            }
        }
    }
    for f in read::list(fs, "/etc/sysconfig/network-scripts")
        .into_iter()
        .filter(|f| f.starts_with("ifcfg-"))
    {
        if let Some(t) = read::text(fs, &format!("/etc/sysconfig/network-scripts/{f}"), warnings) {
            out.push(ifcfg(&t));
        }
    }
    for dir in ["/etc/netplan", "/run/netplan", "/lib/netplan"] {
        for f in read::list(fs, dir)
            .into_iter()
            .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
        {
            let p = format!("{dir}/{f}");
            if let Some(t) = read::text(fs, &p, warnings) {
                match crate::netplan::parse(&p, &t) {
                    Ok(v) => out.extend(v),
                    Err(e) => warnings.push(format!("{p}: {e}")),
                }
            }
        }
    }
    out
}

/// An interface name bound to a MAC address: such configuration no longer applies to a clone or
/// a migrated guest whose NIC gets a new address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MacBinding {
    /// Where the binding is (`udev:/etc/udev/rules.d/70-persistent-net.rules`, `netplan:…`, …).
    pub source: String,
    /// The MAC address (lower case).
    pub mac: String,
    /// The interface name it gets or matches.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `ATTR{address}=="…"` / `NAME="…"` pairs of udev persistent-net rules.
pub(crate) fn udev_rules(file: &str, s: &str) -> Vec<MacBinding> {
    // Rules are comma-separated `KEY=="value"` (match) or `KEY="value"` (assignment) pairs.
    let field = |l: &str, key: &str| {
        l.split(',').find_map(|part| {
            let rest = part.trim().strip_prefix(key)?;
            let rest = rest.strip_prefix("==").or_else(|| rest.strip_prefix('='))?;
            let v = rest.trim().strip_prefix('"')?.strip_suffix('"')?;
            (!v.is_empty()).then(|| v.to_string())
        })
    };
    s.lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            Some(MacBinding {
                source: format!("udev:{file}"),
                mac: field(l, "ATTR{address}")?.to_lowercase(),
                name: field(l, "NAME"),
            })
        })
        .collect()
}

/// Every MAC binding: those of the configured interfaces and of udev rules.
pub fn mac_bindings(
    fs: &mut dyn Filesystem,
    ifaces: &[Interface],
    warnings: &mut Vec<String>,
) -> Vec<MacBinding> {
    let mut out: Vec<MacBinding> = ifaces
        .iter()
        .filter_map(|i| {
            Some(MacBinding {
                source: i.source.clone(),
                mac: i.mac.clone()?,
                name: i.name.clone(),
            })
        })
        .collect();
    for dir in ["/etc/udev/rules.d", "/lib/udev/rules.d"] {
        for f in read::list(fs, dir)
            .into_iter()
            .filter(|f| f.contains("persistent-net") && f.ends_with(".rules"))
        {
            let p = format!("{dir}/{f}");
            if let Some(t) = read::text(fs, &p, warnings) {
                out.extend(udev_rules(&p, &t));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_format_yields_name_method_addresses_gateway_and_dns() {
        let i = ifupdown("auto lo\niface lo inet loopback\niface eth0 inet static\n  address 10.0.0.5/24\n  gateway 10.0.0.1\n  dns-nameservers 1.1.1.1 8.8.8.8\n");
        assert_eq!(i.len(), 2);
        assert_eq!(
            (
                i[1].method.as_str(),
                i[1].addresses[0].as_str(),
                i[1].gateway.as_deref(),
                i[1].dns.len()
            ),
            ("static", "10.0.0.5/24", Some("10.0.0.1"), 2)
        );
        let n = networkmanager("[connection]\ninterface-name=ens3\n[ethernet]\nmac-address=52:54:00:AA:BB:CC\n[ipv4]\nmethod=manual\naddress1=192.168.1.9/24,192.168.1.1\ndns=9.9.9.9;\n");
        assert_eq!(
            (n.name.as_deref(), n.mac.as_deref(), n.gateway.as_deref()),
            (Some("ens3"), Some("52:54:00:aa:bb:cc"), Some("192.168.1.1"))
        );
        let d = networkd("[Match]\nName=en*\n[Network]\nDHCP=yes\n");
        assert_eq!(
            (d.name.as_deref(), d.method.as_str(), d.dhcp6),
            (Some("en*"), "dhcp", Some(true))
        );
        let u = udev_rules("r", "# comment ATTR{address}==\"x\"\nSUBSYSTEM==\"net\", ACTION==\"add\", DRIVERS==\"?*\", ATTR{address}==\"52:54:00:AB:00:01\", ATTR{type}==\"1\", KERNEL==\"eth*\", NAME=\"eth0\"\nbroken ATTR{address}==52\n");
        assert_eq!(
            u,
            vec![MacBinding {
                source: "udev:r".into(),
                mac: "52:54:00:ab:00:01".into(),
                name: Some("eth0".into())
            }]
        );
        let r = ifcfg("DEVICE=eth0\nBOOTPROTO=none\nIPADDR=10.1.1.2\nPREFIX=16\nGATEWAY=10.1.0.1\nDNS1=10.1.0.2\nHWADDR=00:11:22:33:44:55\n");
        assert_eq!(
            (
                r.addresses[0].as_str(),
                r.dns[0].as_str(),
                r.method.as_str()
            ),
            ("10.1.1.2/16", "10.1.0.2", "static")
        );
    }
}
