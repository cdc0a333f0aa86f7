//! The `chipledger` binary: parse the command line, run it, and map the library's typed errors
//! to exit codes in this one place (0 success, 1 refused or failed verification, 2 bad input or
//! usage, 3 ledger unavailable).

use std::process::ExitCode;

use clap::Parser;

use chipledger::cli::{self, Cli, Format};
use chipledger::error::Error;

/// Keeps a few of sled's freed I/O buffers for reuse instead of having glibc map fresh,
/// faulting memory for every one (`store::BufferPool`).
#[global_allocator]
static ALLOCATOR: chipledger::store::BufferPool = chipledger::store::BufferPool::new();

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() { 2 } else { 0 };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    let format = cli.format;
    match cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Output(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            // A reader such as `head` closed the pipe: stop quietly.
            ExitCode::SUCCESS
        }
        Err(error) => {
            if format == Format::Json {
                let value = match &error {
                    Error::Refused { refusal, .. } => {
                        let mut value = chipledger::view::refusal_json(
                            refusal,
                            chipledger::rules::builtin::H100_TPP,
                            None,
                        );
                        if let Error::Refused {
                            place: Some(place), ..
                        } = &error
                        {
                            value["place"] = serde_json::json!(place);
                        }
                        value
                    }
                    other => serde_json::json!({
                        "status": "error",
                        "exit_code": other.exit_code(),
                        "message": other.to_string(),
                    }),
                };
                println!("{value}");
            }
            eprintln!("chipledger: {error}");
            ExitCode::from(error.exit_code() as u8)
        }
    }
}
