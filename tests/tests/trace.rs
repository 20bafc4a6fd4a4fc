//! A portal's W3C trace context reaches the authority: the AMQP header
//! `traceparent` of a submission is sent as the HTTP header `traceparent` on
//! its delivery; a malformed one is not passed on (and the submission is
//! delivered all the same).

use std::time::Duration;

use kurier_e2e::{Backend, World, WorldOptions, fresh};
use lapin::types::{AMQPValue, FieldTable, LongString};

const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const BAD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\nx-injected: 1";

async fn publish(world: &World, traceparent: &str) -> String {
    let envelope = fresh("hzl-minimal.json");
    let id = envelope["submission_id"].as_str().unwrap().to_owned();
    let mut headers = FieldTable::default();
    headers.insert(
        "traceparent".into(),
        AMQPValue::LongString(LongString::from(traceparent)),
    );
    let properties = lapin::BasicProperties::default()
        .with_message_id(id.as_str().into())
        .with_content_type("application/json".into())
        .with_headers(headers);
    world
        .publish_with(
            "hzl.sozialamt-koeln",
            properties,
            &serde_json::to_vec(&envelope).unwrap(),
        )
        .await
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_portals_traceparent_reaches_the_authority_and_a_malformed_one_does_not() {
    let mut world = World::start(WorldOptions::new(Backend::Sqlite))
        .await
        .unwrap();
    world.start_kurier().unwrap();
    world.await_ready(Duration::from_secs(60)).await.unwrap();
    let traced = publish(&world, GOOD).await;
    let malformed = publish(&world, BAD).await;
    for id in [&traced, &malformed] {
        let receipt = world
            .await_receipt(id, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(receipt.status, "delivered", "{id}");
    }
    let requests = world.authority.requests().await.unwrap();
    let sent = |id: &str| -> Vec<serde_json::Value> {
        requests
            .iter()
            .filter(|r| r["submission_id"] == id)
            .map(|r| r["traceparent"].clone())
            .collect()
    };
    assert_eq!(sent(&traced), [serde_json::json!(GOOD)]);
    assert_eq!(sent(&malformed), [serde_json::Value::Null]);
}
