//! The `dav2d` binary: the command line of [`dav2d_cli::main_with`].

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(dav2d_cli::main_with(std::env::args_os()))
}
