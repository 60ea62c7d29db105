//! The `charter` binary: parse the command line, run, map the outcome to an exit code.
fn main() {
    std::process::exit(charter::main_with_args(std::env::args_os()));
}
