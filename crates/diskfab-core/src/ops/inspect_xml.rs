//! `inspect --xml`: the report in virt-inspector's XML element names.

use super::inspect::InspectReport;
use super::inspect_dev::{dev, mountpoints};

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

fn num(out: &mut String, name: &str, v: Option<u32>) {
    el(out, 4, name, Some(&v.unwrap_or(0).to_string()));
}

/// Renders the report as virt-inspector's XML: its elements, in its order, for the fields
/// diskfab has (virt-inspector 1.48's `<description>`, `<url>` and `<source_package>` of
/// applications are not produced).
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
        let w = o.windows.as_ref();
        el(
            &mut x,
            4,
            "product_variant",
            w.and_then(|w| w.installation_type.as_deref()),
        );
        num(&mut x, "major_version", o.major_version);
        num(&mut x, "minor_version", o.minor_version);
        el(&mut x, 4, "package_format", o.package_format.as_deref());
        el(
            &mut x,
            4,
            "package_management",
            o.package_management.as_deref(),
        );
        if let Some(w) = w {
            el(&mut x, 4, "windows_systemroot", Some(&w.system_root));
            el(
                &mut x,
                4,
                "windows_current_control_set",
                w.control_set.as_deref(),
            );
        }
        el(&mut x, 4, "hostname", o.hostname.as_deref());
        el(&mut x, 4, "osinfo", o.osinfo.as_deref());
        x.push_str("    <mountpoints>\n");
        for (mp, d) in mountpoints(&root, &e.mountpoints) {
            x.push_str(&format!(
                "      <mountpoint dev=\"{}\">{}</mountpoint>\n",
                esc(&d),
                esc(&mp)
            ));
        }
        x.push_str("    </mountpoints>\n    <filesystems>\n");
        for f in &e.filesystems {
            x.push_str(&format!("      <filesystem dev=\"{}\">\n", esc(&f.device)));
            el(&mut x, 8, "type", f.fs_type.as_deref());
            el(&mut x, 8, "label", f.label.as_deref());
            el(&mut x, 8, "uuid", f.uuid.as_deref());
            x.push_str("      </filesystem>\n");
        }
        x.push_str("    </filesystems>\n");
        if let Some(w) = w {
            // Like virt-inspector: only the letters resolved to a partition of this disk, and
            // no element when there are none.
            let mut letters: Vec<(String, u32)> = w
                .drive_letters
                .iter()
                .filter_map(|d| Some((d.letter.trim_end_matches(':').to_string(), d.partition?)))
                .collect();
            letters.sort_by_key(|(l, _)| l.to_ascii_lowercase());
            if !letters.is_empty() {
                x.push_str("    <drive_mappings>\n");
                for (l, p) in letters {
                    x.push_str(&format!(
                        "      <drive_mapping name=\"{}\">{}</drive_mapping>\n",
                        esc(&l),
                        dev(p)
                    ));
                }
                x.push_str("    </drive_mappings>\n");
            }
        }
        applications(&mut x, &o.applications);
        x.push_str("  </operatingsystem>\n");
    }
    x.push_str("</operatingsystems>\n");
    x
}

fn opt(s: &str) -> Option<&str> {
    Some(s).filter(|s| !s.is_empty())
}

fn applications(x: &mut String, apps: &[diskfab_inspect::Application]) {
    x.push_str("    <applications>\n");
    for a in apps {
        x.push_str("      <application>\n");
        el(x, 8, "name", Some(&a.name));
        el(
            x,
            8,
            "epoch",
            (a.epoch != 0).then(|| a.epoch.to_string()).as_deref(),
        );
        el(x, 8, "version", opt(&a.version));
        el(x, 8, "release", opt(&a.release));
        el(x, 8, "arch", opt(&a.arch));
        el(x, 8, "summary", opt(&a.summary));
        x.push_str("      </application>\n");
    }
    x.push_str("    </applications>\n");
}
