//! Accounts: passwords (shadow), new users (passwd, shadow, group, gshadow, home from
//! /etc/skel) and SSH keys — edited as the guest's own tools would, keeping every other line
//! byte for byte.

use crate::staged::{split, Kind, Meta, Staged};
use crate::Ctx;
use diskfab_storage::{Error, Result};

/// A colon-separated account database (passwd, shadow, group, gshadow).
struct Table {
    lines: Vec<String>,
    trailing_newline: bool,
}

impl Table {
    fn parse(text: &str) -> Table {
        Table {
            lines: text.lines().map(String::from).collect(),
            trailing_newline: text.is_empty() || text.ends_with('\n'),
        }
    }
    fn render(&self) -> Vec<u8> {
        let mut s = self.lines.join("\n");
        if self.trailing_newline && !self.lines.is_empty() {
            s.push('\n');
        }
        s.into_bytes()
    }
    fn find(&self, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| l.split(':').next() == Some(name))
    }
    fn field(&self, name: &str, i: usize) -> Option<String> {
        let l = &self.lines[self.find(name)?];
        l.split(':').nth(i).map(String::from)
    }
    fn set_field(&mut self, row: usize, i: usize, v: &str) {
        let mut f: Vec<String> = self.lines[row].split(':').map(String::from).collect();
        while f.len() <= i {
            f.push(String::new());
        }
        f[i] = v.to_string();
        self.lines[row] = f.join(":");
    }
    fn ids(&self, col: usize) -> Vec<u32> {
        self.lines
            .iter()
            .filter_map(|l| l.split(':').nth(col)?.parse().ok())
            .collect()
    }
}

fn load(st: &mut Staged, p: &str) -> Result<Table> {
    Ok(Table::parse(&st.read_text(p)?.unwrap_or_default()))
}

fn save(st: &mut Staged, p: &str, t: &Table, default_perm: u32) -> Result<()> {
    let meta = match st.lstat(p)? {
        Some(s) => s.meta,
        None => Meta::root(default_perm),
    };
    st.write(p, t.render(), Some(meta))
}

/// Days since the epoch, for shadow's "last change" field.
fn days(ctx: &Ctx) -> String {
    (ctx.clock.sec.max(0) / 86_400).to_string()
}

/// A user's (uid, gid, home) from the guest's passwd.
pub fn lookup_user(st: &mut Staged, user: &str) -> Result<(u32, u32, String)> {
    let pw = load(st, "/etc/passwd")?;
    let row = pw.find(user).ok_or_else(|| {
        Error::NotFound(format!(
            "user {user:?} does not exist in the guest's /etc/passwd"
        ))
    })?;
    let f: Vec<&str> = pw.lines[row].split(':').collect();
    let num = |i: usize| -> Result<u32> {
        f.get(i)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| Error::BadImage(format!("/etc/passwd: bad entry for {user}")))
    };
    let home = f.get(5).copied().unwrap_or("/").to_string();
    Ok((num(2)?, num(3)?, home))
}

/// `--root-password` / `--password`: `password:P`, `file:F`, `random`, `disabled`, `locked`,
/// `locked:SELECTOR`.
pub fn set_password(st: &mut Staged, ctx: &mut Ctx, user: &str, sel: &str) -> Result<()> {
    lookup_user(st, user)?;
    let mut shadow = load(st, "/etc/shadow")?;
    let row = match shadow.find(user) {
        Some(r) => r,
        None => {
            shadow
                .lines
                .push(format!("{user}:*:{}:0:99999:7:::", days(ctx)));
            shadow.lines.len() - 1
        }
    };
    let current = shadow.field(user, 1).unwrap_or_default();
    let (locked, sel) = match sel.strip_prefix("locked") {
        Some("") => (true, None),
        Some(rest) => match rest.strip_prefix(':') {
            Some(s) => (true, Some(s)),
            None => (false, Some(sel)),
        },
        None => (false, Some(sel)),
    };
    let mut hash = match sel {
        None => current.trim_start_matches('!').to_string(),
        Some("disabled") => "*".to_string(),
        Some(s) => {
            let pw = password_from(ctx, user, s)?;
            let crypto = ctx.crypto(st)?;
            let entropy = ctx.entropy(&format!("salt:{user}"))?;
            crate::crypt::hash(crypto, &pw, &entropy)?
        }
    };
    if locked {
        hash.insert(0, '!');
    }
    shadow.set_field(row, 1, &hash);
    shadow.set_field(row, 2, &days(ctx));
    save(st, "/etc/shadow", &shadow, 0o640)
}

