#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn main() {
    mirs_bench_rust::main("system");
}
