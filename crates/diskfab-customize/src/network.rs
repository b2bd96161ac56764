//! `--network-static IFACE:ADDR/PREFIX:GW[:DNS,...]`, written in the guest's own format:
//! netplan, ifupdown, NetworkManager keyfile, systemd-networkd or ifcfg. IPv6 addresses go in
//! brackets: `eth0:[2001:db8::5]/64:[2001:db8::1]`.

use crate::guest::NetStyle;
use crate::staged::{Kind, Meta, Staged};
use crate::Ctx;
use diskfab_storage::{Error, Result};
use std::net::IpAddr;

/// A parsed static configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticNet {
    /// Interface name.
    pub iface: String,
    /// Address.
    pub addr: IpAddr,
    /// Prefix length.
    pub prefix: u8,
    /// Default gateway.
    pub gateway: Option<IpAddr>,
    /// DNS servers.
    pub dns: Vec<IpAddr>,
}

/// Splits at top-level colons (not inside `[...]`).
fn fields(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut depth = 0;
    for c in s.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ':' if depth == 0 => {
                out.push(String::new());
                continue;
            }
            _ => {}
        }
        if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out
}

fn ip(s: &str, what: &str) -> Result<IpAddr> {
    s.trim_matches(['[', ']'])
        .parse()
        .map_err(|_| Error::Invalid(format!("{what} {s:?} is not an IP address")))
}

fn mask(a: IpAddr, prefix: u8) -> u128 {
    let (v, bits) = match a {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    if prefix == 0 {
        0
    } else {
        v >> (bits - u32::from(prefix))
    }
}

/// Parses and checks the argument: valid addresses, prefix in range, gateway inside the
/// network, not the network or broadcast address.
pub fn parse_static(arg: &str) -> Result<StaticNet> {
    let f = fields(arg);
    if f.len() < 2 || f.len() > 4 {
        return Err(Error::Invalid(format!(
            "--network-static {arg:?}: expected IFACE:ADDR/PREFIX:GW[:DNS,...]"
        )));
    }
    let iface = f[0].clone();
    if iface.is_empty()
        || iface.len() > 15
        || !iface
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b))
    {
        return Err(Error::Invalid(format!(
            "{iface:?} is not an interface name"
        )));
    }
    let (a, p) = f[1]
        .rsplit_once('/')
        .ok_or_else(|| Error::Invalid(format!("{:?}: expected ADDR/PREFIX", f[1])))?;
    let addr = ip(a, "address")?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 = p
        .parse()
        .ok()
        .filter(|n| *n >= 1 && *n <= max)
        .ok_or_else(|| Error::Invalid(format!("prefix /{p} is out of range 1..{max}")))?;
    if addr.is_ipv4() && prefix < 31 {
        let host = u32::from_be_bytes(match addr {
            IpAddr::V4(a) => a.octets(),
            IpAddr::V6(_) => [0; 4],
        }) & (u32::MAX >> prefix);
        if host == 0 || host == u32::MAX >> prefix {
            return Err(Error::Invalid(format!(
                "{addr}/{prefix} is the network or broadcast address, not a host"
            )));
        }
    }
    let gateway = match f.get(2).filter(|g| !g.is_empty()) {
        Some(g) => {
            let g = ip(g, "gateway")?;
            if g.is_ipv4() != addr.is_ipv4() || mask(g, prefix) != mask(addr, prefix) {
                return Err(Error::Invalid(format!(
                    "gateway {g} is not inside {addr}/{prefix}"
                )));
            }
            if g == addr {
                return Err(Error::Invalid(format!("gateway {g} is the address itself")));
            }
            Some(g)
        }
        None => None,
    };
    let dns = match f.get(3) {
        Some(d) => d
            .split(',')
            .filter(|x| !x.is_empty())
            .map(|x| ip(x, "DNS server"))
            .collect::<Result<Vec<_>>>()?,
        None => Vec::new(),
    };
    Ok(StaticNet {
        iface,
        addr,
        prefix,
        gateway,
        dns,
    })
}

