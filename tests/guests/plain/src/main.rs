//! A plain WASI command, not an mtask task, for the CLI's error test.

fn main() {
    println!("hello from a plain command");
}
