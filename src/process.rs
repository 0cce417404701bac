//! Process load and exit (hosted): the `.init_array` and `.fini_array`
//! hooks, which reach down to the thread layer's one-time init and to the
//! statistics report. Neither uses `atexit` or a constructor that could
//! allocate. (Embedded, and a program whose malloc runs before the library
//! is initialised, get the same init lazily from the first heap creation,
//! `thread::process_init`; embedded has no exit hook.)

use crate::report;
use crate::support::options::{self, Opt};
use crate::thread;

/// Read the options and register the thread callbacks when the library is
/// loaded, so `MIRS_VERBOSE` holds even before the first allocation.
#[used]
#[link_section = ".init_array"]
static AT_LOAD: extern "C" fn() = {
    extern "C" fn at_load() {
        thread::process_init();
    }
    at_load
};

/// At process exit: the statistics asked for by `MIRS_SHOW_STATS` (text)
/// and `MIRS_STATS_JSON` (JSON). `.fini_array` runs after `main` returns or
/// `exit` is called.
#[used]
#[link_section = ".fini_array"]
static AT_EXIT: extern "C" fn() = {
    extern "C" fn at_exit() {
        if options::get(Opt::ShowStats) != 0 {
            report::print_text();
        }
        if options::get(Opt::StatsJson) != 0 {
            report::print_json();
        }
    }
    at_exit
};
