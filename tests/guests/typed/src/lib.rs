//! Guest for the typed-entry tests: each spawn or join below means types
//! other than its entry's, and prints the error it gets; the last ones
//! match, and print their values. `--entry square --arg 7` runs an entry
//! with a JSON argument.

use mtask::{Handle, Task};

fn main() -> mtask::Result<()> {
    let report = |what: &str, result: mtask::Result<u64>| match result {
        Ok(v) => println!("{what}: {v}"),
        Err(e) => println!("{what}: {e}"),
    };
    // The argument's type, then the result's, then an argument that
    // postcard would have read as a u64 without complaint.
    report("text to square", mtask::call::<str, u64>("square", "hello"));
    report(
        "square as text",
        mtask::call::<u64, String>("square", &5).map(|s| s.len() as u64),
    );
    report("u32 to square", mtask::call::<u32, u64>("square", &5));
    report("no such entry", mtask::call::<u64, u64>("cube", &5));
    report("not listed", mtask::call_fn(not_listed, &5).map(u64::from));
    // A task handed to a child is checked at its join.
    let square = mtask::spawn::<u64, u64>("square", &6)?;
    let child = mtask::spawn_with::<(), ()>("join_as_text", &(), vec![square.into_handle()])?;
    child.join()?;
    report("square 7", mtask::call::<u64, u64>("square", &7));
    report("square 8 (spawn_fn!)", mtask::spawn_fn!(square, &8)?.join());
    report("square 9 (call_fn!)", mtask::call_fn!(square, &9));
    let greeting = mtask::call::<str, String>("greet", "typed")?;
    println!("greet: {greeting}");
    Ok(())
}

fn square(n: u64) -> mtask::Result<u64> {
    Ok(n * n)
}

fn greet(name: String) -> mtask::Result<String> {
    Ok(format!("hello, {name}"))
}

fn join_as_text() -> mtask::Result<()> {
    for handle in mtask::take_handles() {
        if let Handle::Task(raw) = handle {
            let task = Task::<String>::from_raw(raw);
            match task.join() {
                Ok(text) => println!("handed over: {text}"),
                Err(e) => println!("handed over: {e}"),
            }
        }
    }
    Ok(())
}

fn not_listed(n: u32) -> mtask::Result<u32> {
    Ok(n)
}

mtask::entries!(main, square, greet, join_as_text);
