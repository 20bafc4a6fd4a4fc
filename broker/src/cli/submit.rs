//! `kurier submit`: publish envelope files as a portal would (tests, demos).

use std::path::PathBuf;

use clap::Args;

use super::Global;
use super::exit::Exit;

#[derive(Args)]
pub struct Submit {
    /// Publish the files as they are with this routing key, even if they
    /// are not envelopes (to see how Kurier dead-letters bad input).
    #[arg(long, value_name = "KEY")]
    routing_key: Option<String>,
    /// Envelope files (JSON); each is published with routing key
    /// <service>.<destination> and message_id = its submission_id.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

impl Submit {
    pub async fn run(self, global: &Global) -> anyhow::Result<Exit> {
        let config = global.load()?;
        let ids =
            kurier::intake::submit::submit(&config.amqp, &self.files, self.routing_key.as_deref())
                .await?;
        global.print(&ids, |ids| {
            for id in ids {
                println!("published {id}");
            }
        })?;
        Ok(Exit::Ok)
    }
}
