//! Regenerates `src/command/table.rs` from a live redis-server.
//!
//! ```text
//! cargo run --example gen_command_table -- [HOST:PORT] [--stdout]
//! ```
//!
//! Connects to HOST:PORT (default 127.0.0.1:6379), sends `INFO server` and `COMMAND`, and
//! writes the generated table to `src/command/table.rs`, or to stdout with `--stdout`.

use std::net::TcpStream;
use std::process::ExitCode;
use std::time::Duration;

#[path = "../tools/command_table/mod.rs"]
mod gen;

use gen::{GenError, Value};

/// Where the table lives, relative to the crate root.
const TABLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/command/table.rs");

fn run(addr: &str, to_stdout: bool) -> Result<(), GenError> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let (info, _) = gen::query(&mut stream, &[b"INFO", b"server"])?;
    if let Value::Error(e) = &info {
        return Err(GenError::Server(e.clone()));
    }
    let info = info
        .as_text()
        .ok_or_else(|| GenError::Shape("INFO reply is not text".into()))?;
    let version = gen::redis_version(info)
        .ok_or_else(|| GenError::Shape("INFO server has no redis_version".into()))?
        .to_owned();
    let (_, command_reply) = gen::query(&mut stream, &[b"COMMAND"])?;
    let source = gen::generate(&command_reply, &version)?;
    if to_stdout {
        print!("{source}");
    } else {
        std::fs::write(TABLE, &source)?;
        eprintln!("wrote {TABLE} from redis-server {version}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let mut addr = "127.0.0.1:6379".to_owned();
    let mut to_stdout = false;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--stdout" => to_stdout = true,
            "-h" | "--help" => {
                eprintln!("usage: gen_command_table [HOST:PORT] [--stdout]");
                return ExitCode::SUCCESS;
            }
            _ => addr = arg,
        }
    }
    match run(&addr, to_stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gen_command_table: {e}");
            ExitCode::FAILURE
        }
    }
}
