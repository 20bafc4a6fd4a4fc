//! `kurier completions <shell>`: a completion script generated from the
//! parser itself, so it knows every verb and option this binary has.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::Cli;
use super::exit::Exit;

#[derive(Args)]
#[command(after_help = "Install, e.g.:\n  \
kurier completions bash > /etc/bash_completion.d/kurier\n  \
kurier completions zsh > \"${fpath[1]}/_kurier\"\n  \
kurier completions fish > ~/.config/fish/completions/kurier.fish")]
pub struct Completions {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

impl Completions {
    pub fn run(self) -> anyhow::Result<Exit> {
        let mut command = Cli::command();
        clap_complete::generate(self.shell, &mut command, "kurier", &mut std::io::stdout());
        Ok(Exit::Ok)
    }
}
