//! Tests of the allocator as a whole (std is available here).

mod basic;
mod fork_window;
mod oom;
mod retention;
mod stress;

use crate::test_api as api;
