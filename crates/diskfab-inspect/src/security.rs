//! Who has administrator rights (sudoers rules and the sudo/wheel/admin groups) and the AppArmor
//! mode as far as files tell it (kernel command line in /etc/default/grub, per-profile modes).

use crate::read;
use crate::system::User;
use diskfab_fs::Filesystem;
use serde::Serialize;

/// Groups whose members distributions treat as administrators.
pub const ADMIN_GROUPS: [&str; 3] = ["sudo", "wheel", "admin"];
/// Most AppArmor profile files read.
const MAX_PROFILES: usize = 5000;

/// One user or group a sudoers rule grants commands to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SudoRule {
    /// The sudoers file.
    pub source: String,
    /// A user name (`ALL`, `#uid` as written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A group name (`%group` in sudoers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// The rule has NOPASSWD.
    pub nopasswd: bool,
}

/// Rules of one sudoers file (Defaults, aliases and includes are not rules).
pub fn parse_sudoers(source: &str, s: &str) -> Vec<SudoRule> {
    let joined = s.replace("\\\n", " ");
    let mut out = Vec::new();
    for l in joined.lines().map(str::trim) {
        let l = l.split('#').next().unwrap_or("").trim();
        // The user list may have spaces after its commas: "a, %b host=cmd".
        let mut words = l.split_whitespace();
        let Some(mut who) = words.next().map(str::to_string) else {
            continue;
        };
        while who.ends_with(',') {
            match words.next() {
                Some(w) => who.push_str(w),
                None => break,
            }
        }
        let rest = words.collect::<Vec<_>>().join(" ");
        let who = who.as_str();
        if who.starts_with("Defaults")
            || who.ends_with("_Alias")
            || who.starts_with('@')
            || !rest.contains('=')
        {
            continue;
        }
        let nopasswd = rest.contains("NOPASSWD:");
        for p in who.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (user, group) = match p.strip_prefix('%') {
                Some(g) => (None, Some(g.trim_start_matches(':').to_string())),
                None if p.starts_with('+') => continue,
                None => (Some(p.to_string()), None),
            };
            out.push(SudoRule {
                source: source.into(),
                user,
                group,
                nopasswd,
            });
        }
    }
    out
}

/// Rules from /etc/sudoers and /etc/sudoers.d (files sudo itself skips — with a `.` or ending
/// in `~` — are skipped too).
pub fn sudoers(fs: &mut dyn Filesystem, warnings: &mut Vec<String>) -> Vec<SudoRule> {
    let mut files = vec!["/etc/sudoers".to_string()];
    files.extend(
        read::list(fs, "/etc/sudoers.d")
            .into_iter()
            .filter(|f| !f.contains('.') && !f.ends_with('~'))
            .map(|f| format!("/etc/sudoers.d/{f}")),
    );
    let mut out = Vec::new();
    for f in files {
        if let Some(t) = read::text(fs, &f, warnings) {
            out.extend(parse_sudoers(&f, &t));
        }
    }
    out
}

/// Groups with administrator rights that exist in /etc/group, and marks the users in them or
/// named by a sudoers rule as `admin`.
pub fn apply_admin_rights(users: &mut [User], group: &str, rules: &[SudoRule]) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() < 4 {
            continue;
        }
        let name = f[0];
        let privileged =
            ADMIN_GROUPS.contains(&name) || rules.iter().any(|r| r.group.as_deref() == Some(name));
        if !privileged {
            continue;
        }
        groups.push(name.to_string());
        let gid: Option<u32> = f[2].parse().ok();
        let members: Vec<&str> = f[3].split(',').collect();
        for u in users.iter_mut() {
            if members.contains(&u.name.as_str()) || Some(u.gid) == gid {
                u.admin = true;
            }
        }
    }
    for u in users.iter_mut() {
        if rules
            .iter()
            .any(|r| r.user.as_deref().is_some_and(|n| n == u.name || n == "ALL"))
        {
            u.admin = true;
        }
    }
    groups.sort();
    groups.dedup();
    groups
}

/// AppArmor as configured in the files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppArmor {
    /// `disabled` (kernel command line), else `enforce`, `complain` or `mixed` over the profiles.
    pub mode: &'static str,
    /// Profiles in enforce mode.
    pub enforce: usize,
    /// Profiles in complain mode (force-complain link or `flags=(complain)`).
    pub complain: usize,
    /// Profiles disabled (a link in /etc/apparmor.d/disable).
    pub disabled: usize,
}

/// AppArmor mode and profile counts; `None` when the guest has no /etc/apparmor.d.
pub fn apparmor(fs: &mut dyn Filesystem, warnings: &mut Vec<String>) -> Option<AppArmor> {
    if !read::exists(fs, "/etc/apparmor.d") {
        return None;
    }
    let grub = read::text(fs, "/etc/default/grub", warnings).unwrap_or_default();
    let cmdline: String = read::key_values(&grub)
        .into_iter()
        .filter(|(k, _)| k.starts_with("GRUB_CMDLINE_LINUX"))
        .map(|(_, v)| v + " ")
        .collect();
    let off = cmdline
        .split_whitespace()
        .any(|w| w == "apparmor=0" || (w.starts_with("security=") && w != "security=apparmor"));
    let (mut enforce, mut complain, mut disabled) = (0, 0, 0);
    let forced = read::list(fs, "/etc/apparmor.d/force-complain");
    let off_list = read::list(fs, "/etc/apparmor.d/disable");
    for f in read::list(fs, "/etc/apparmor.d")
        .into_iter()
        .filter(|f| !f.starts_with('.') && !f.ends_with('~') && !f.ends_with(".dpkg-new"))
        .take(MAX_PROFILES)
    {
        let Ok(Some(body)) = read::file(fs, &format!("/etc/apparmor.d/{f}"), 1 << 20) else {
            continue; // directories (abstractions, tunables, local…) and unreadable files
        };
        let body = String::from_utf8_lossy(&body);
        if !body.contains("profile ") && !body.lines().any(|l| l.trim_start().starts_with('/')) {
            continue;
        }
        if off_list.contains(&f) {
            disabled += 1;
        } else if forced.contains(&f)
            || body
                .split("flags=(")
                .skip(1)
                .any(|r| r.split(')').next().unwrap_or("").contains("complain"))
        {
            complain += 1;
        } else {
            enforce += 1;
        }
    }
    let mode = match (off, enforce, complain) {
        (true, ..) => "disabled",
        (_, _, 0) => "enforce",
        (_, 0, _) => "complain",
        _ => "mixed",
    };
    Some(AppArmor {
        mode,
        enforce,
        complain,
        disabled,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sudoers_rules_name_users_and_groups_and_skip_defaults_aliases_and_comments() {
        let s = "Defaults env_reset\nUser_Alias ADMINS = a, b\n# ops ALL=(ALL) ALL\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\ndeploy, %ci ALL=(ALL) \\\n  NOPASSWD: /usr/bin/systemctl\n@includedir /etc/sudoers.d\n+netgrp ALL=(ALL) ALL\n";
        let r = parse_sudoers("/etc/sudoers", s);
        let who: Vec<(Option<&str>, Option<&str>, bool)> = r
            .iter()
            .map(|x| (x.user.as_deref(), x.group.as_deref(), x.nopasswd))
            .collect();
        assert_eq!(
            who,
            [
                (Some("root"), None, false),
                (None, Some("sudo"), false),
                (Some("deploy"), None, true),
                (None, Some("ci"), true)
            ]
        );
    }
}
