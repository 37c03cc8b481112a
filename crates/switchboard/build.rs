//! How the `switchboard` binary is linked, so that a running server keeps few of its pages
//! resident (README, "Memory"):
//!
//! - The functions a server runs — at start and on the common requests, as recorded by
//!   `bench/hot-code.sh` into `hot-code.txt` — are laid out next to each other. The kernel maps a
//!   binary's code 64 kB around each page a process touches, so scattered functions drag in much
//!   code that never runs.
//! - Relative relocations are packed (`DT_RELR`): the loader reads some 20 kB of them at start
//!   instead of 1.7 MB.
//!
//! Both are options of lld, the linker Rust uses on x86-64 Linux since 1.90, and the second needs
//! a C library that understands packed relocations (glibc 2.36). Anywhere else — another target,
//! an older toolchain, a linker of one's own, a debug build — the binary links as usual. Names in
//! `hot-code.txt` that a build does not have (the list is older than the code) are passed over.

// A build script's input is cargo's environment, not the server's settings.
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=hot-code.txt");
    for var in ["CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER", "CARGO_ENCODED_RUSTFLAGS"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let rustflags = var("CARGO_ENCODED_RUSTFLAGS");
    let own_linker = !var("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
        || rustflags.contains("linker")
        || rustflags.contains("fuse-ld");
    if var("TARGET") != "x86_64-unknown-linux-gnu" || var("PROFILE") != "release" || own_linker || !lld_is_default() {
        return;
    }
    let list = Path::new(&var("CARGO_MANIFEST_DIR")).join("hot-code.txt");
    if list.is_file() {
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}", list.display());
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
    if libc_reads_packed_relocations() {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether this rustc links x86-64 Linux binaries with its own lld (the default since 1.90).
fn lld_is_default() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else { return false };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = String::from_utf8_lossy(&out.stdout);
    let mut numbers = version.split_whitespace().nth(1).unwrap_or_default().split('.');
    let major: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let minor: u32 = numbers.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    (major, minor) >= (1, 90)
}

/// Whether the C library the binary will run against supports `DT_RELR` (it then defines the
/// `GLIBC_ABI_DT_RELR` version that lld asks for).
fn libc_reads_packed_relocations() -> bool {
    ["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/libc.so.6", "/usr/lib64/libc.so.6", "/usr/lib/libc.so.6"]
        .iter()
        .find_map(|path| std::fs::read(path).ok())
        .is_some_and(|bytes| bytes.windows(17).any(|w| w == b"GLIBC_ABI_DT_RELR"))
}
