//! The command line, defined once with clap; `diskfab docs` renders it as Markdown.

use clap::{Args, Parser, Subcommand, ValueEnum};
use diskfab_core::select::VolumeSel;
use std::path::PathBuf;

/// diskfab — manage virtual-machine disk images offline: no helper VM, no root, no mount.
#[derive(Parser, Debug)]
#[command(name = "diskfab", version, max_term_width = 100)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Also allow backing files under DIR (repeatable; also DISKFAB_BACKING_DIRS=dir:dir).
    #[arg(long = "backing-dir", value_name = "DIR", global = true)]
    pub backing_dirs: Vec<PathBuf>,
    /// Allow backing files anywhere (only for images you trust).
    #[arg(long, global = true)]
    pub allow_any_backing: bool,
    /// Largest table, bitmap or buffer one image may make diskfab allocate (default 512M; also
    /// DISKFAB_MAX_MEMORY=SIZE). Images needing more are refused with a clear error.
    #[arg(long, value_name = "SIZE", global = true, value_parser = parse_max_memory)]
    pub max_memory: Option<u64>,
    /// The command.
    #[command(subcommand)]
    pub cmd: Cmd,
}

fn parse_max_memory(s: &str) -> Result<u64, String> {
    diskfab_core::storage::limits::parse_size(s).map_err(|e| e.to_string())
}

/// Image formats diskfab writes.
#[derive(ValueEnum, Clone, Copy, Debug)]
pub enum Fmt {
    /// Raw sparse file.
    Raw,
    /// QEMU copy-on-write v3.
    Qcow2,
    /// VirtualBox disk image (dynamic; static with -o static=on).
    Vdi,
    /// Microsoft VHD (dynamic; fixed with -o subformat=fixed; -o force_size=on keeps the size
    /// exact; -o azure=on: fixed, size rounded up to a whole MiB, as Azure requires); also
    /// accepted as `vhd`.
    #[value(name = "vpc", alias = "vhd")]
    Vpc,
    /// VMware VMDK (monolithicSparse; -o subformat=streamOptimized for a compressed, write-once image).
    Vmdk,
    /// Microsoft Hyper-V VHDX (dynamic; fixed with -o subformat=fixed; -o block_size=SIZE).
    Vhdx,
}

/// `catalog` subcommands.
#[derive(Subcommand, Debug)]
pub enum CatalogCmd {
    /// Inspect images and record them (re-adding an image updates it, keeping its tags).
    Add {
        /// Images.
        #[arg(required = true)]
        images: Vec<PathBuf>,
        /// Tag every image with KEY=VALUE (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        tag: Vec<String>,
    },
    /// List every catalogued image.
    List,
    /// Find images: 'distro=debian version>=12 arch=x86_64 package=openssh-server !driver=virtio_blk'.
    Search {
        /// Terms, all of which must hold (KEY=V, KEY=V1,V2, KEY>=VERSION, KEY!=V, package=NAME[>=VERSION], driver=NAME, !TERM).
        #[arg(required = true, num_args = 1..)]
        query: Vec<String>,
    },
    /// Show one entry with its inspection report.
    Show {
        /// Id or image path.
        id: String,
    },
    /// Set a tag.
    Tag {
        /// Id.
        id: i64,
        /// KEY=VALUE.
        tag: String,
    },
    /// Remove a tag.
    Untag {
        /// Id.
        id: i64,
        /// Key.
        key: String,
    },
    /// Re-inspect images whose content changed (all, or the given ids).
    Rescan {
        /// Ids.
        ids: Vec<i64>,
    },
    /// Remove an entry.
    Remove {
        /// Id.
        id: i64,
    },
}

/// `delta` subcommands.
#[derive(Subcommand, Debug)]
pub enum DeltaCmd {
    /// Write the changes from image A to image B into a delta file.
    Create {
        /// Image A (the "before").
        a: PathBuf,
        /// Image B (the "after").
        b: PathBuf,
        /// The delta file to write (refused if it exists).
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// Leave out paths matching this glob (repeatable), e.g. '/var/log/**'.
        #[arg(long, value_name = "GLOB")]
        exclude: Vec<String>,
        /// Partition of A.
        #[arg(long = "partition", short = 'p', value_name = "N|VG/LV")]
        partition: Option<VolumeSel>,
        /// Partition of B.
        #[arg(long = "partition-b", value_name = "N|VG/LV")]
        partition_b: Option<VolumeSel>,
    },
    /// List a delta file's records (after verifying it).
    Show {
        /// The delta file.
        delta: PathBuf,
    },
    /// Apply a delta to an image (usually a fresh overlay): verified first, all or nothing.
    Apply {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// The delta file.
        delta: PathBuf,
        /// Only report conflicts; write nothing.
        #[arg(long)]
        check: bool,
        /// Apply even where the image differs from what the delta expects.
        #[arg(long)]
        force: bool,
        /// Allow the delta to create device nodes.
        #[arg(long)]
        allow_devices: bool,
    },
}

