//! `kurier run`: the broker, until SIGTERM/SIGINT.

use kurier::shutdown::Shutdown;

use super::Global;
use super::exit::Exit;

pub async fn run(global: &Global) -> anyhow::Result<Exit> {
    if global.json {
        eprintln!("kurier: run prints no output to format; for JSON logs use --log-format json");
        return Ok(Exit::Usage);
    }
    let config = global.load()?;
    let shutdown = Shutdown::new();
    shutdown.listen_for_signals();
    kurier::run(config, shutdown).await?;
    Ok(Exit::Ok)
}
