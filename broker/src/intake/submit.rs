//! `kurier submit`: a portal simulator for tests and demos. Publishes envelope
//! files to `kurier.submissions` exactly as a portal must (persistent,
//! `message_id` = submission id, routing key `<service>.<destination>`), with
//! publisher confirms. Reads the files given; touches RabbitMQ only.

use std::path::Path;

use std::path::PathBuf;

use crate::config::AmqpConfig;
use crate::intake::{self, IntakeError};

/// Why an envelope file was not published.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    #[error(transparent)]
    Rabbit(#[from] IntakeError),
    #[error("reading {}: {source}", file.display())]
    Read {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{}: not an envelope with service, destination and submission_id (use --routing-key to publish it anyway)",
        file.display()
    )]
    NotAnEnvelope { file: PathBuf },
    #[error("publishing {}: {source}", file.display())]
    Publish { file: PathBuf, source: IntakeError },
}

/// Routing key and message id a portal would use for this envelope.
pub fn addressing(body: &[u8]) -> Option<(String, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let service = value.get("service")?.as_str()?;
    let destination = value.get("destination")?.as_str()?;
    let id = value.get("submission_id")?.as_str()?;
    Some((format!("{service}.{destination}"), id.to_owned()))
}

/// Publish each file; `raw_routing_key` publishes bodies that are not
/// envelopes (for testing dead letters).
pub async fn submit(
    amqp: &AmqpConfig,
    files: &[impl AsRef<Path>],
    raw_routing_key: Option<&str>,
) -> Result<Vec<String>, SubmitError> {
    let connection = intake::connect(amqp, "kurier-submit").await?;
    let channel = intake::confirm_channel(&connection).await?;
    if amqp.declare_topology {
        intake::declare_topology(&channel, amqp).await?;
    }
    let mut published = Vec::new();
    for file in files {
        let file = file.as_ref();
        let body = std::fs::read(file).map_err(|source| SubmitError::Read {
            file: file.to_owned(),
            source,
        })?;
        let (routing_key, message_id) = match (raw_routing_key, addressing(&body)) {
            (Some(key), found) => (
                key.to_owned(),
                found
                    .map(|(_, id)| id)
                    .unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
            ),
            (None, Some(found)) => found,
            (None, None) => {
                return Err(SubmitError::NotAnEnvelope {
                    file: file.to_owned(),
                });
            }
        };
        intake::publish_confirmed(
            &channel,
            &amqp.exchange,
            &routing_key,
            &message_id,
            &body,
            true,
        )
        .await
        .map_err(|source| SubmitError::Publish {
            file: file.to_owned(),
            source,
        })?;
        published.push(message_id);
    }
    let _ = connection.close(200, "done".into()).await;
    Ok(published)
}