/// Settings shared by all customization operations.
#[derive(Args, Debug, Clone)]
pub struct CustomizeSettings {
    /// Password hashing: md5, sha256, sha512, yescrypt (default: what the guest's PAM or
    /// login.defs uses).
    #[arg(long, value_name = "METHOD")]
    pub password_crypto: Option<String>,
    /// Network configuration format: netplan, ifupdown, networkmanager, networkd, ifcfg
    /// (default: detected from the guest).
    #[arg(long, value_name = "FORMAT")]
    pub network_format: Option<String>,
    /// Derive salts and random passwords from this string (reproducible output).
    #[arg(long, value_name = "STRING")]
    pub seed: Option<String>,
    /// Give --run-command the host's network too (default: only --install, --uninstall and
    /// --update get it; everything else runs in an empty network namespace).
    #[arg(long, conflicts_with = "no_network")]
    pub network: bool,
    /// Give no guest program the network; --install and --update are refused (use
    /// --install-file with packages downloaded on the host).
    #[arg(long)]
    pub no_network: bool,
    /// TOML file with operations (`ops = [ { hostname = "x" }, ... ]`) and these settings;
    /// its operations run before those on the command line.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
}

/// Which filesystem inside the image.
#[derive(Args, Debug, Clone)]
pub struct Sel {
    /// The image file (format detected by content).
    pub image: PathBuf,
    /// Partition number N (1-based as /dev/sdaN) or LVM logical volume (VG/LV, /dev/VG/LV,
    /// /dev/mapper/VG-LV). Default: the only filesystem, or the OS root.
    #[arg(short = 'p', long = "partition", value_name = "N|VG/LV")]
    pub partition: Option<VolumeSel>,
}

