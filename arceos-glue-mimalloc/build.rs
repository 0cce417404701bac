//! Builds C mimalloc for ArceOS into `libmimalloc_arceos_c.a`:
//!
//! - the sources: `MIMALLOC_ARCEOS_SRC`, a mimalloc v2 tree (include/, src/),
//!   or with feature `v3` `MIMALLOC_ARCEOS_SRC_V3`, a v3 tree; copied to
//!   `$OUT_DIR/mimalloc` and patched there (the registry copy is never
//!   touched);
//! - the patches, for ArceOS's kernel addresses (physical memory mapped at
//!   0xffff_8000_0000_0000 on x86_64 and as high elsewhere): v2's
//!   `_mi_ptr_segment` treats a pointer that is negative as an `intptr_t` as
//!   NULL (right on Linux, where such addresses are the kernel's) and tests
//!   `p == NULL` instead; v3's flat page map (one byte per 64 KiB of the
//!   address space below 2^vabits) is indexed by the low 32 bits of an
//!   address and its bounds check compares the high bits with those of the
//!   memory the provider gave (`c/compat.h`);
//! - compiled by `gcc` (or `MIMALLOC_ARCEOS_CC`) with
//!   `MIMALLOC_ARCEOS_CFLAGS` (axlibc's flags and include directories, set by
//!   the harness) plus, from this crate, `c/compat.h` (force-included) and
//!   `c/include/` (what axlibc's headers lack) and `c/mimalloc_arceos.c`
//!   (mimalloc's sources, the OS primitives and the C names);
//! - `MIMALLOC_ARCEOS_PROVIDER_MAX_MB` into `$OUT_DIR/provider_cap.rs`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn env(name: &str) -> Option<String> {
    println!("cargo:rerun-if-env-changed={name}");
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{}: {e}", from.display())) {
        let entry = entry.unwrap();
        let dest = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &dest);
        } else {
            std::fs::copy(entry.path(), &dest).unwrap();
        }
    }
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let here = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());

    let mb: usize = env("MIMALLOC_ARCEOS_PROVIDER_MAX_MB")
        .map(|v| {
            v.trim().parse().unwrap_or_else(|_| {
                panic!("MIMALLOC_ARCEOS_PROVIDER_MAX_MB={v}: a number of MiB is needed")
            })
        })
        .unwrap_or(0);
    std::fs::write(
        out.join("provider_cap.rs"),
        format!(
            "/// Bytes the page provider may hold at once (`MIMALLOC_ARCEOS_PROVIDER_MAX_MB`; 0: no cap).\n\
             pub const PROVIDER_CAP_BYTES: usize = {};\n",
            mb * 1024 * 1024
        ),
    )
    .unwrap();

    let v3 = std::env::var_os("CARGO_FEATURE_V3").is_some();
    let (var, tree_name) = if v3 {
        ("MIMALLOC_ARCEOS_SRC_V3", "v3")
    } else {
        ("MIMALLOC_ARCEOS_SRC", "v2")
    };
    let src = PathBuf::from(env(var).unwrap_or_else(|| {
        panic!(
            "mimalloc-arceos: set {var} to a mimalloc {tree_name} source tree \
             (libmimalloc-sys's c_src/mimalloc/{tree_name})"
        )
    }));
    let cflags: Vec<String> = env("MIMALLOC_ARCEOS_CFLAGS")
        .map(|v| v.split_whitespace().map(String::from).collect())
        .unwrap_or_default();
    let cc = env("MIMALLOC_ARCEOS_CC").unwrap_or_else(|| "gcc".into());
    for f in ["c/compat.h", "c/mimalloc_arceos.c", "c/include/wchar.h"] {
        println!("cargo:rerun-if-changed={f}");
    }

    // Copy and patch.
    let tree = out.join("mimalloc");
    let _ = std::fs::remove_dir_all(&tree);
    copy_tree(&src.join("include"), &tree.join("include"));
    copy_tree(&src.join("src"), &tree.join("src"));
    let patches: &[(&str, &str, &str)] = if v3 {
        &[
            (
                "include/mimalloc/internal.h",
                "return (size_t)((uintptr_t)p >> MI_ARENA_SLICE_SHIFT);",
                "return (size_t)(((uintptr_t)p & ((MI_ZU(1) << MIMALLOC_ARCEOS_VA_BITS) - 1)) >> MI_ARENA_SLICE_SHIFT);  /* mimalloc-arceos */",
            ),
            (
                "src/page-map.c",
                "if mi_unlikely(p >= mi_page_map_max_address) return NULL;",
                "if mi_unlikely((MIMALLOC_ARCEOS_HIGH(p) | 1) != mimalloc_arceos_high_bits) return NULL;  /* mimalloc-arceos */",
            ),
        ]
    } else {
        &[(
            "include/mimalloc/internal.h",
            "return ((intptr_t)segment <= 0 ? NULL : segment);",
            "return (p == NULL ? NULL : segment);  /* mimalloc-arceos: kernel addresses are negative */",
        )]
    };
    for (file, old, new) in patches {
        let path = tree.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        // v3's page-map.c holds the bounds check twice (flat and two-level map).
        assert!(
            text.contains(old),
            "mimalloc-arceos: {} no longer holds `{old}`: the patch needs updating",
            path.display()
        );
        std::fs::write(&path, text.replace(old, new)).unwrap();
    }

    // Compile and archive.
    let obj = out.join("mimalloc_arceos.o");
    let status = Command::new(&cc)
        .args(&cflags)
        .args([
            "-DNDEBUG",
            "-DMI_DEBUG=0",
            "-DMI_BUILD_RELEASE",
            "-DMI_STAT=0",
            // 4 MiB segments (mimalloc's 64-bit default is 32 MiB), taken
            // from the page provider one by one: no arena reservations.
            "-DMI_SEGMENT_SHIFT=22",
            "-DMI_DEFAULT_VIRTUAL_ADDRESS_BITS=32",
            "-Wno-error",
            "-w",
        ])
        // v3 takes its pages from arenas. Without one (reserve 0) every
        // page is the provider's, and a dead thread's pages are reclaimed by
        // no other (only arena pages are); its default reserve (1 GiB, a
        // quarter without virtual reserve) exceeds any cap here: 128 MiB
        // gives the smallest arena, 32 MiB, and past it pages come from the
        // provider. Its 4 MiB "large" pages (one per size class and thread
        // for blocks of 64-512 KiB) took the stress to the 64 MiB cap at
        // 5.5 MiB live: off, as mimalloc's own note on the option suggests
        // for random large sizes; such blocks get a page each.
        .args(if v3 {
            &[
                "-DMI_DEFAULT_ARENA_RESERVE=131072",
                "-DMI_ENABLE_LARGE_PAGES=0",
            ][..]
        } else {
            &["-DMI_DEFAULT_ARENA_RESERVE=0"][..]
        })
        .arg(format!("-I{}", here.join("c/include").display()))
        .arg("-include")
        .arg(here.join("c/compat.h"))
        .arg(format!("-I{}", tree.join("include").display()))
        .arg(format!("-I{}", tree.join("src").display()))
        .arg("-c")
        .arg(here.join("c/mimalloc_arceos.c"))
        .arg("-o")
        .arg(&obj)
        .status()
        .unwrap_or_else(|e| panic!("mimalloc-arceos: cannot run {cc}: {e}"));
    assert!(
        status.success(),
        "mimalloc-arceos: {cc} failed on c/mimalloc_arceos.c"
    );
    let lib = out.join("libmimalloc_arceos_c.a");
    let _ = std::fs::remove_file(&lib);
    let status = Command::new("ar")
        .arg("rcs")
        .arg(&lib)
        .arg(&obj)
        .status()
        .expect("ar runs");
    assert!(status.success(), "mimalloc-arceos: ar failed");
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=mimalloc_arceos_c");
}