fn password_from(ctx: &mut Ctx, user: &str, sel: &str) -> Result<String> {
    if let Some(p) = sel.strip_prefix("password:") {
        return Ok(p.to_string());
    }
    if let Some(f) = sel.strip_prefix("file:") {
        let text = ctx.host_read(f)?;
        let text = String::from_utf8_lossy(&text);
        let line = text.lines().next().unwrap_or("").to_string();
        if line.is_empty() {
            return Err(Error::Invalid(format!("{f}: the password file is empty")));
        }
        return Ok(line);
    }
    if sel == "random" {
        const CH: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let e = ctx.entropy(&format!("random-password:{user}"))?;
        let pw: String = e
            .iter()
            .map(|b| CH[usize::from(*b) % CH.len()] as char)
            .collect();
        ctx.secrets.insert(user.to_string(), pw.clone());
        return Ok(pw);
    }
    Err(Error::Invalid(format!(
        "password selector {:?}: use password:P, file:F, random, disabled, locked or locked:SELECTOR",
        sel.split(':').next().unwrap_or("")
    )))
}

/// `--ssh-inject USER[:string:KEY|:file:F]`.
pub fn ssh_inject(st: &mut Staged, ctx: &mut Ctx, arg: &str) -> Result<()> {
    let (user, key) = match arg.split_once(':') {
        None => (arg, default_keys(ctx)?),
        Some((u, rest)) => {
            let key = if let Some(k) = rest.strip_prefix("string:") {
                k.to_string()
            } else if let Some(f) = rest.strip_prefix("file:") {
                String::from_utf8_lossy(&ctx.host_read(f)?).into_owned()
            } else {
                return Err(Error::Invalid(
                    "expected USER, USER:string:KEY or USER:file:FILE".into(),
                ));
            };
            (u, key)
        }
    };
    let (uid, gid, home) = lookup_user(st, user)?;
    let own = |perm| Meta { perm, uid, gid };
    if st.lstat(&home)?.is_none() {
        st.mkdir_p(&home, own(0o700))?;
    }
    let ssh = format!("{}/.ssh", home.trim_end_matches('/'));
    if st.lstat(&ssh)?.is_none() {
        st.mkdir_p(&ssh, own(0o700))?;
    }
    let ak = format!("{ssh}/authorized_keys");
    let mut text = st.read_text(&ak)?.unwrap_or_default();
    for k in key.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !text.lines().any(|l| l.trim() == k) {
            if !text.is_empty() && !text.ends_with('\n') {
                text.push('\n');
            }
            text.push_str(k);
            text.push('\n');
        }
    }
    st.write(&ak, text.into_bytes(), Some(own(0o600)))
}

fn default_keys(ctx: &mut Ctx) -> Result<String> {
    let home = std::env::var("HOME").unwrap_or_else(|_| "/root".into());
    let mut out = String::new();
    for n in ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"] {
        if let Ok(d) = ctx.host_read(&format!("{home}/.ssh/{n}")) {
            out.push_str(&String::from_utf8_lossy(&d));
            out.push('\n');
        }
    }
    if out.trim().is_empty() {
        return Err(Error::NotFound(format!(
            "no public key in {home}/.ssh: name one with USER:file:KEYFILE or USER:string:KEY"
        )));
    }
    Ok(out)
}

/// Options of `--user-add NAME[:uid=N,groups=a,b,shell=S,home=H]`.
#[derive(Debug, Default)]
struct UserOpts {
    uid: Option<u32>,
    groups: Vec<String>,
    shell: Option<String>,
    home: Option<String>,
}

