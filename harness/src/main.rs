//! The `charter` binary: parse the command line, run, map the outcome to an exit code.
fn main() {
    // Errors are one line whatever the environment says: libraries (candle) capture a backtrace
    // into their errors when RUST_LIB_BACKTRACE (or RUST_BACKTRACE) is set, which costs time and
    // would end up in messages. `-v` keeps the user's setting. Panics still follow
    // RUST_BACKTRACE. Set before any thread starts.
    let verbose = std::env::args_os()
        .skip(1)
        .take_while(|a| a.to_str().is_some_and(|a| a.starts_with('-')))
        .any(|a| a == "-v" || a == "--verbose");
    if !verbose {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    std::process::exit(charter::main_with_args(std::env::args_os()));
}
