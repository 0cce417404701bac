//! The C ABI. `prefixed` is always exported (`mirs_*`, declared in
//! `include/mirs.h`); `libc_names` exports `malloc`, `free`, ... and glibc's
//! aliases with the `override` feature (libmirs.so / libmirs.a).
//!
//! | call                          | answer on bad input                           |
//! |-------------------------------|-----------------------------------------------|
//! | malloc, calloc, realloc, ...  | NULL with `errno = ENOMEM` (also > PTRDIFF_MAX, overflow) |
//! | posix_memalign                | `EINVAL` returned (errno untouched) / `ENOMEM` returned and in errno (glibc); `*out` untouched |
//! | aligned_alloc                 | NULL, `EINVAL` for a non-power-of-two alignment |
//! | realloc(p, 0)                 | frees `p`, returns NULL (glibc)               |
//! | realloc of a foreign pointer  | NULL, `errno = EINVAL`, nothing freed         |
//! | free of a foreign / interior / double-freed pointer | ignored, counted, reported (one line on stderr, rate-limited; `MIRS_VERBOSE=0` silences) |

pub mod prefixed;

#[cfg(feature = "override")]
mod libc_names;

#[cfg(all(
    feature = "override",
    feature = "hosted",
    target_os = "linux",
    target_arch = "x86_64"
))]
mod cxx_new;

#[cfg(not(feature = "hosted"))]
pub mod embedder;
