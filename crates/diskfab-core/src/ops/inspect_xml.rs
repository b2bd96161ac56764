//! `inspect --xml`: the report in virt-inspector's XML element names.

use super::inspect::InspectReport;

fn esc(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&apos;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn el(out: &mut String, indent: usize, name: &str, v: Option<&str>) {
    if let Some(v) = v {
        out.push_str(&format!("{:indent$}<{name}>{}</{name}>\n", "", esc(v)));
    }
}

/// Device name virt-inspector would print for partition `n` (0 = whole disk).
fn dev(n: u32) -> String {
    if n == 0 {
        "/dev/sda".into()
    } else {
        format!("/dev/sda{n}")
    }
}

/// Renders the report as virt-inspector-style XML.
pub fn to_xml(r: &InspectReport) -> String {
    let mut x = String::from("<?xml version=\"1.0\"?>\n<operatingsystems>\n");
    for e in &r.operating_systems {
        let o = &e.os;
        x.push_str("  <operatingsystem>\n");
        let root = match &e.root_volume {
            Some(lv) => format!("/dev/{lv}"),
            None => dev(e.root_partition),
        };
        el(&mut x, 4, "root", Some(&root));
        el(&mut x, 4, "name", Some(&o.os_type));
        el(&mut x, 4, "arch", o.arch.as_deref());
        el(&mut x, 4, "distro", o.distro.as_deref());
        el(&mut x, 4, "product_name", o.product_name.as_deref());
        el(
            &mut x,
            4,
            "major_version",
            o.major_version.map(|v| v.to_string()).as_deref(),
        );
        el(
            &mut x,
            4,
            "minor_version",
            Some(&o.minor_version.unwrap_or(0).to_string()),
        );
        el(&mut x, 4, "package_format", o.package_format.as_deref());
        el(
            &mut x,
            4,
            "package_management",
            o.package_management.as_deref(),
        );
        el(&mut x, 4, "hostname", o.hostname.as_deref());
        el(&mut x, 4, "osinfo", o.osinfo.as_deref());
        if let Some(w) = &o.windows {
            el(&mut x, 4, "windows_systemroot", Some(&w.system_root));
            el(
                &mut x,
                4,
                "windows_current_control_set",
                w.control_set.as_deref(),
            );
            el(&mut x, 4, "product_variant", w.installation_type.as_deref());
            x.push_str("    <drive_mappings>\n");
            // Like virt-inspector: only the letters resolved to a partition of this disk.
            for d in &w.drive_letters {
                let Some(p) = d.partition else { continue };
                x.push_str(&format!(
                    "      <drive_mapping name=\"{}\">{}</drive_mapping>\n",
                    esc(d.letter.trim_end_matches(':')),
                    dev(p)
                ));
            }
            x.push_str("    </drive_mappings>\n");
        }
        x.push_str("    <mountpoints>\n");
        for m in &e.mountpoints {
            let d = match (&m.volume, m.partition) {
                (Some(lv), _) => format!("/dev/{lv}"),
                (None, Some(p)) => dev(p),
                (None, None) => continue,
            };
            x.push_str(&format!(
                "      <mountpoint dev=\"{}\">{}</mountpoint>\n",
                esc(&d),
                esc(&m.mountpoint)
            ));
        }
        x.push_str("    </mountpoints>\n    <filesystems>\n");
        let f = &e.root_filesystem;
        x.push_str(&format!("      <filesystem dev=\"{}\">\n", esc(&root)));
        el(&mut x, 8, "type", Some(&f.fs_type));
        el(&mut x, 8, "label", f.label.as_deref());
        el(&mut x, 8, "uuid", f.uuid.as_deref());
        x.push_str("      </filesystem>\n    </filesystems>\n    <applications>\n");
        for a in &o.applications {
            x.push_str("      <application>\n");
            el(&mut x, 8, "name", Some(&a.name));
            el(&mut x, 8, "epoch", Some(&a.epoch.to_string()));
            el(&mut x, 8, "version", Some(&a.version));
            el(
                &mut x,
                8,
                "release",
                Some(&a.release)
                    .filter(|s| !s.is_empty())
                    .map(String::as_str),
            );
            el(
                &mut x,
                8,
                "arch",
                Some(&a.arch).filter(|s| !s.is_empty()).map(String::as_str),
            );
            el(
                &mut x,
                8,
                "summary",
                Some(&a.summary)
                    .filter(|s| !s.is_empty())
                    .map(String::as_str),
            );
            x.push_str("      </application>\n");
        }
        x.push_str("    </applications>\n  </operatingsystem>\n");
    }
    x.push_str("</operatingsystems>\n");
    x
}
