//! A client for the echo server: sends each argument as a line and prints
//! what comes back.
//!
//! `mtask-host run --connect 127.0.0.1:7878 echo-client.wasm -- ADDRESS WORDS...`

use std::io::{BufRead, BufReader, Write};

fn main() -> mtask::Result<()> {
    let mut args = std::env::args().skip(1);
    let address = args.next().unwrap_or_else(|| "127.0.0.1:7878".to_string());
    let stream = mtask::TcpStream::connect(&address)?;
    let mut reader = BufReader::new(&stream);
    for word in args {
        (&stream)
            .write_all(format!("{word}\n").as_bytes())
            .map_err(io)?;
        let mut line = String::new();
        reader.read_line(&mut line).map_err(io)?;
        print!("echo: {line}");
    }
    stream.shutdown(std::net::Shutdown::Write)?;
    Ok(())
}

fn io(e: std::io::Error) -> mtask::Error {
    mtask::Error::Io(e.to_string())
}

mtask::entries!(main);
