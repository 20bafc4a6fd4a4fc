//! `kurier check-config`: the start-up check of `kurier run`
//! (`kurier::preflight`), without connecting to anything. Its answer
//! "invalid" is exit code 1 (CONTRACT.md § 5), whatever made it invalid.

use super::Global;
use super::exit::Exit;

pub fn run(global: &Global) -> anyhow::Result<Exit> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let checked = global
        .load()
        .map_err(anyhow::Error::from)
        .and_then(|config| {
            let preflight = kurier::preflight::check(&config, now)?;
            Ok((config.destinations.len(), preflight))
        });
    let (destinations, warnings, errors) = match checked {
        Ok((n, p)) => (n, p.warnings, p.reloadable_problems),
        Err(e) => (0, Vec::new(), vec![format!("{e:#}")]),
    };
    let file = global.config.display().to_string();
    global.print(
        &serde_json::json!({
            "config": file,
            "ok": errors.is_empty(),
            "destinations": destinations,
            "warnings": warnings,
            "errors": errors,
        }),
        |_| {
            for w in &warnings {
                println!("warning: {w}");
            }
            if errors.is_empty() {
                println!("{file}: OK ({destinations} destinations)");
            }
        },
    )?;
    if errors.is_empty() {
        return Ok(Exit::Ok);
    }
    for e in &errors {
        eprintln!("kurier: {e}");
    }
    Ok(Exit::Failed)
}
