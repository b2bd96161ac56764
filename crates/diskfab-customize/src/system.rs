//! System identity: hostname, timezone, first-boot commands, and virt-sysprep-style resets.

use crate::guest::Family;
use crate::staged::{Kind, Meta, Staged};
use crate::Ctx;
use diskfab_storage::{Error, Result};

/// Checks an RFC 1123 host name (dot-separated labels of letters, digits and inner hyphens).
pub fn check_hostname(h: &str) -> Result<()> {
    let ok = !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "{h:?} is not a valid host name (letters, digits, inner '-', dot-separated labels ≤ 63)"
        )))
    }
}

/// `--hostname`: /etc/hostname, the 127.0.1.1 line of /etc/hosts (Debian), and the
/// distribution's legacy files where present.
pub fn hostname(st: &mut Staged, ctx: &mut Ctx, h: &str) -> Result<()> {
    check_hostname(h)?;
    let short = h.split('.').next().unwrap_or(h);
    let family = ctx.guest(st)?.family;
    st.write("/etc/hostname", format!("{h}\n").into_bytes(), None)?;
    if family == Family::Suse && st.lstat("/etc/HOSTNAME")?.is_some() {
        st.write("/etc/HOSTNAME", format!("{h}\n").into_bytes(), None)?;
    }
    if let Some(net) = st.read_text("/etc/sysconfig/network")? {
        let mut lines: Vec<String> = net
            .lines()
            .filter(|l| !l.starts_with("HOSTNAME="))
            .map(String::from)
            .collect();
        lines.push(format!("HOSTNAME={h}"));
        st.write(
            "/etc/sysconfig/network",
            (lines.join("\n") + "\n").into_bytes(),
            None,
        )?;
    }
    let names = if short == h {
        h.to_string()
    } else {
        format!("{h} {short}")
    };
    let hosts = match st.read_text("/etc/hosts")? {
        Some(t) => {
            let mut out = String::new();
            let mut done = false;
            for l in t.lines() {
                if l.split_whitespace().next() == Some("127.0.1.1") {
                    if !done {
                        out.push_str(&format!("127.0.1.1\t{names}\n"));
                        done = true;
                    }
                } else {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            if !done && family == Family::Debian {
                out.push_str(&format!("127.0.1.1\t{names}\n"));
            }
            out
        }
        None => format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{names}\n\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        ),
    };
    st.write("/etc/hosts", hosts.into_bytes(), None)
}

/// `--timezone TZ`: /etc/localtime → /usr/share/zoneinfo/TZ, and /etc/timezone on Debian.
pub fn timezone(st: &mut Staged, tz: &str) -> Result<()> {
    let ok = !tz.is_empty()
        && !tz.starts_with('/')
        && tz
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
        && tz
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+-".contains(&b));
    if !ok {
        return Err(Error::Invalid(format!(
            "{tz:?} is not a timezone name like Europe/Paris"
        )));
    }
    let zone = format!("/usr/share/zoneinfo/{tz}");
    if st.lstat(&zone)?.is_none() {
        return Err(Error::NotFound(format!(
            "{zone} does not exist in the guest (is tzdata installed? is {tz:?} spelled right?)"
        )));
    }
    st.symlink("/etc/localtime", &zone)?;
    if st.lstat("/etc/timezone")?.is_some() {
        st.write("/etc/timezone", format!("{tz}\n").into_bytes(), None)?;
    }
    Ok(())
}

const FB_DIR: &str = "/usr/lib/diskfab/firstboot";
const FB_RUNNER: &str = "#!/bin/sh
# diskfab first-boot runner: runs each script once, in order, then removes it.
d=/usr/lib/diskfab/firstboot/scripts
log=/var/log/diskfab-firstboot.log
for f in $(ls \"$d\" 2>/dev/null | sort); do
    echo \"=== $f\" >>\"$log\"
    if sh \"$d/$f\" >>\"$log\" 2>&1; then rm -f \"$d/$f\"; else echo \"$f failed: $?\" >>\"$log\"; fi
done
";
const FB_UNIT: &str = "[Unit]
Description=diskfab first-boot commands
After=network.target
ConditionPathExistsGlob=/usr/lib/diskfab/firstboot/scripts/*

[Service]
Type=oneshot
ExecStart=/usr/lib/diskfab/firstboot/runner
RemainAfterExit=yes
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
";
const FB_SYSV: &str = "#!/bin/sh
### BEGIN INIT INFO
# Provides:          diskfab-firstboot
# Required-Start:    $all
# Required-Stop:
# Default-Start:     2 3 4 5
# Default-Stop:
# Short-Description: diskfab first-boot commands
### END INIT INFO
case \"$1\" in start) /usr/lib/diskfab/firstboot/runner ;; esac
";

/// `--firstboot-command CMD`: a numbered script run once by a systemd unit (or a SysV
/// script when the guest has no systemd).
pub fn firstboot(st: &mut Staged, ctx: &mut Ctx, cmd: &str) -> Result<()> {
    let systemd = ctx.guest(st)?.systemd;
    let scripts = format!("{FB_DIR}/scripts");
    st.mkdir_p(&scripts, Meta::root(0o755))?;
    let n = st.list(&scripts)?.len() + 1;
    st.write(
        &format!("{scripts}/{n:04}-command"),
        format!("#!/bin/sh\n{cmd}\n").into_bytes(),
        Some(Meta::root(0o755)),
    )?;
    st.write(
        &format!("{FB_DIR}/runner"),
        FB_RUNNER.into(),
        Some(Meta::root(0o755)),
    )?;
    if systemd || st.lstat("/etc/init.d")?.is_none() {
        let unit = "/etc/systemd/system/diskfab-firstboot.service";
        st.mkdir_p(
            "/etc/systemd/system/multi-user.target.wants",
            Meta::root(0o755),
        )?;
        st.write(unit, FB_UNIT.into(), Some(Meta::root(0o644)))?;
        st.symlink(
            "/etc/systemd/system/multi-user.target.wants/diskfab-firstboot.service",
            unit,
        )?;
    } else {
        st.write(
            "/etc/init.d/diskfab-firstboot",
            FB_SYSV.into(),
            Some(Meta::root(0o755)),
        )?;
        for lvl in 2..=5 {
            let d = format!("/etc/rc{lvl}.d");
            if matches!(st.lstat(&d)?.map(|s| s.kind), Some(Kind::Dir)) {
                st.symlink(
                    &format!("{d}/S99diskfab-firstboot"),
                    "../init.d/diskfab-firstboot",
                )?;
            }
        }
    }
    Ok(())
}

/// The reset operations `--reset` knows.
pub const RESETS: &[&str] = &[
    "machine-id",
    "ssh-hostkeys",
    "logfiles",
    "bash-history",
    "udev-persistent-net",
    "dhcp-client-state",
    "tmp-files",
    "package-manager-cache",
];

/// `--reset OPS`.
pub fn reset(st: &mut Staged, ops: &str) -> Result<()> {
    let list: Vec<&str> = if ops == "all" {
        RESETS.to_vec()
    } else {
        ops.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect()
    };
    for op in list {
        match op {
            "machine-id" => {
                if st.lstat("/etc/machine-id")?.is_some() {
                    st.write("/etc/machine-id", Vec::new(), None)?;
                }
                st.delete("/var/lib/dbus/machine-id")?;
            }
            "ssh-hostkeys" => delete_matching(st, "/etc/ssh", |n| n.starts_with("ssh_host_"))?,
            "logfiles" => truncate_logs(st, "/var/log", 0)?,
            "bash-history" => {
                st.delete("/root/.bash_history")?;
                if st.lstat("/home")?.is_some() {
                    for u in st.list("/home")? {
                        st.delete(&format!("/home/{u}/.bash_history"))?;
                    }
                }
            }
            "udev-persistent-net" => {
                st.delete("/etc/udev/rules.d/70-persistent-net.rules")?;
            }
            "dhcp-client-state" => {
                for d in [
                    "/var/lib/dhcp",
                    "/var/lib/dhclient",
                    "/var/lib/NetworkManager",
                ] {
                    delete_matching(st, d, |n| n.contains("lease"))?;
                }
            }
            "tmp-files" => {
                for d in ["/tmp", "/var/tmp"] {
                    delete_matching(st, d, |_| true)?;
                }
            }
            "package-manager-cache" => {
                delete_matching(st, "/var/cache/apt/archives", |n| n.ends_with(".deb"))?;
                for d in [
                    "/var/cache/dnf",
                    "/var/cache/yum",
                    "/var/cache/zypp/packages",
                ] {
                    delete_matching(st, d, |_| true)?;
                }
            }
            other => {
                return Err(Error::Invalid(format!(
                    "unknown reset {other:?}: use {} or all",
                    RESETS.join(", ")
                )))
            }
        }
    }
    Ok(())
}

fn delete_matching(st: &mut Staged, dir: &str, f: impl Fn(&str) -> bool) -> Result<()> {
    if !matches!(st.lstat(dir)?.map(|s| s.kind), Some(Kind::Dir)) {
        return Ok(());
    }
    for n in st.list(dir)? {
        if f(&n) {
            st.delete(&format!("{dir}/{n}"))?;
        }
    }
    Ok(())
}

/// Empties log files, deletes rotated ones (`*.1`, `*.gz`, …), keeps the directory layout.
fn truncate_logs(st: &mut Staged, dir: &str, depth: u32) -> Result<()> {
    if depth > 8 || !matches!(st.lstat(dir)?.map(|s| s.kind), Some(Kind::Dir)) {
        return Ok(());
    }
    for n in st.list(dir)? {
        let p = format!("{dir}/{n}");
        let Some(s) = st.lstat(&p)? else { continue };
        match s.kind {
            Kind::Dir => truncate_logs(st, &p, depth + 1)?,
            Kind::File => {
                let rotated = n.ends_with(".gz")
                    || n.ends_with(".xz")
                    || n.ends_with(".old")
                    || n.rsplit('.')
                        .next()
                        .is_some_and(|x| x.parse::<u32>().is_ok());
                if rotated {
                    st.delete(&p)?;
                } else if s.size > 0 {
                    st.write(&p, Vec::new(), None)?;
                }
            }
            _ => {}
        }
    }
    Ok(())
}
