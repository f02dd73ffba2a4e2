//! `mtask-host`: see [`mtask_host::cli`].

fn main() -> std::process::ExitCode {
    mtask_host::cli::main()
}
