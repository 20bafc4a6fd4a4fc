//! The `kurier` binary: parse the command line, start the runtime, run the
//! verb (broker/src/cli/), and turn how it ended into one message and an
//! exit code (`kurier --help` lists them). The binary's edge: errors are
//! `anyhow` here and in cli/, typed everywhere in the library.

mod cli;

use std::process::ExitCode;

use clap::Parser;
use cli::exit::Exit;

fn main() -> ExitCode {
    // Usage errors exit 2 here (clap), before anything is opened.
    let cli = cli::Cli::parse();
    kurier::telemetry::init(cli.global.log_format);
    kurier::delivery::tls::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("kurier: cannot start the async runtime: {e}");
            return Exit::Failed.into();
        }
    };
    match runtime.block_on(cli::dispatch(cli)) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("kurier: {e:#}");
            Exit::of(&e).into()
        }
    }
}