/// The verbs.
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create an empty sparse image, or a thin copy-on-write overlay of a base image.
    Create {
        /// The new image file (refused if it exists).
        image: PathBuf,
        /// Virtual size, e.g. 4G, 512M (default with --backing: the base's size).
        size: Option<String>,
        /// Output format.
        #[arg(short = 'f', long, value_enum, default_value = "qcow2")]
        format: Fmt,
        /// Base image: the new image is an overlay; the base is never written.
        #[arg(short = 'b', long, value_name = "BASE")]
        backing: Option<PathBuf>,
        /// qcow2 cluster size (512 to 2M; small clusters keep clones tiny).
        #[arg(long, value_name = "BYTES")]
        cluster_size: Option<String>,
        /// Format options: static=on (VDI), subformat=fixed|dynamic (VHD, VHDX), block_size=SIZE (VHDX),
        /// force_size=on (VHD: size exact, no CHS rounding), azure=on (VHD: fixed, size rounded up
        /// to a whole MiB and forced), subformat=monolithicSparse|streamOptimized (VMDK),
        /// compression_type=zlib|zstd and extended_l2=on (qcow2: 32 subclusters per cluster,
        /// clusters of 16K or more).
        #[arg(short = 'o', long = "options", value_name = "KEY=VALUE,...")]
        options: Option<String>,
    },
    /// Create many thin overlays of one base at once: OUT/<base>-0001.qcow2 ...
    Clone {
        /// The base image (opened read-only, verified once).
        base: PathBuf,
        /// How many clones.
        #[arg(short = 'n', long)]
        count: usize,
        /// Output directory (created if missing).
        #[arg(short = 'o', long)]
        out: PathBuf,
        /// qcow2 cluster size of the overlays.
        #[arg(long, value_name = "BYTES")]
        cluster_size: Option<String>,
    },
    /// Show format, sizes, backing chain, partitions and filesystems.
    Info {
        /// The image file.
        image: PathBuf,
    },
    /// List a directory inside the image.
    Ls {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// Path inside the filesystem.
        #[arg(default_value = "/")]
        path: String,
        /// Long listing (mode, owner, size, time).
        #[arg(short = 'l', long)]
        long: bool,
        /// Recurse into directories.
        #[arg(short = 'R', long)]
        recursive: bool,
    },
    /// Print files inside the image to standard output.
    Cat {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// Paths inside the filesystem.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Copy host files and directory trees into a directory of the image (keeps modes, owners,
    /// times, links, xattrs).
    CopyIn {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// Host files or directories, then the destination directory in the image.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Copy files and trees out of the image into a host directory.
    CopyOut {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// Paths in the image, then the host destination directory.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Create directories inside the image.
    Mkdir {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// Directories to create.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Create missing parents; no error if it exists.
        #[arg(short = 'P', long = "parents")]
        parents: bool,
        /// Permission bits (octal).
        #[arg(short = 'm', long, default_value = "0755")]
        mode: String,
    },
    /// Remove files (and with -r, directory trees) inside the image.
    Rm {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// Paths to remove.
        #[arg(required = true)]
        paths: Vec<String>,
        /// Remove directories and their contents.
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Ignore missing paths.
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Change permission bits (octal) of paths inside the image.
    Chmod {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// Octal mode, e.g. 0644.
        mode: String,
        /// Paths.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Change owner (USER[:GROUP], ids or names from the image's /etc/passwd and /etc/group).
    Chown {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// USER[:GROUP].
        owner: String,
        /// Paths.
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Create a link inside the image (symbolic with -s).
    Ln {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// Make a symbolic link.
        #[arg(short = 's', long)]
        symbolic: bool,
        /// What the link points to.
        target: String,
        /// The link to create.
        link: String,
    },
    /// Move or rename inside the image.
    Mv {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// Source path.
        src: String,
        /// Destination path (or existing directory).
        dst: String,
    },
    /// Create a filesystem on a partition or the whole disk.
    Mkfs {
        /// Image and partition.
        #[command(flatten)]
        sel: Sel,
        /// ext4, ext3, ext2, vfat, fat12, fat16 or fat32.
        #[arg(short = 't', long = "type")]
        fs_type: String,
        /// Volume label.
        #[arg(short = 'L', long)]
        label: Option<String>,
    },
    /// Create a partition table and/or add partitions.
    Part {
        /// The image file.
        image: PathBuf,
        /// Create a new (empty) GPT first.
        #[arg(long, conflicts_with = "mbr")]
        gpt: bool,
        /// Create a new (empty) MBR table first.
        #[arg(long)]
        mbr: bool,
        /// Add a partition: size=SIZE|rest,type=linux|esp|swap|fat32|lvm|bios-boot|GUID|0xNN,name=N,bootable
        #[arg(long = "add", value_name = "SPEC")]
        add: Vec<String>,
    },
    /// Inspect the operating systems on an image: distro, version, arch, hostname, packages,
    /// users, kernels and hypervisor drivers, network configuration, services.
    Inspect {
        /// The image file.
        image: PathBuf,
        /// Do not list installed applications.
        #[arg(long)]
        no_applications: bool,
        /// Print XML with virt-inspector's element names.
        #[arg(long, conflicts_with = "json")]
        xml: bool,
    },
    /// Customize an image in place, like virt-customize but without a helper VM (the image is
    /// usually an overlay: `diskfab create vm.qcow2 -b base.qcow2` first).
    Customize {
        /// Image and partition (default: the OS root).
        #[command(flatten)]
        sel: Sel,
        /// The operations.
        #[command(flatten)]
        ops: crate::opargs::OpArgs,
        /// Shared settings.
        #[command(flatten)]
        settings: CustomizeSettings,
        /// Only show what would change; the image is opened read-only.
        #[arg(long)]
        dry_run: bool,
    },
    /// Stamp out customized clones: one thin overlay per row of a CSV, `{{column}}` templates in
    /// operation arguments. Analyses once and replays the block writes per clone.
    Stamp {
        /// The base image (opened read-only, never modified).
        base: PathBuf,
        /// CSV with a header row; every column is a template variable.
        #[arg(long, value_name = "CSV")]
        instances: PathBuf,
        /// Output directory: _common.qcow2 (shared writes) and one <name>.qcow2 per row.
        #[arg(short = 'o', long, value_name = "DIR")]
        out: PathBuf,
        /// The operations.
        #[command(flatten)]
        ops: crate::opargs::OpArgs,
        /// Shared settings.
        #[command(flatten)]
        settings: CustomizeSettings,
        /// Clone file names (and the instance names in reports).
        #[arg(long, value_name = "TEMPLATE", default_value = "{{name}}")]
        name_template: String,
        /// Worker threads (default: the number of CPUs).
        #[arg(short = 'j', long)]
        jobs: Option<usize>,
        /// Replace the clones in an existing output directory of another job.
        #[arg(long)]
        force: bool,
        /// Partition holding the guest root (default: detected).
        #[arg(short = 'p', long = "partition", value_name = "N|VG/LV")]
        partition: Option<VolumeSel>,
        /// Also run each instance's full customization and check the replayed writes equal it.
        #[arg(long, hide = true)]
        verify_replay: bool,
    },
    /// Compare the files of two images (any formats and filesystems): added, removed, modified.
    /// Clones of one base compare only what was written above it.
    Diff {
        /// Image A.
        a: PathBuf,
        /// Image B.
        b: PathBuf,
        /// Print CSV (status,type,path,details).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// Show a unified diff of small text files.
        #[arg(long)]
        content: bool,
        /// Compare extended attributes.
        #[arg(long)]
        xattrs: bool,
        /// Compare modification times.
        #[arg(long)]
        times: bool,
        /// Partition of A (default: the OS root / only filesystem).
        #[arg(long = "partition", short = 'p', value_name = "N|VG/LV")]
        partition: Option<VolumeSel>,
        /// Partition of B (default: as for A).
        #[arg(long = "partition-b", value_name = "N|VG/LV")]
        partition_b: Option<VolumeSel>,
        /// Compare every file's contents even for clones of one base.
        #[arg(long, hide = true)]
        no_fast_path: bool,
    },
    /// Make, show and apply deltas: the file-level difference of two images as one verifiable file.
    Delta {
        /// What to do.
        #[command(subcommand)]
        cmd: DeltaCmd,
    },
    /// Build an image from a TOML recipe: base + deltas + customization ops → output
    /// (reproducible: the same recipe and inputs give the same bytes).
    Build {
        /// The recipe.
        recipe: PathBuf,
        /// Output file (default: the recipe's `output`).
        #[arg(short = 'o', long)]
        out: Option<PathBuf>,
        /// Output format (default: the recipe's `format`, else qcow2).
        #[arg(short = 'O', long, value_enum)]
        format: Option<Fmt>,
    },
    /// A catalog of images: inspect once, record, search by content (SQLite).
    Catalog {
        /// Catalog file (default: $XDG_DATA_HOME/diskfab/catalog.db).
        #[arg(long, value_name = "PATH", global = true)]
        catalog: Option<PathBuf>,
        /// What to do.
        #[command(subcommand)]
        cmd: CatalogCmd,
    },
    /// Convert an image to another format (sparse: zero and unallocated ranges are not written).
    Convert {
        /// Source image (any supported format, with its backing chain).
        src: PathBuf,
        /// New output image (refused if it exists).
        dst: PathBuf,
        /// Output format.
        #[arg(
            short = 'O',
            long = "output-format",
            value_enum,
            default_value = "qcow2"
        )]
        format: Fmt,
        /// Format options: cluster_size=SIZE, backing=BASE (write only what differs from BASE),
        /// static=on (VDI), subformat=fixed|dynamic (VHD, VHDX), block_size=SIZE (VHDX), force_size=on
        /// (VHD: size exact, no CHS rounding), azure=on (VHD: fixed, size rounded up to a whole MiB
        /// and forced), subformat=monolithicSparse|streamOptimized (VMDK), compression_type=zlib|zstd
        /// and extended_l2=on (qcow2: 32 subclusters per cluster).
        #[arg(short = 'o', long = "options", value_name = "KEY=VALUE,...")]
        options: Option<String>,
        /// Show a progress bar (only on a terminal).
        #[arg(short = 'p', long)]
        progress: bool,
        /// Compress qcow2 clusters (zlib, or zstd with -o compression_type=zstd); with -O vmdk, write
        /// a streamOptimized VMDK.
        #[arg(short = 'c', long)]
        compress: bool,
        /// Do not fsync the output (the default syncs it before exiting): faster, but a host crash
        /// soon after can leave it incomplete. qemu-img convert's default (-t unsafe) is the same.
        #[arg(long)]
        no_sync: bool,
    },
    /// Compare the guest-visible contents of two images (exit 0 identical, 1 different).
    Compare {
        /// First image.
        a: PathBuf,
        /// Second image.
        b: PathBuf,
    },
    /// Check an image's metadata for corruptions and leaks (exit 0 clean, 1 could not check, 2
    /// corrupt, 3 leaks only).
    Check {
        /// The image file.
        image: PathBuf,
    },
    /// Show which guest ranges hold data, zeroes or nothing, and which layer of the chain has them.
    Map {
        /// The image file.
        image: PathBuf,
    },
    /// Size a conversion would need: required (the source's data plus metadata) and fully
    /// allocated.
    Measure {
        /// Source image.
        src: PathBuf,
        /// Output format.
        #[arg(
            short = 'O',
            long = "output-format",
            value_enum,
            default_value = "qcow2"
        )]
        format: Fmt,
        /// qcow2 cluster size.
        #[arg(long, value_name = "BYTES")]
        cluster_size: Option<String>,
    },
    /// Print the command reference as Markdown (used to build docs/cli.md).
    #[command(hide = true)]
    Docs,
}
