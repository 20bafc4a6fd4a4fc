//! `kurier migrate`: create the database if needed and apply its
//! migrations; with `run`, the only verb that changes the schema.

use kurier::store::Store;

use super::Global;
use super::exit::Exit;

pub async fn run(global: &Global) -> anyhow::Result<Exit> {
    let config = global.load()?;
    let store = Store::connect(&config.database).await?;
    store.migrate().await?;
    store.close().await;
    let database = redact_url(&config.database.url);
    global.print(
        &serde_json::json!({ "migrated": true, "database": database }),
        |_| println!("migrations applied to {database}"),
    )?;
    Ok(Exit::Ok)
}

/// A database URL without its password, for messages.
fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}://…{}", &url[..scheme], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_database_url_loses_its_password() {
        assert_eq!(
            super::redact_url("postgres://kurier:secret@db.example/kurier"),
            "postgres://…@db.example/kurier"
        );
        assert_eq!(
            super::redact_url("sqlite:///var/lib/kurier.db"),
            "sqlite:///var/lib/kurier.db"
        );
    }
}
