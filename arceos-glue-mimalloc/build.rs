//! Builds C mimalloc for ArceOS into `libmimalloc_arceos_c.a`:
//!
//! - the sources: `MIMALLOC_ARCEOS_SRC`, a mimalloc v2 tree (include/, src/),
//!   copied to `$OUT_DIR/mimalloc` and patched there (the registry copy is
//!   never touched);
//! - the patch: `_mi_ptr_segment` treats a pointer that is negative as an
//!   `intptr_t` as NULL (right on Linux, where such addresses are the
//!   kernel's), and every ArceOS address is one; it tests `p == NULL` instead;
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

    let src = PathBuf::from(env("MIMALLOC_ARCEOS_SRC").expect(
        "mimalloc-arceos: set MIMALLOC_ARCEOS_SRC to a mimalloc v2 source tree \
         (libmimalloc-sys's c_src/mimalloc/v2)",
    ));
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
    let internal = tree.join("include/mimalloc/internal.h");
    let text = std::fs::read_to_string(&internal).unwrap();
    let old = "return ((intptr_t)segment <= 0 ? NULL : segment);";
    assert_eq!(
        text.matches(old).count(),
        1,
        "mimalloc-arceos: {} no longer holds `{old}`: the segment-lookup patch needs updating",
        src.display()
    );
    std::fs::write(&internal, text.replace(old, "return (p == NULL ? NULL : segment);  /* mimalloc-arceos: kernel addresses are negative */")).unwrap();

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
            "-DMI_DEFAULT_ARENA_RESERVE=0",
            "-Wno-error",
            "-w",
        ])
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
