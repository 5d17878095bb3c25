//! `autoheal`: see `autoheal --help`.

use clap::Parser;

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
