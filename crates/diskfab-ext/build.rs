//! Generates bindings to libext2fs (e2fsprogs) and links it with com_err and e2p.
fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rustc-link-lib=ext2fs");
    println!("cargo:rustc-link-lib=com_err");
    println!("cargo:rustc-link-lib=e2p");
    let b = bindgen::Builder::default()
        .header("wrapper.h")
        .allowlist_function("ext2fs_.*")
        .allowlist_function("error_message")
        .allowlist_function("e2p_feature2string")
        .allowlist_function("io_channel_.*")
        .allowlist_type("ext2_.*|struct_.*|io_.*")
        .allowlist_var("EXT2_.*|EXT3_.*|EXT4_.*|LINUX_S_.*|IO_FLAG_.*|E2P_.*|BMAP_.*|BLOCK_FLAG_.*|BLOCK_ABORT|DIRENT_.*|CHANNEL_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate()
        .expect("bindgen over <ext2fs/ext2fs.h> failed: install libext2fs-dev and libclang-dev (scripts/deps.sh)");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"));
    b.write_to_file(out.join("bindings.rs"))
        .expect("write bindings");
}
