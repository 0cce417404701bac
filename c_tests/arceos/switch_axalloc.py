#!/usr/bin/env python3
"""Switch ArceOS's global allocator (crates axalloc, axtask, axruntime
0.3.0-preview.3) to mirs, in place, over copies of the published sources.
docs/arceos.md (section 9) describes each edit.

  switch_axalloc.py AXALLOC_DIR AXTASK_DIR AXRUNTIME_DIR GLUE_DIR

- axalloc, src/default_impl.rs: a hook table (`ByteHooks`, set once by
  `set_byte_hooks`) that `GlobalAlloc::{alloc, dealloc, realloc}` try first;
  without hooks (early boot), or when a hook declines (out of memory, a
  block of the boot heap), the stock byte allocator serves as before.
- axtask, src/api.rs and src/run_queue.rs: `set_task_exit_hook`, run by
  `exit_current` (interrupts and preemption off) just before the final
  switch.
- axruntime: a dependency on mirs-arceos (GLUE_DIR, feature `global`),
  `mirs_arceos::global::enable()` once every CPU is initialised, just before
  `main` (after the constructors), and
  `mirs_arceos::global::timer_tick()` in the timer interrupt (a test hook).

Every edit checks that the text it changes is there, so crates that have
moved on fail loudly instead of being half switched. Nothing of ArceOS is
kept in this repository: this script edits the fetched sources.
"""

import sys
import tomllib
from pathlib import Path

MARK = "mirs-arceos"


def fail(msg):
    sys.exit(f"switch_axalloc: {msg}")


def replace_once(text, old, new, where):
    if text.count(old) != 1:
        fail(f"{where}: expected exactly one `{old.strip().splitlines()[0]}`")
    return text.replace(old, new)


def edit(path, pairs):
    text = path.read_text()
    if "mirs" in text:
        fail(f"{path} is already switched")
    for old, new in pairs:
        text = replace_once(text, old, new, str(path))
    path.write_text(text)


# ---------------------------------------------------------------- axalloc

AXALLOC_HOOKS = '''
// ---- mirs (c_tests/arceos/switch_axalloc.py): the byte allocations go to
// the allocator installed with `set_byte_hooks` (mirs-arceos's `global`).

/// A byte allocator tried before the stock one.
pub struct ByteHooks {
    /// A block for `layout`, or NULL: the stock allocator serves it.
    pub alloc: unsafe fn(Layout) -> *mut u8,
    /// Frees the block and returns true when it is the hook's, else false
    /// (the stock allocator's block: it frees it).
    pub dealloc: unsafe fn(*mut u8, Layout) -> bool,
    /// `Some(new block or NULL)` when the block is the hook's, else None.
    pub realloc: unsafe fn(*mut u8, Layout, usize) -> Option<*mut u8>,
}

static BYTE_HOOKS: core::sync::atomic::AtomicPtr<ByteHooks> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// Install the byte allocator every later allocation tries first.
pub fn set_byte_hooks(hooks: &'static ByteHooks) {
    BYTE_HOOKS.store(hooks as *const ByteHooks as *mut ByteHooks, core::sync::atomic::Ordering::Release);
}

#[inline(always)]
fn byte_hooks() -> Option<&'static ByteHooks> {
    // SAFETY: only `set_byte_hooks` stores here, a `&'static ByteHooks`.
    unsafe { BYTE_HOOKS.load(core::sync::atomic::Ordering::Acquire).as_ref() }
}
// ---- end mirs

unsafe impl GlobalAlloc for GlobalAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if let Some(hooks) = byte_hooks() {
            // SAFETY: the caller's contract is the hook's.
            let p = unsafe { (hooks.alloc)(layout) };
            if !p.is_null() {
                return p;
            }
        }
'''

AXALLOC_DEALLOC_OLD = '''    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
'''
AXALLOC_DEALLOC_NEW = '''    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if let Some(hooks) = byte_hooks() {
            // SAFETY: the caller's contract is the hook's.
            if let Some(p) = unsafe { (hooks.realloc)(ptr, layout, new_size) } {
                return p;
            }
        }
        // A block of the stock allocator: moved (to the hook's allocator
        // when there is one), as GlobalAlloc's default realloc does.
        // SAFETY: the caller guarantees a valid layout of `new_size`.
        let new_layout = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: forwarded contract.
        let new = unsafe { GlobalAlloc::alloc(self, new_layout) };
        if !new.is_null() {
            // SAFETY: both blocks hold at least min(old, new) bytes and differ.
            unsafe { core::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size)) };
            // SAFETY: `ptr` is the caller's block of `layout`.
            unsafe { GlobalAlloc::dealloc(self, ptr, layout) };
        }
        new
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if let Some(hooks) = byte_hooks() {
            // SAFETY: the caller's contract is the hook's.
            if unsafe { (hooks.dealloc)(ptr, layout) } {
                return;
            }
        }
'''