fn parse_user(arg: &str) -> Result<(String, UserOpts)> {
    let (name, rest) = arg.split_once(':').unwrap_or((arg, ""));
    let valid = !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
    if !valid {
        return Err(Error::Invalid(format!(
            "{name:?} is not a valid user name (lowercase letters, digits, _ - .)"
        )));
    }
    let mut o = UserOpts::default();
    let mut in_groups = false;
    for tok in rest.split(',').filter(|t| !t.is_empty()) {
        match tok.split_once('=') {
            Some(("uid", v)) => {
                o.uid = Some(
                    v.parse()
                        .map_err(|_| Error::Invalid(format!("uid={v}: not a number")))?,
                );
                in_groups = false;
            }
            Some(("groups", v)) => {
                o.groups.extend(
                    v.split([';', '+'])
                        .filter(|g| !g.is_empty())
                        .map(String::from),
                );
                in_groups = true;
            }
            Some(("shell", v)) => (o.shell, in_groups) = (Some(v.to_string()), false),
            Some(("home", v)) => (o.home, in_groups) = (Some(v.to_string()), false),
            None if in_groups => o.groups.push(tok.to_string()),
            _ => {
                return Err(Error::Invalid(format!(
                    "user option {tok:?}: use uid=, groups=, shell=, home="
                )))
            }
        }
    }
    Ok((name.to_string(), o))
}

/// The lowest id from `min` below 60000 that `used` does not hold (one pass over the ids: a
/// guest's passwd may have any number of lines).
fn free_id(used: &[u32], min: u32) -> Option<u32> {
    let used: std::collections::HashSet<u32> = used.iter().copied().collect();
    (min..60_000).find(|u| !used.contains(u))
}

fn login_defs_min(st: &mut Staged, key: &str, dflt: u32) -> Result<u32> {
    Ok(st
        .read_text("/etc/login.defs")?
        .and_then(|t| {
            t.lines().find_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(key)).then(|| w.next()?.parse().ok())?
            })
        })
        .unwrap_or(dflt))
}

/// `--user-add`.
pub fn user_add(st: &mut Staged, ctx: &mut Ctx, arg: &str) -> Result<()> {
    let (name, o) = parse_user(arg)?;
    let mut pw = load(st, "/etc/passwd")?;
    if pw.find(&name).is_some() {
        return Err(Error::Exists(format!(
            "user {name} already exists in the guest"
        )));
    }
    let mut gr = load(st, "/etc/group")?;
    let min = login_defs_min(st, "UID_MIN", 1000)?;
    let uid = match o.uid {
        Some(u) if pw.ids(2).contains(&u) => {
            return Err(Error::Exists(format!(
                "uid {u} is already used in the guest"
            )))
        }
        Some(u) => u,
        None => free_id(&pw.ids(2), min).ok_or_else(|| Error::Failed("no free uid".into()))?,
    };
    let gid = if gr.find(&name).is_some() {
        return Err(Error::Exists(format!(
            "group {name} already exists in the guest"
        )));
    } else if !gr.ids(2).contains(&uid) {
        uid
    } else {
        free_id(&gr.ids(2), min).ok_or_else(|| Error::Failed("no free gid".into()))?
    };
    for g in &o.groups {
        if gr.find(g).is_none() {
            return Err(Error::NotFound(format!(
                "group {g:?} does not exist in the guest"
            )));
        }
    }
    let home = o.home.clone().unwrap_or(format!("/home/{name}"));
    let shell = match &o.shell {
        Some(s) => s.clone(),
        None if st.lstat("/bin/bash")?.is_some() => "/bin/bash".into(),
        None => "/bin/sh".into(),
    };
    pw.lines
        .push(format!("{name}:x:{uid}:{gid}::{home}:{shell}"));
    gr.lines.push(format!("{name}:x:{gid}:"));
    add_members(&mut gr, &o.groups, &name, 3);
    save(st, "/etc/passwd", &pw, 0o644)?;
    save(st, "/etc/group", &gr, 0o644)?;
    let mut sh = load(st, "/etc/shadow")?;
    sh.lines
        .push(format!("{name}:!:{}:0:99999:7:::", days(ctx)));
    save(st, "/etc/shadow", &sh, 0o640)?;
    if st.lstat("/etc/gshadow")?.is_some() {
        let mut gs = load(st, "/etc/gshadow")?;
        gs.lines.push(format!("{name}:!::"));
        add_members(&mut gs, &o.groups, &name, 3);
        save(st, "/etc/gshadow", &gs, 0o640)?;
    }
    make_home(st, &home, uid, gid)
}

