//! Fills a catalog with N synthetic entries for the search benchmark (bench/catalog.sh):
//! a spread of distributions, versions, architectures, ~90 packages each and driver sets.
//! Usage: cargo run --release -p diskfab-catalog --example fill -- CATALOG.db N

use diskfab_catalog::sqlite::SqliteStore;
use diskfab_catalog::version::Scheme;
use diskfab_catalog::Record;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (path, n) = match args.as_slice() {
        [_, p, n] => (std::path::PathBuf::from(p), n.parse::<usize>()?),
        _ => return Err("usage: fill CATALOG.db N".into()),
    };
    let distros = [
        ("debian", &["11", "12", "13"][..], Scheme::Dpkg),
        ("ubuntu", &["22.04", "24.04"], Scheme::Dpkg),
        ("fedora", &["39", "40", "41"], Scheme::Rpm),
        ("rocky", &["8.9", "9.4"], Scheme::Rpm),
    ];
    let archs = ["x86_64", "aarch64"];
    let drivers = [
        "virtio_blk",
        "virtio_net",
        "virtio_scsi",
        "nvme",
        "e1000",
        "vmxnet3",
        "hv_storvsc",
        "xen-blkfront",
    ];
    let mut store = SqliteStore::open(&path)?;
    let mut batch = Vec::new();
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..n {
        let (d, vs, scheme) = distros[(rnd() % 4) as usize];
        let v = vs[(rnd() as usize) % vs.len()];
        let mut packages: Vec<(String, String)> = (0..90)
            .map(|k| {
                (
                    format!("pkg{k:03}"),
                    format!("1.{}.{}-{}", rnd() % 20, rnd() % 10, rnd() % 5),
                )
            })
            .collect();
        if rnd() % 3 != 0 {
            packages.push((
                "openssh-server".into(),
                format!("1:{}.{}p1-{}", 8 + rnd() % 3, rnd() % 10, rnd() % 5),
            ));
        }
        let drv: Vec<String> = drivers
            .iter()
            .filter(|_| rnd() % 2 == 0)
            .map(|s| s.to_string())
            .collect();
        batch.push(Record {
            path: format!("/images/vm{i:06}.qcow2"),
            fingerprint: format!("{:016x}", rnd()),
            attrs: vec![
                ("os".into(), "linux".into()),
                ("distro".into(), d.into()),
                ("version".into(), v.into()),
                ("arch".into(), archs[(rnd() % 2) as usize].into()),
                ("hostname".into(), format!("host{i}")),
                (
                    "package_format".into(),
                    if scheme == Scheme::Rpm { "rpm" } else { "deb" }.into(),
                ),
            ],
            packages,
            drivers: drv,
            scheme,
            report: serde_json::json!({"synthetic": true}),
        });
        if batch.len() == 1000 {
            store.upsert_many(&batch, 0)?;
            batch.clear();
        }
    }
    store.upsert_many(&batch, 0)?;
    Ok(())
}
