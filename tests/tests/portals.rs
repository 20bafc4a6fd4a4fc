//! Portals kept apart: RabbitMQ lets a portal publish only its own services'
//! routing keys and vouches for its `user_id`; Kurier refuses an envelope
//! whose portal is not the publisher's, and a submission id of one portal
//! never silences another portal's submission. The users and permissions
//! are deploy/rabbitmq/definitions.json, imported by deploy/local/services.sh.

use std::time::Duration;

use kurier_e2e::{Backend, World, WorldOptions, fresh, json};

const WAIT: Duration = Duration::from_secs(60);

/// The test node's URL with a portal user's credentials (the demo
/// passwords of definitions.json).
fn url_of(user: &str, password: &str) -> String {
    kurier_e2e::amqp_url().replace("guest:guest@", &format!("{user}:{password}@"))
}

async fn publish_as(
    world: &World,
    url: &str,
    user_id: Option<&str>,
    envelope: &serde_json::Value,
) -> anyhow::Result<()> {
    let connection =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await?;
    let channel = kurier::intake::confirm_channel(&connection).await?;
    let mut properties = lapin::BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(envelope["submission_id"].as_str().unwrap().into());
    if let Some(u) = user_id {
        properties = properties.with_user_id(u.into());
    }
    let key = format!(
        "{}.{}",
        envelope["service"].as_str().unwrap(),
        envelope["destination"].as_str().unwrap()
    );
    let confirm = channel
        .basic_publish(
            world.config.amqp.exchange.as_str().into(),
            key.as_str().into(),
            lapin::options::BasicPublishOptions::default(),
            &serde_json::to_vec(envelope)?,
            properties,
        )
        .await?
        .await?;
    anyhow::ensure!(confirm.is_ack(), "not confirmed");
    let _ = connection.close(200, "ok".into()).await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_speaks_only_for_itself() {
    let mut options = WorldOptions::new(Backend::Sqlite);
    // Topic permissions name the contract's exchanges exactly.
    options.contract_exchanges = true;
    options.sections = r#"
[[portals]]
id = "sozialplattform"
amqp_users = ["portal-sozialplattform"]

[[portals]]
id = "beispielportal"
amqp_users = ["portal-beispielportal"]
"#
    .into();
    let mut world = World::start(options).await.unwrap();
    world.start_kurier().unwrap();
    let sozial = url_of("portal-sozialplattform", "sozialplattform-demo-password");
    let beispiel = url_of("portal-beispielportal", "beispielportal-demo-password");

    // Its own submission, its own user: delivered.
    let mut own = fresh("wbs-full.json");
    own["portal"] = json!("sozialplattform");
    publish_as(&world, &sozial, Some("portal-sozialplattform"), &own)
        .await
        .unwrap();
    let r = world
        .await_receipt(own["submission_id"].as_str().unwrap(), WAIT)
        .await
        .unwrap();
    assert_eq!(r.status, "delivered");

    // RabbitMQ refuses a user_id that is not the connection's user, and a
    // routing key of a service the portal may not publish.
    let mut spoof = fresh("wbs-full.json");
    spoof["portal"] = json!("beispielportal");
    assert!(
        publish_as(&world, &sozial, Some("portal-beispielportal"), &spoof)
            .await
            .is_err()
    );
    let hzl = fresh("hzl-minimal.json");
    assert!(
        publish_as(&world, &beispiel, Some("portal-beispielportal"), &hzl)
            .await
            .is_err(),
        "beispielportal may publish wbs only"
    );

    // An envelope naming another portal, or no user_id at all: refused,
    // metadata only, told to the publishing portal, never to the named one.
    let mut claims_other = fresh("wbs-full.json");
    claims_other["portal"] = json!("beispielportal");
    publish_as(
        &world,
        &sozial,
        Some("portal-sozialplattform"),
        &claims_other,
    )
    .await
    .unwrap();
    let mut anonymous = fresh("wbs-full.json");
    anonymous["portal"] = json!("sozialplattform");
    world.publish_envelope(&anonymous).await.unwrap();

    // One portal's id sent again by another portal does not silence it or
    // answer for it.
    let mut collision = own.clone();
    collision["portal"] = json!("beispielportal");
    publish_as(&world, &beispiel, Some("portal-beispielportal"), &collision)
        .await
        .unwrap();

    let dead = match world.await_dead_letters(3, WAIT).await {
        Ok(d) => d,
        Err(e) => panic!(
            "{e}\n{}",
            std::fs::read_to_string(world.log_path()).unwrap_or_default()
        ),
    };
    for d in &dead {
        assert_eq!(d.reason_code, "malformed_envelope", "{d:?}");
    }
    let store = world.store().await.unwrap();
    assert!(
        store
            .receipt(&kurier_e2e::sid(
                claims_other["submission_id"].as_str().unwrap()
            ))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .receipt(&kurier_e2e::sid(
                anonymous["submission_id"].as_str().unwrap()
            ))
            .await
            .unwrap()
            .is_none()
    );
    let still = store
        .receipt(&kurier_e2e::sid(own["submission_id"].as_str().unwrap()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(still.portal.as_deref(), Some("sozialplattform"));
    assert_eq!(still.status, "delivered");
    let requests = world.authority.requests().await.unwrap();
    assert_eq!(
        requests.len(),
        1,
        "only the portal's own submission reached the authority"
    );

    // Events: delivered (own) and the refusal of claims_other to
    // sozialplattform; the collision's refusal to beispielportal.
    let events = world.receipt_events(3, WAIT).await.unwrap();
    let to = |portal: &str, id: &serde_json::Value| {
        events
            .iter()
            .any(|(k, e)| k == portal && e["submission_id"] == *id)
    };
    assert!(to("sozialplattform", &own["submission_id"]));
    assert!(to("sozialplattform", &claims_other["submission_id"]));
    assert!(to("beispielportal", &collision["submission_id"]));
    assert!(
        !to("beispielportal", &claims_other["submission_id"]),
        "never to the claimed portal"
    );
}