def switch_axalloc(d):
    edit(d / "src/default_impl.rs", [
        ("\nunsafe impl GlobalAlloc for GlobalAllocator {\n    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {\n",
         AXALLOC_HOOKS),
        (AXALLOC_DEALLOC_OLD, AXALLOC_DEALLOC_NEW),
    ])
    edit(d / "src/lib.rs", [
        ("pub use imp::{GlobalAllocator, global_add_memory, global_init};\n",
         "pub use imp::{GlobalAllocator, global_add_memory, global_init};\n"
         "// mirs (switch_axalloc.py)\n#[cfg(not(feature = \"hv\"))]\npub use imp::{ByteHooks, set_byte_hooks};\n"),
    ])


# ---------------------------------------------------------------- axtask

AXTASK_HOOK = '''
// ---- mirs (c_tests/arceos/switch_axalloc.py): run when a task exits.
static TASK_EXIT_HOOK: core::sync::atomic::AtomicUsize = core::sync::atomic::AtomicUsize::new(0);

/// Run `hook` in every task's exit, on its CPU with interrupts and
/// preemption off, after the joiner is woken and the task handed to this
/// CPU's GC task, before the final switch.
pub fn set_task_exit_hook(hook: fn()) {
    TASK_EXIT_HOOK.store(hook as usize, core::sync::atomic::Ordering::Release);
}

pub(crate) fn run_task_exit_hook() {
    let f = TASK_EXIT_HOOK.load(core::sync::atomic::Ordering::Acquire);
    if f != 0 {
        // SAFETY: only `set_task_exit_hook` stores here, a `fn()` as usize.
        let f: fn() = unsafe { core::mem::transmute::<usize, fn()>(f) };
        f();
    }
}
// ---- end mirs

/// The idle task routine.
'''

# The hook runs last before the final switch: the joiner's wake-up and the
# hand-over to the GC task (which runs on this CPU, so not before the switch)
# allocate, and do so on the task's own heap; after the hook an allocation
# of the exiting task goes to a per-CPU heap (hook identity) or to a heap
# made and given back for it alone (mirs `thread-local`).
AXTASK_EXIT_OLD = '''                WAIT_FOR_EXIT.current_ref_mut_raw().wake();
            }

            // Schedule to next task.
            self.inner.resched();
'''
AXTASK_EXIT_NEW = '''                WAIT_FOR_EXIT.current_ref_mut_raw().wake();
            }

            // mirs (switch_axalloc.py): the exit hook (the task's heap).
            crate::api::run_task_exit_hook();

            // Schedule to next task.
            self.inner.resched();
'''


def switch_axtask(d):
    edit(d / "src/api.rs", [("\n/// The idle task routine.\n", AXTASK_HOOK)])
    edit(d / "src/run_queue.rs", [(AXTASK_EXIT_OLD, AXTASK_EXIT_NEW)])


# ---------------------------------------------------------------- axruntime


def switch_axruntime(d, glue):
    manifest = d / "Cargo.toml"
    text = manifest.read_text()
    if MARK in text:
        fail(f"{manifest} already depends on {MARK}")
    text += (
        f"\n[dependencies.{MARK}]\n"
        f'path = "{glue}"\n'
        "default-features = false\n"
        'features = ["global"]\n'
    )
    cfg = tomllib.loads(text)
    assert cfg["dependencies"][MARK]["features"] == ["global"]
    manifest.write_text(text)
    edit(d / "src/lib.rs", [
        # After every CPU is initialised: a secondary CPU allocates in
        # axtask::init_scheduler_secondary before its idle task (and, with
        # `tls`, its thread pointer) is set, and mirs with `thread-local`
        # reads the thread pointer.
        ("\n    unsafe { main() };\n",
         "\n    // mirs (switch_axalloc.py): the global allocator is mirs from here on\n"
         "    // (every CPU has its init or idle task, and so its thread pointer).\n"
         "    mirs_arceos::global::enable();\n\n    unsafe { main() };\n"),
        ("        update_timer();\n",
         "        update_timer();\n        // mirs (switch_axalloc.py): the interrupt-context test hook.\n"
         "        mirs_arceos::global::timer_tick();\n"),
    ])


def main():
    if len(sys.argv) != 5:
        sys.exit(__doc__)
    axalloc, axtask, axruntime = (Path(a) for a in sys.argv[1:4])
    glue = Path(sys.argv[4]).resolve()
    if not (glue / "Cargo.toml").is_file():
        fail(f"{glue} is not the mirs-arceos crate")
    switch_axalloc(axalloc)
    switch_axtask(axtask)
    switch_axruntime(axruntime, glue)
    print(f"switch_axalloc: axalloc, axtask and axruntime now allocate through mirs ({glue})")


if __name__ == "__main__":
    main()