/// Plans the configuration files.
pub fn network_static(st: &mut Staged, ctx: &mut Ctx, arg: &str) -> Result<()> {
    let n = parse_static(arg)?;
    let style = match ctx.net_style {
        Some(s) => s,
        None => ctx.guest(st)?.net,
    };
    match style {
        NetStyle::Netplan => netplan(st, &n),
        NetStyle::Ifupdown => ifupdown(st, &n),
        NetStyle::NetworkManager => keyfile(st, &n),
        NetStyle::Networkd => networkd(st, &n),
        NetStyle::Ifcfg => ifcfg(st, &n),
    }
}

fn list(v: &[IpAddr], sep: &str) -> String {
    v.iter()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(sep)
}

fn netplan(st: &mut Staged, n: &StaticNet) -> Result<()> {
    let mut y = format!(
        "# written by diskfab\nnetwork:\n  version: 2\n  ethernets:\n    {}:\n      dhcp4: false\n      dhcp6: false\n      addresses: [\"{}/{}\"]\n",
        n.iface, n.addr, n.prefix
    );
    if let Some(g) = n.gateway {
        y += &format!("      routes:\n        - to: default\n          via: \"{g}\"\n");
    }
    if !n.dns.is_empty() {
        y += &format!(
            "      nameservers:\n        addresses: [{}]\n",
            n.dns
                .iter()
                .map(|d| format!("\"{d}\""))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    st.mkdir_p("/etc/netplan", Meta::root(0o755))?;
    st.write(
        &format!("/etc/netplan/90-diskfab-{}.yaml", n.iface),
        y.into_bytes(),
        Some(Meta::root(0o600)),
    )
}

fn ifupdown(st: &mut Staged, n: &StaticNet) -> Result<()> {
    let old = st.read_text("/etc/network/interfaces")?.unwrap_or_else(|| {
        "# interfaces(5) file used by ifup(8) and ifdown(8)\nsource /etc/network/interfaces.d/*\n\nauto lo\niface lo inet loopback\n".into()
    });
    // Drop the interface's existing stanzas.
    let mut out = String::new();
    let mut skipping = false;
    for l in old.lines() {
        let w: Vec<&str> = l.split_whitespace().collect();
        let starts = !l.starts_with([' ', '\t']) && !w.is_empty();
        if starts {
            skipping = w.first() == Some(&"iface") && w.get(1) == Some(&n.iface.as_str());
            let is_auto =
                matches!(w[0], "auto" | "allow-hotplug") && w[1..].contains(&n.iface.as_str());
            if is_auto {
                continue;
            }
        }
        if !skipping {
            out.push_str(l);
            out.push('\n');
        }
    }
    let fam = if n.addr.is_ipv4() { "inet" } else { "inet6" };
    out += &format!(
        "\nauto {0}\niface {0} {fam} static\n    address {1}/{2}\n",
        n.iface, n.addr, n.prefix
    );
    if let Some(g) = n.gateway {
        out += &format!("    gateway {g}\n");
    }
    if !n.dns.is_empty() {
        out += &format!("    dns-nameservers {}\n", list(&n.dns, " "));
    }
    st.mkdir_p("/etc/network", Meta::root(0o755))?;
    st.write("/etc/network/interfaces", out.into_bytes(), None)?;
    resolv_conf(st, n)
}

/// Writes nameservers into /etc/resolv.conf when it is a plain file (not managed by a
/// resolver daemon through a symlink).
fn resolv_conf(st: &mut Staged, n: &StaticNet) -> Result<()> {
    if n.dns.is_empty() {
        return Ok(());
    }
    match st.lstat("/etc/resolv.conf")?.map(|s| s.kind) {
        None | Some(Kind::File) => {
            let body: String = n.dns.iter().map(|d| format!("nameserver {d}\n")).collect();
            st.write("/etc/resolv.conf", body.into_bytes(), None)
        }
        _ => Ok(()),
    }
}

/// A stable UUID for the connection, derived from its settings.
fn conn_uuid(n: &StaticNet) -> String {
    let h = blake3::hash(format!("{}|{}/{}", n.iface, n.addr, n.prefix).as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&h.as_bytes()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let x: String = b.iter().map(|v| format!("{v:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &x[..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..]
    )
}

fn keyfile(st: &mut Staged, n: &StaticNet) -> Result<()> {
    let (v, other) = if n.addr.is_ipv4() {
        ("ipv4", "ipv6")
    } else {
        ("ipv6", "ipv4")
    };
    let gw = n.gateway.map(|g| format!(",{g}")).unwrap_or_default();
    let mut k = format!(
        "[connection]\nid=diskfab-{0}\nuuid={1}\ntype=ethernet\ninterface-name={0}\nautoconnect=true\n\n[ethernet]\n\n[{v}]\nmethod=manual\naddress1={2}/{3}{gw}\n",
        n.iface, conn_uuid(n), n.addr, n.prefix
    );
    if !n.dns.is_empty() {
        k += &format!("dns={};\n", list(&n.dns, ";"));
    }
    k += &format!(
        "\n[{other}]\nmethod={}\n",
        if other == "ipv6" { "auto" } else { "disabled" }
    );
    let dir = "/etc/NetworkManager/system-connections";
    st.mkdir_p(dir, Meta::root(0o700))?;
    st.write(
        &format!("{dir}/diskfab-{}.nmconnection", n.iface),
        k.into_bytes(),
        Some(Meta::root(0o600)),
    )
}

fn networkd(st: &mut Staged, n: &StaticNet) -> Result<()> {
    let mut c = format!(
        "[Match]\nName={}\n\n[Network]\nAddress={}/{}\n",
        n.iface, n.addr, n.prefix
    );
    if let Some(g) = n.gateway {
        c += &format!("Gateway={g}\n");
    }
    for d in &n.dns {
        c += &format!("DNS={d}\n");
    }
    st.mkdir_p("/etc/systemd/network", Meta::root(0o755))?;
    st.write(
        &format!("/etc/systemd/network/10-diskfab-{}.network", n.iface),
        c.into_bytes(),
        Some(Meta::root(0o644)),
    )?;
    for unit in [
        "/lib/systemd/system/systemd-networkd.service",
        "/usr/lib/systemd/system/systemd-networkd.service",
    ] {
        if st.lstat(unit)?.is_some() {
            st.mkdir_p(
                "/etc/systemd/system/multi-user.target.wants",
                Meta::root(0o755),
            )?;
            st.symlink(
                "/etc/systemd/system/multi-user.target.wants/systemd-networkd.service",
                unit,
            )?;
            break;
        }
    }
    Ok(())
}

fn ifcfg(st: &mut Staged, n: &StaticNet) -> Result<()> {
    let mut c = format!(
        "# written by diskfab\nDEVICE={0}\nNAME={0}\nBOOTPROTO=none\nONBOOT=yes\n",
        n.iface
    );
    if n.addr.is_ipv4() {
        c += &format!("IPADDR={}\nPREFIX={}\n", n.addr, n.prefix);
        if let Some(g) = n.gateway {
            c += &format!("GATEWAY={g}\n");
        }
    } else {
        c += &format!("IPV6INIT=yes\nIPV6ADDR={}/{}\n", n.addr, n.prefix);
        if let Some(g) = n.gateway {
            c += &format!("IPV6_DEFAULTGW={g}\n");
        }
    }
    for (i, d) in n.dns.iter().enumerate() {
        c += &format!("DNS{}={d}\n", i + 1);
    }
    let dir = "/etc/sysconfig/network-scripts";
    st.mkdir_p(dir, Meta::root(0o755))?;
    st.write(
        &format!("{dir}/ifcfg-{}", n.iface),
        c.into_bytes(),
        Some(Meta::root(0o644)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_ipv4_is_checked_against_its_network() {
        let n = parse_static("eth0:10.0.0.5/24:10.0.0.1:10.0.0.2,1.1.1.1").unwrap();
        assert_eq!(n.prefix, 24);
        assert_eq!(n.dns.len(), 2);
        assert!(
            parse_static("eth0:10.0.0.5/24:10.0.1.1").is_err(),
            "gateway outside"
        );
        assert!(
            parse_static("eth0:10.0.0.0/24:10.0.0.1").is_err(),
            "network address"
        );
        assert!(parse_static("eth0:10.0.0.300/24:10.0.0.1").is_err());
        assert!(parse_static("eth0:10.0.0.5/33").is_err());
        assert!(parse_static("eth 0:10.0.0.5/24").is_err());
    }

    #[test]
    fn static_ipv6_uses_brackets() {
        let n = parse_static("ens3:[2001:db8::5]/64:[2001:db8::1]").unwrap();
        assert!(n.addr.is_ipv6());
        assert_eq!(n.gateway.unwrap().to_string(), "2001:db8::1");
    }
}
