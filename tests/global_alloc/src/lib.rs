//! Every allocation of this crate's test binary (libtest, std, the tests)
//! goes through mirs: the two lines a Rust user adds.

#[global_allocator]
static GLOBAL: mirs::Mirs = mirs::Mirs;

#[cfg(test)]
mod tests;
