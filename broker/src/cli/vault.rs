//! `kurier vault rewrap`: after a master-key rotation (docs/OPERATIONS.md).

use clap::Subcommand;
use kurier::store::shred::Rewrapped;
use kurier::store::{Access, Store};

use super::Global;
use super::exit::Exit;

#[derive(Subcommand)]
pub enum Vault {
    /// Wrap every live epoch key under the current master key (`key_file`),
    /// after a rotation: then the previous master key (`previous_key_files`)
    /// can be removed, unless payloads sealed before epochs still need it
    /// (they are named).
    Rewrap,
}

impl Vault {
    pub async fn run(self, global: &Global) -> anyhow::Result<Exit> {
        let Vault::Rewrap = self;
        let config = global.load()?;
        // Never create a master key here: a key nobody else has would
        // make every epoch unreadable to the running brokers.
        if !config.vault.key_file.exists() {
            anyhow::bail!(
                "the vault key file {} does not exist; rewrap wraps under the current master key, which must be there (a rotation creates the new key first: docs/OPERATIONS.md)",
                config.vault.key_file.display()
            );
        }
        let store = Store::open_existing(&config.database, Access::ReadWrite).await?;
        let vault = kurier::vault::Vault::load(&config.vault)?;
        let report = kurier::store::shred::rewrap(&vault, &store).await;
        store.close().await;
        global.print(&report?, print)?;
        Ok(Exit::Ok)
    }
}

fn print(report: &Rewrapped) {
    println!(
        "current master key {}: {} epoch keys rewrapped, {} already under it",
        report.current_key_id,
        report.rewrapped.len(),
        report.already_current.len()
    );
    for (epoch, key) in &report.unreadable {
        println!(
            "epoch {epoch}: wrapped by master key {key}, which is not configured; add its file to previous_key_files and run this again"
        );
    }
    for (key, n) in &report.sealed_before_epochs {
        if *key != report.current_key_id {
            println!(
                "master key {key}: still wraps {n} payloads sealed before epochs; keep it in previous_key_files until they are delivered, expired or purged"
            );
        }
    }
    if report.still_needed.is_empty() {
        println!(
            "no previous master key is needed any more: previous_key_files may be emptied (restart the brokers after)"
        );
    }
}
