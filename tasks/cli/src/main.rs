//! `autoheal`: see `autoheal --help`.

use clap::Parser;

// Simulations allocate and free many small JSON values; glibc's allocator spent a third of a
// large run consolidating them (measured with perf, tests/src/bin/bench-sim.rs).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = autoheal::Cli::parse();
    match autoheal::run(cli) {
        Ok(out) => {
            print!("{}", out.stdout);
            std::process::ExitCode::from(out.code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
