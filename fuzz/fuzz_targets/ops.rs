//! libFuzzer target: the input is a program of allocator operations
//! (`mirs_fuzz::run`, which checks every step against a model).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    mirs_fuzz::run(data);
});
