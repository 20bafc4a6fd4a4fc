//! Failover between the nodes of a RabbitMQ cluster (`[amqp] urls`).
//!
//! Every node of a cluster serves every queue (a quorum queue is replicated
//! on its members and reachable through any node), so which node Kurier
//! talks to does not matter; that it finds one does. Each connecting part of
//! Kurier (the consumer, the outbox relay) keeps its own [`Nodes`]: a
//! (re)connect tries the URLs in turn, starting after the node it was last
//! connected to (the one that just failed), and the caller's backoff applies
//! between full rounds only. With the single `url` key the round is that one
//! URL, exactly as before. Pure: no I/O here, [`crate::intake::connect_next`]
//! does the connecting.

use crate::config::AmqpConfig;

/// The configured nodes and where the next round of connection attempts
/// starts.
#[derive(Clone)]
pub struct Nodes {
    urls: Vec<String>,
    next: usize,
}

impl std::fmt::Debug for Nodes {
    // URLs carry credentials: show hosts only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nodes")
            .field(
                "nodes",
                &(0..self.urls.len())
                    .map(|i| self.shown(i))
                    .collect::<Vec<_>>(),
            )
            .field("next", &self.next)
            .finish()
    }
}

impl Nodes {
    /// `[amqp] urls` if given, else the one `url`.
    pub fn new(amqp: &AmqpConfig) -> Nodes {
        Nodes::of(amqp.node_urls().into_iter().map(str::to_owned).collect())
    }

    fn of(mut urls: Vec<String>) -> Nodes {
        if urls.is_empty() {
            // Config::parse refuses this; an empty URL then fails to connect
            // with lapin's own message rather than a panic here.
            urls.push(String::new());
        }
        Nodes { urls, next: 0 }
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    /// Never true (there is always at least one node); for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// One round of attempts: every node once, starting at the one after the
    /// node last connected to, as `(index, url)`.
    pub fn round(&self) -> Vec<(usize, String)> {
        let n = self.urls.len();
        (0..n)
            .map(|k| {
                let i = (self.next + k) % n;
                (i, self.urls[i].clone())
            })
            .collect()
    }

    /// A connection to node `i` stands: when it fails, the next round starts
    /// with the node after it.
    pub fn connected(&mut self, i: usize) {
        self.next = (i + 1) % self.urls.len();
    }

    /// Node `i` for logs: scheme, host, port and vhost, never the
    /// credentials.
    pub fn shown(&self, i: usize) -> String {
        let url = self.urls.get(i).map_or("", |u| u.trim());
        match url.split_once("://") {
            Some((scheme, rest)) => {
                let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
                format!("{scheme}://{rest}")
            }
            None => "(not an AMQP URL)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(urls: &[&str]) -> Nodes {
        Nodes::of(urls.iter().map(|u| (*u).to_owned()).collect())
    }

    fn order(n: &Nodes) -> Vec<usize> {
        n.round().into_iter().map(|(i, _)| i).collect()
    }

    #[test]
    fn the_first_round_starts_with_the_first_url() {
        let n = nodes(&["amqp://a", "amqp://b", "amqp://c"]);
        assert_eq!(order(&n), [0, 1, 2]);
        assert_eq!(n.round()[1].1, "amqp://b");
    }

    #[test]
    fn a_reconnect_starts_after_the_node_that_failed() {
        let mut n = nodes(&["amqp://a", "amqp://b", "amqp://c"]);
        n.connected(0);
        assert_eq!(order(&n), [1, 2, 0], "a failed: b, c, then a again");
        n.connected(2);
        assert_eq!(order(&n), [0, 1, 2], "c failed: wraps around to a");
        n.connected(1);
        assert_eq!(order(&n), [2, 0, 1]);
    }

    #[test]
    fn a_round_that_finds_no_node_leaves_the_start_where_it_was() {
        // The caller backs off and tries the same round again.
        let mut n = nodes(&["amqp://a", "amqp://b"]);
        n.connected(0);
        let before = order(&n);
        assert_eq!(before, [1, 0]);
        assert_eq!(order(&n), before);
    }

    #[test]
    fn a_single_url_is_a_round_of_one() {
        let mut n = nodes(&["amqp://guest:guest@127.0.0.1:5672/%2f"]);
        assert_eq!(order(&n), [0]);
        n.connected(0);
        assert_eq!(order(&n), [0]);
        assert_eq!(n.len(), 1);
    }

    #[test]
    fn nodes_come_from_urls_or_else_url() {
        let base = "[amqp]\n{}\n";
        let parse = |amqp: &str| {
            crate::config::Config::parse(&base.replace("{}", amqp), std::path::Path::new("k.toml"))
                .unwrap()
        };
        let single = parse("url = \"amqp://g:g@127.0.0.1:5672/%2f\"");
        assert_eq!(order(&Nodes::new(&single.amqp)), [0]);
        let cluster =
            parse("urls = [\"amqp://127.0.0.1:5782/%2f\", \"amqp://127.0.0.1:5783/%2f\"]");
        let n = Nodes::new(&cluster.amqp);
        assert_eq!(n.len(), 2);
        assert_eq!(n.round()[1].1, "amqp://127.0.0.1:5783/%2f");
    }

    #[test]
    fn logs_never_show_credentials() {
        let n = nodes(&[
            "amqps://kurier:s3cret@rabbit-1.example:5671/prod",
            "amqp://127.0.0.1:5672/%2f",
        ]);
        assert_eq!(n.shown(0), "amqps://rabbit-1.example:5671/prod");
        assert_eq!(n.shown(1), "amqp://127.0.0.1:5672/%2f");
        assert!(!format!("{n:?}").contains("s3cret"));
    }
}
