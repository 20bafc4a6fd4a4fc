//! `kurier man`: the man page, generated from the parser itself (the
//! options, verbs, help texts and exit codes of this binary).

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::Cli;
use super::exit::Exit;

#[derive(Args)]
#[command(after_help = "Read it with `kurier man | man -l -`; install with \
`kurier man --out-dir /usr/local/share/man/man1`.")]
pub struct Man {
    /// Write kurier.1 and a page per verb (kurier-parked-hold.1, …) into
    /// this directory instead of printing kurier.1.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
}

impl Man {
    pub fn run(self) -> anyhow::Result<Exit> {
        let command = Cli::command();
        match self.out_dir {
            Some(dir) => clap_mangen::generate_to(command, &dir)?,
            None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
        }
        Ok(Exit::Ok)
    }
}
