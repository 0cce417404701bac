#[global_allocator]
static GLOBAL: mirs::Mirs = mirs::Mirs;

fn main() {
    mirs_bench_rust::main("mirs");
}
