//! Tests of the allocator as a whole (std is available here).

mod basic;
mod oom;
mod retention;
mod stress;
