//! netplan YAML (`/etc/netplan/*.yaml`, Ubuntu): ethernets, bonds, bridges, vlans and wifis with
//! their DHCP settings, addresses, default gateways, name servers and `match: macaddress`
//! bindings. YAML aliases are expanded by the loader, so a document with more than a few is
//! refused (an alias bomb would otherwise take exponential memory).

use crate::network::Interface;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{Yaml, YamlLoader};

/// Most aliases accepted in one document (netplan files normally have none).
const MAX_ALIASES: usize = 8;

fn count_aliases(s: &str) -> Result<usize, String> {
    let mut p = Parser::new_from_str(s);
    let mut n = 0;
    loop {
        match p.next_token() {
            Ok((Event::StreamEnd, _)) => return Ok(n),
            Ok((Event::Alias(_), _)) => n += 1,
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

fn strings(y: &Yaml) -> Vec<String> {
    y.as_vec()
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// netplan booleans: `true`, `yes`, `on` (YAML 1.1 spellings netplan accepts).
fn truthy(y: &Yaml) -> Option<bool> {
    match y {
        Yaml::Boolean(b) => Some(*b),
        Yaml::String(s) => match s.to_ascii_lowercase().as_str() {
            "yes" | "on" | "true" | "y" => Some(true),
            "no" | "off" | "false" | "n" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The interfaces a netplan document declares; `Err` for unparsable or refused YAML.
pub fn parse(file: &str, s: &str) -> Result<Vec<Interface>, String> {
    let aliases = count_aliases(s)?;
    if aliases > MAX_ALIASES {
        return Err(format!("{aliases} YAML aliases; refused"));
    }
    let docs = YamlLoader::load_from_str(s).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for doc in &docs {
        let net = &doc["network"];
        for kind in ["ethernets", "bonds", "bridges", "vlans", "wifis"] {
            let Some(h) = net[kind].as_hash() else {
                continue;
            };
            for (id, c) in h {
                let Some(id) = id.as_str() else { continue };
                let dhcp4 = truthy(&c["dhcp4"]).unwrap_or(false);
                let dhcp6 = Some(truthy(&c["dhcp6"]).unwrap_or(false));
                let addresses = strings(&c["addresses"]);
                let mut i = Interface {
                    source: format!("netplan:{file}"),
                    name: c["set-name"]
                        .as_str()
                        .or_else(|| c["match"]["name"].as_str())
                        .or(Some(id))
                        .map(str::to_string),
                    mac: c["match"]["macaddress"].as_str().map(|m| m.to_lowercase()),
                    method: if dhcp4 {
                        "dhcp".into()
                    } else if !addresses.is_empty() {
                        "static".into()
                    } else {
                        "manual".into()
                    },
                    addresses,
                    gateway: c["gateway4"].as_str().map(str::to_string),
                    gateway6: c["gateway6"].as_str().map(str::to_string),
                    dhcp6,
                    dns: strings(&c["nameservers"]["addresses"]),
                };
                for r in c["routes"].as_vec().into_iter().flatten() {
                    let (Some(to), Some(via)) = (r["to"].as_str(), r["via"].as_str()) else {
                        continue;
                    };
                    let v6 = via.contains(':');
                    if to == "default" || to == "0.0.0.0/0" || to == "::/0" {
                        if v6 {
                            i.gateway6.get_or_insert_with(|| via.to_string());
                        } else {
                            i.gateway.get_or_insert_with(|| via.to_string());
                        }
                    }
                }
                out.push(i);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netplan_yaml_gives_dhcp_addresses_default_routes_dns_and_mac_match() {
        let y = "network:\n  version: 2\n  ethernets:\n    lan:\n      match:\n        macaddress: \"52:54:00:AA:BB:01\"\n      set-name: eth0\n      dhcp4: no\n      dhcp6: yes\n      addresses: [10.0.0.5/24, \"2001:db8::5/64\"]\n      routes:\n        - to: default\n          via: 10.0.0.1\n        - to: \"::/0\"\n          via: \"2001:db8::1\"\n        - to: 192.168.0.0/16\n          via: 10.0.0.254\n      nameservers:\n        addresses: [1.1.1.1]\n    ens4:\n      dhcp4: true\n  bridges:\n    br0:\n      interfaces: [ens4]\n      addresses: [192.168.9.1/24]\n      gateway4: 192.168.9.254\n";
        let v = parse("/etc/netplan/50.yaml", y).unwrap();
        assert_eq!(v.len(), 3);
        let lan = &v[0];
        assert_eq!(
            (
                lan.name.as_deref(),
                lan.mac.as_deref(),
                lan.method.as_str(),
                lan.dhcp6,
                lan.gateway.as_deref(),
                lan.gateway6.as_deref(),
                lan.dns.as_slice()
            ),
            (
                Some("eth0"),
                Some("52:54:00:aa:bb:01"),
                "static",
                Some(true),
                Some("10.0.0.1"),
                Some("2001:db8::1"),
                ["1.1.1.1".to_string()].as_slice()
            )
        );
        assert_eq!(
            (v[1].name.as_deref(), v[1].method.as_str()),
            (Some("ens4"), "dhcp")
        );
        assert_eq!(v[2].gateway.as_deref(), Some("192.168.9.254"));
    }

    #[test]
    fn alias_bombs_deep_nesting_and_garbage_are_refused_quickly() {
        let mut bomb = String::from("a: &a [x,x,x,x,x,x,x,x,x,x]\n");
        for i in 1..12 {
            bomb.push_str(&format!(
                "a{i}: &a{i} [{}]\n",
                vec![
                    if i == 1 {
                        "*a".to_string()
                    } else {
                        format!("*a{}", i - 1)
                    };
                    10
                ]
                .join(",")
            ));
        }
        let t0 = std::time::Instant::now();
        assert!(parse("x", &bomb).unwrap_err().contains("aliases"));
        assert!(parse("x", &"[".repeat(100_000)).is_err());
        assert!(parse("x", "network: {ethernets: [1, 2]}\n")
            .unwrap()
            .is_empty());
        let _ = parse("x", "\u{0}\u{1}: : :"); // no panic, whatever it makes of it
        assert!(t0.elapsed().as_secs() < 5);
    }
}
