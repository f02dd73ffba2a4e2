//! A plain WASI command (an ordinary `fn main`, no mtask SDK): mtask-host
//! runs it as one task. `plain` prints a greeting, its arguments and
//! `$GREETING`; `plain exit N` exits with status N; `plain read PATH`
//! reads a file and says whether it could.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("exit") => {
            let status = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1);
            println!("exiting with {status}");
            std::process::exit(status);
        }
        Some("read") => match std::fs::read_to_string(&args[1]) {
            Ok(text) => println!("read {} bytes", text.len()),
            Err(e) => println!("cannot read {}: {:?}", args[1], e.kind()),
        },
        _ => {
            println!("hello from a plain command");
            println!("args: {args:?}");
            println!("GREETING: {:?}", std::env::var("GREETING").ok());
        }
    }
}