fn add_members(t: &mut Table, groups: &[String], user: &str, col: usize) {
    for g in groups {
        if let Some(row) = t.find(g) {
            let cur = t.lines[row].split(':').nth(col).unwrap_or("").to_string();
            let mut m: Vec<&str> = cur.split(',').filter(|x| !x.is_empty()).collect();
            if !m.contains(&user) {
                m.push(user);
            }
            let v = m.join(",");
            t.set_field(row, col, &v);
        }
    }
}

/// Fuzzing entry point for the account tables as `--password`, `--user-add` and `--chown` edit
/// them: `passwd NUL shadow NUL group` from a guest, through lookup, id allocation, field edits
/// and member lists. Must never panic. Returns the number of passwd lines with a uid.
#[doc(hidden)]
pub fn fuzz_tables(data: &[u8]) -> usize {
    let mut parts = data.splitn(3, |&b| b == 0);
    let mut next = || Table::parse(&String::from_utf8_lossy(parts.next().unwrap_or_default()));
    let (pw, mut sh, mut gr) = (next(), next(), next());
    let users = pw.ids(2).len();
    let name = pw
        .lines
        .first()
        .and_then(|l| l.split(':').next())
        .unwrap_or("root");
    let _ = (
        pw.field(name, 2),
        pw.field(name, 5),
        free_id(&pw.ids(2), 1000),
    );
    let row = sh.find(name).unwrap_or_else(|| {
        sh.lines.push(format!("{name}:*:1:0:99999:7:::"));
        sh.lines.len() - 1
    });
    let hash = sh.field(name, 1).unwrap_or_default();
    sh.set_field(row, 1, &format!("!{}", hash.trim_start_matches('!')));
    sh.set_field(row, 2, "20000");
    let _ = (free_id(&gr.ids(2), 1000), sh.render());
    let groups: Vec<String> = gr
        .lines
        .iter()
        .filter_map(|l| l.split(':').next())
        .map(String::from)
        .take(4)
        .collect();
    add_members(&mut gr, &groups, "fuzz", 3);
    let _ = gr.render();
    users
}

/// Creates the home directory from /etc/skel, everything owned by the user.
fn make_home(st: &mut Staged, home: &str, uid: u32, gid: u32) -> Result<()> {
    if st.lstat(home)?.is_some() {
        return Ok(());
    }
    let (parent, _) = split(home);
    let parent = parent.to_string();
    st.mkdir_p(&parent, Meta::root(0o755))?;
    st.mkdir_p(
        home,
        Meta {
            perm: 0o700,
            uid,
            gid,
        },
    )?;
    copy_skel(st, "/etc/skel", home, uid, gid, 0)
}

fn copy_skel(st: &mut Staged, from: &str, to: &str, uid: u32, gid: u32, depth: u32) -> Result<()> {
    if depth > 16 || st.lstat(from)?.is_none() {
        return Ok(());
    }
    for n in st.list(from)? {
        let (src, dst) = (format!("{from}/{n}"), format!("{to}/{n}"));
        let Some(s) = st.lstat(&src)? else { continue };
        let meta = Meta {
            perm: s.meta.perm,
            uid,
            gid,
        };
        match s.kind {
            Kind::File => {
                let data = st.read(&src)?.unwrap_or_default();
                st.write(&dst, data, Some(meta))?;
            }
            Kind::Dir => {
                st.mkdir_p(&dst, meta)?;
                copy_skel(st, &src, &dst, uid, gid, depth + 1)?;
            }
            Kind::Link(t) => st.symlink(&dst, &t)?,
            Kind::Other => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_options_accept_comma_separated_groups() {
        let (n, o) = parse_user("alice:uid=1500,groups=sudo,adm,shell=/bin/zsh").unwrap();
        assert_eq!(n, "alice");
        assert_eq!(o.uid, Some(1500));
        assert_eq!(o.groups, vec!["sudo", "adm"]);
        assert_eq!(o.shell.as_deref(), Some("/bin/zsh"));
        assert!(parse_user("Bad Name").is_err());
        assert!(parse_user("bob:colour=blue").is_err());
    }

    #[test]
    fn table_edits_keep_other_lines_and_trailing_newline() {
        let mut t = Table::parse("root:x:0:\nadm:x:4:syslog\n");
        add_members(&mut t, &["adm".into()], "alice", 3);
        assert_eq!(t.render(), b"root:x:0:\nadm:x:4:syslog,alice\n");
    }
}
