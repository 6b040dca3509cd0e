//! `cnm-fuzz TARGET [FILE…]`: feeds each file (or standard input) to a
//! fuzz target once — a panic is a finding. Built by `fuzz/run` (with
//! `--cfg cnm_afl`, AFL++'s instrumentation and its runtime linked in), it
//! runs under `afl-fuzz` in persistent mode instead, one input from
//! standard input per round. The cfg is not a Cargo feature on purpose:
//! `--all-features` must build without AFL++'s runtime.

use std::io::Read;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(target) = args.first().and_then(|name| cnm_fuzz::target(name)) else {
        let names: Vec<&str> = cnm_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("usage: cnm-fuzz TARGET [FILE…]; targets: {}", names.join(", "));
        return ExitCode::from(2);
    };
    #[cfg(cnm_afl)]
    if args.len() == 1 {
        afl::fuzz(target);
        return ExitCode::SUCCESS;
    }
    if args.len() == 1 {
        let mut input = Vec::new();
        if let Err(e) = std::io::stdin().read_to_end(&mut input) {
            eprintln!("read standard input: {e}");
            return ExitCode::FAILURE;
        }
        (target.run)(&input);
    }
    for file in &args[1..] {
        match std::fs::read(file) {
            Ok(input) => (target.run)(&input),
            Err(e) => {
                eprintln!("{file}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

/// The AFL++ runtime's persistent mode (`afl-compiler-rt.o`, linked by `fuzz/run`).
#[cfg(cnm_afl)]
mod afl {
    use std::io::Read;

    /// Tells afl-fuzz that the binary loops over inputs itself.
    #[used]
    static PERSISTENT: [u8; 23] = *b"##SIG_AFL_PERSISTENT##\0";
    /// Tells afl-fuzz that the fork server starts at `__afl_manual_init`.
    #[used]
    static DEFERRED: [u8; 26] = *b"##SIG_AFL_DEFER_FORKSRV##\0";

    unsafe extern "C" {
        fn __afl_persistent_loop(max: u32) -> i32;
        fn __afl_manual_init();
    }

    /// Rounds before the process is replaced (bounds what a leak can grow to).
    const ROUNDS: u32 = 10_000;

    /// Runs `target` on each input afl-fuzz hands over; a panic aborts (a crash for AFL).
    pub fn fuzz(target: cnm_fuzz::Target) {
        // Keep the signatures in the binary.
        // SAFETY: reads of initialised statics.
        unsafe {
            std::ptr::read_volatile(&PERSISTENT);
            std::ptr::read_volatile(&DEFERRED);
        }
        std::panic::set_hook(Box::new(|info| {
            eprintln!("{info}");
            std::process::abort();
        }));
        // SAFETY: the runtime's entry points, called as AFL++ documents them.
        unsafe { __afl_manual_init() };
        let mut input = Vec::new();
        // SAFETY: as above.
        while unsafe { __afl_persistent_loop(ROUNDS) } != 0 {
            input.clear();
            if std::io::stdin().read_to_end(&mut input).is_err() {
                continue;
            }
            (target.run)(&input);
        }
    }
}
