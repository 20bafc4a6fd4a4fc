//! Test support for Kurier's end-to-end tests: real RabbitMQ, real SQLite and
//! PostgreSQL, real TLS, and the `test-authority` and `kurier` binaries run as
//! processes, exactly as deployed.
//!
//! Each [`World`] is isolated: its own exchange, queue, receipts exchange and
//! database (a SQLite file or a fresh PostgreSQL database), its own
//! certificates and its own authority and Kurier processes, so tests run in
//! parallel on one RabbitMQ node and one PostgreSQL server. The services come
//! from `deploy/local/services.sh`, which exports `KURIER_TEST_AMQP_URL` and
//! `KURIER_TEST_POSTGRES_URL`.

pub mod doubles;
pub mod evidence;
pub mod pki;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_lite::StreamExt;
use kurier::config::{AmqpConfig, Config, DatabaseConfig};
use kurier::store::{DeadLetter, Receipt, Store};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;

pub fn amqp_url() -> String {
    std::env::var("KURIER_TEST_AMQP_URL").unwrap_or_else(|_| {
        panic!("KURIER_TEST_AMQP_URL is not set: run the tests through deploy/local/test.sh, which starts RabbitMQ and PostgreSQL")
    })
}

pub fn postgres_url() -> String {
    std::env::var("KURIER_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!("KURIER_TEST_POSTGRES_URL is not set: run the tests through deploy/local/test.sh, which starts PostgreSQL")
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Path of a binary of this workspace (built by `cargo build --workspace --bins`).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} not found: build it first with `cargo build --workspace --bins`",
        path.display()
    );
    path
}

pub fn sample(name: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("samples")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("sample file");
    serde_json::from_str(&text).expect("sample JSON")
}

/// A child process that is killed when dropped.
pub struct Process {
    pub child: Child,
    pub name: &'static str,
}

impl Process {
    /// SIGTERM and wait (up to `timeout`); returns the exit status code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        signal(&self.child, libc::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) with the pid of our own child process.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The running test authority.
pub struct Authority {
    pub process: Process,
    pub https: String,
    pub control: String,
}

impl Authority {
    pub fn start(dir: &Path, pki: &pki::PkiFiles) -> anyhow::Result<Authority> {
        let mut child = Command::new(workspace_bin("test-authority"))
            .args(["--listen", "127.0.0.1:0", "--control", "127.0.0.1:0"])
            .arg("--cert")
            .arg(&pki.authority_cert)
            .arg("--key")
            .arg(&pki.authority_key)
            .arg("--client-ca")
            .arg(&pki.kurier_ca)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("authority.log"))?)
            .spawn()
            .context("starting test-authority")?;
        let stdout = child.stdout.take().context("authority stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let ready: serde_json::Value =
            serde_json::from_str(&line).context("authority did not print its addresses")?;
        Ok(Authority {
            https: ready["https"].as_str().unwrap_or_default().to_owned(),
            control: ready["control"].as_str().unwrap_or_default().to_owned(),
            process: Process {
                child,
                name: "test-authority",
            },
        })
    }

    pub fn endpoint(&self, path: &str) -> String {
        // By IP: the server certificate names 127.0.0.1 too.
        format!("https://{}{path}", self.https)
    }

    async fn control(
        &self,
        method: &str,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<String> {
        doubles::control_request(&self.control, method, path, body).await
    }

    /// Every request (but `/reject/…` paths) answered `status`, as an
    /// authority that is down answers.
    pub async fn fail_all(&self, status: u16) {
        self.set_mode(serde_json::json!({"mode": "fail", "status": status}))
            .await
            .expect("the test authority's control port answers");
    }

    pub async fn set_mode(&self, mode: serde_json::Value) -> anyhow::Result<()> {
        self.control("PUT", "/mode", Some(mode.to_string()))
            .await
            .map(|_| ())
    }

    pub async fn requests(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(serde_json::from_str(
            &self.control("GET", "/requests", None).await?,
        )?)
    }

    /// The request log without bodies (arrival times, paths, statuses):
    /// light enough for thousands of requests.
    pub async fn request_log(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(serde_json::from_str(
            &self.control("GET", "/requests?bodies=0", None).await?,
        )?)
    }

    pub async fn stats(&self) -> anyhow::Result<serde_json::Value> {
        Ok(serde_json::from_str(
            &self.control("GET", "/stats", None).await?,
        )?)
    }
}

/// Options of a world.
pub struct WorldOptions {
    pub backend: Backend,
    /// Extra TOML appended to the configuration (e.g. more destinations).
    pub extra_config: String,
    /// TOML inserted at the top of the configuration, before `[amqp]`: the
    /// place for top-level keys such as `xsd_dir` (`extra_config` lands in
    /// the last `[[destinations]]` table).
    pub top_config: String,
    /// `[policy]` section body.
    pub policy: String,
    /// More keys of the `[retry]` section.
    pub retry: String,
    /// More top-level sections (before the destinations), e.g. `[dead_letters]`.
    pub sections: String,
    pub prefetch: u16,
    /// RUST_LOG of the Kurier processes (debug by default: the canary tests
    /// search the most verbose log there is).
    pub log: &'static str,
    /// Run Kurier with `--log-format json`.
    pub json_logs: bool,
    /// Use the contract's exchange names (`kurier.submissions`,
    /// `kurier.receipts`) instead of tagged ones: RabbitMQ's topic
    /// permissions name exchanges exactly (tests/tests/portals.rs). The
    /// queue stays this world's own.
    pub contract_exchanges: bool,
    /// Leave out the test suite's delivery settings (`prefetch`, the short
    /// `[retry]` delays): Kurier runs with its own defaults, as a new user
    /// would have it; only `retry` (empty in [`WorldOptions::shipped`]) is
    /// added. For the rate scenarios (`tests/tests/rate.rs`).
    pub shipped_delivery_defaults: bool,
    /// Serve `/api` and the console with TLS: a certificate for
    /// `localhost`/`127.0.0.1` from a CA of its own, which the world's
    /// admin client trusts ([`World::admin_ca`]).
    pub admin_tls: bool,
    /// Also serve the probes on a plain `probe_listen` ([`World::probe`]).
    pub probe_listen: bool,
    /// More keys of the `[admin]` section.
    pub admin: String,
    /// The nodes of a RabbitMQ cluster (`[amqp] urls`); empty: `url` =
    /// `KURIER_TEST_AMQP_URL`. The world's own connections (observer,
    /// publishing, topology) go to the first that answers.
    pub amqp_urls: Vec<String>,
}

impl WorldOptions {
    pub fn new(backend: Backend) -> WorldOptions {
        WorldOptions {
            backend,
            extra_config: String::new(),
            top_config: String::new(),
            policy: String::new(),
            retry: "circuit_open_secs = 2".into(),
            sections: String::new(),
            prefetch: 32,
            log: "debug",
            json_logs: false,
            contract_exchanges: false,
            shipped_delivery_defaults: false,
            admin_tls: false,
            probe_listen: false,
            admin: String::new(),
            amqp_urls: Vec::new(),
        }
    }

    /// Kurier's own delivery defaults: no `prefetch`, no `[retry]` keys
    /// (add some to `retry` only where a scenario needs them).
    pub fn shipped(backend: Backend) -> WorldOptions {
        WorldOptions {
            retry: String::new(),
            log: "info",
            shipped_delivery_defaults: true,
            ..WorldOptions::new(backend)
        }
    }
}

/// One isolated Kurier installation.
pub struct World {
    pub dir: tempfile::TempDir,
    pub pki: pki::PkiFiles,
    pub authority: Authority,
    pub kurier: Option<Process>,
    /// Further `kurier run` instances on the same queue and database.
    pub extra_instances: Vec<Process>,
    pub config_path: PathBuf,
    pub config: Config,
    pub tag: String,
    pub backend: Backend,
    log_level: &'static str,
    json_logs: bool,
    /// `host:port` of the admin HTTP endpoint.
    pub admin: String,
    /// The bearer token of operator `e2e-operator` (all roles).
    pub admin_token: String,
    /// The token file (mode 0600).
    pub token_file: PathBuf,
    /// The CA of the admin listener's certificate, when it serves TLS.
    pub admin_ca: Option<String>,
    /// `host:port` of the plain probe listener, if configured.
    pub probe: Option<String>,
    observer: lapin::Connection,
    receipt_events: lapin::Consumer,
}

impl World {
    pub async fn start(options: WorldOptions) -> anyhow::Result<World> {
        kurier::delivery::tls::install_crypto_provider();
        let dir = tempfile::Builder::new().prefix("kurier-e2e-").tempdir()?;
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let pki = pki::write_pki(&dir.path().join("certs"))?;
        let authority = Authority::start(dir.path(), &pki)?;
        let database_url = match options.backend {
            Backend::Sqlite => format!("sqlite://{}/kurier.db", dir.path().display()),
            Backend::Postgres => create_pg_database(&format!("kurier_{tag}")).await?,
        };
        let c = |p: &Path| p.display().to_string();
        let admin = format!("127.0.0.1:{}", free_port()?);
        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let token_file = dir.path().join("admin.tokens");
        pki::write_key(
            &token_file,
            &format!(
                "# name:roles:token, one per line\ne2e-operator:read,operate,view_payload:{admin_token}\n"
            ),
        )?;
        let (prefetch_line, test_retry) = if options.shipped_delivery_defaults {
            (String::new(), "")
        } else {
            (
                format!("prefetch = {}", options.prefetch),
                "initial_delay_ms = 100\nmax_delay_ms = 1000",
            )
        };
        let mut admin_keys = options.admin.clone();
        let admin_ca = if options.admin_tls {
            let ca = pki::Ca::new("Kurier Admin CA")?;
            let leaf = ca.server()?;
            let (cert, key) = (dir.path().join("admin.pem"), dir.path().join("admin.key"));
            std::fs::write(&cert, &leaf.cert_pem)?;
            pki::write_key(&key, &leaf.key_pem)?;
            admin_keys.push_str(&format!(
                "\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
                c(&cert),
                c(&key)
            ));
            Some(ca.pem())
        } else {
            None
        };
        let probe = if options.probe_listen {
            let probe = format!("127.0.0.1:{}", free_port()?);
            admin_keys.push_str(&format!("\nprobe_listen = \"{probe}\"\n"));
            Some(probe)
        } else {
            None
        };
        let config_text = format!(
            r#"
shutdown_grace_secs = 5
{top}

[admin]
listen = "{admin}"
token_file = "{token_file}"
{admin_keys}

[amqp]
{amqp}
exchange = "kurier.submissions{exchange_tag}"
queue = "kurier.intake.{tag}"
receipts_exchange = "kurier.receipts{exchange_tag}"
{prefetch_line}
reconnect_max_secs = 2

[database]
url = "{database_url}"

[retry]
{test_retry}
{retry}

[policy]
{policy}

{sections}

[[destinations]]
id = "sozialamt-koeln"
adapter = "xsozial-hzl"
endpoint = "{hzl}"
ca_file = "{ca}"
client_cert_file = "{cert}"
client_key_file = "{key}"

[[destinations]]
id = "wohnungsamt-dortmund"
adapter = "wbs-nrw"
endpoint = "{wbs}"
ca_file = "{ca}"
client_cert_file = "{cert}"
client_key_file = "{key}"

[[destinations]]
id = "jobcenter-kreis-offenbach"
adapter = "xfall"
endpoint = "{bg}"
ca_file = "{ca}"
client_cert_file = "{cert}"
client_key_file = "{key}"
{extra}
"#,
            amqp = if options.amqp_urls.is_empty() {
                format!("url = \"{}\"", amqp_url())
            } else {
                format!("urls = {:?}", options.amqp_urls)
            },
            token_file = c(&token_file),
            exchange_tag = if options.contract_exchanges {
                String::new()
            } else {
                format!(".{tag}")
            },
            top = options.top_config,
            policy = options.policy,
            retry = options.retry,
            sections = options.sections,
            hzl = authority.endpoint("/sozialamt-koeln/antraege"),
            wbs = authority.endpoint("/wohnungsamt-dortmund/antraege"),
            bg = authority.endpoint("/jobcenter/antraege"),
            ca = c(&pki.authority_ca),
            cert = c(&pki.kurier_cert),
            key = c(&pki.kurier_key),
            extra = options
                .extra_config
                .replace("{AUTHORITY}", &format!("https://{}", authority.https))
                .replace("{CA}", &c(&pki.authority_ca))
                .replace("{CERT}", &c(&pki.kurier_cert))
                .replace("{KEY}", &c(&pki.kurier_key)),
        );
        let config_path = dir.path().join("kurier.toml");
        std::fs::write(&config_path, &config_text)?;
        let config = Config::load(&config_path)?;

        // Declare the topology and a queue that observes receipt events
        // before anything is published.
        let observer = kurier::intake::connect(&config.amqp, "e2e-observer").await?;
        let channel = observer.create_channel().await?;
        kurier::intake::declare_topology(&channel, &config.amqp).await?;
        let events_queue = format!("e2e.receipts.{tag}");
        channel
            .queue_declare(
                events_queue.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                events_queue.as_str().into(),
                config.amqp.receipts_exchange.as_str().into(),
                "#".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let receipt_events = channel
            .basic_consume(
                events_queue.as_str().into(),
                "e2e".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;

        Ok(World {
            dir,
            pki,
            authority,
            kurier: None,
            extra_instances: Vec::new(),
            config_path,
            config,
            tag,
            backend: options.backend,
            log_level: options.log,
            json_logs: options.json_logs,
            admin,
            admin_token,
            token_file,
            admin_ca,
            probe,
            observer,
            receipt_events,
        })
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("kurier.log")
    }

    /// The log's path and its last lines, for a test's failure message: the
    /// temporary directory is gone once the test has failed, and Kurier's
    /// log holds ids, destinations and causes, never payload content.
    pub fn log_tail(&self) -> String {
        const LINES: usize = 40;
        let path = self.log_path();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
        format!("{}; its last {LINES} lines:\n{tail}", path.display())
    }

    /// Start `kurier run` at RUST_LOG=debug, logging to `kurier.log`.
    pub fn start_kurier(&mut self) -> anyhow::Result<()> {
        let process = self.spawn_kurier(&self.log_path())?;
        self.kurier = Some(process);
        Ok(())
    }

    /// Start one more instance (logging to `kurier-<n>.log`); returns its log.
    /// It gets its own configuration file that differs only in the admin port.
    pub fn start_extra_instance(&mut self) -> anyhow::Result<PathBuf> {
        let n = self.extra_instances.len() + 2;
        let log = self.dir.path().join(format!("kurier-{n}.log"));
        let mut text = std::fs::read_to_string(&self.config_path)?.replace(
            &format!("listen = \"{}\"", self.admin),
            &format!("listen = \"127.0.0.1:{}\"", free_port()?),
        );
        if let Some(probe) = &self.probe {
            text = text.replace(
                &format!("probe_listen = \"{probe}\""),
                &format!("probe_listen = \"127.0.0.1:{}\"", free_port()?),
            );
        }
        let config = self.dir.path().join(format!("kurier-{n}.toml"));
        std::fs::write(&config, text)?;
        let process = self.spawn_kurier_with(&config, &log)?;
        self.extra_instances.push(process);
        Ok(log)
    }

    /// Start `kurier run` of another build (the previous release's,
    /// tests/tests/upgrade.rs) as the world's instance, logging to `log`.
    pub fn start_kurier_binary(&mut self, binary: &Path, log: &Path) -> anyhow::Result<()> {
        let process = self.spawn_kurier_from(binary, &self.config_path, log)?;
        self.kurier = Some(process);
        Ok(())
    }

    fn spawn_kurier(&self, log_path: &Path) -> anyhow::Result<Process> {
        self.spawn_kurier_with(&self.config_path, log_path)
    }

    fn spawn_kurier_with(&self, config: &Path, log_path: &Path) -> anyhow::Result<Process> {
        self.spawn_kurier_from(&workspace_bin("kurier"), config, log_path)
    }

    fn spawn_kurier_from(
        &self,
        binary: &Path,
        config: &Path,
        log_path: &Path,
    ) -> anyhow::Result<Process> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log_path)?;
        let format = if self.json_logs { "json" } else { "text" };
        let child = Command::new(binary)
            .args(["--log-format", format, "run", "--config"])
            .arg(config)
            .env("RUST_LOG", self.log_level)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting kurier")?;
        Ok(Process {
            child,
            name: "kurier",
        })
    }

    /// Run a `kurier` subcommand against this world's configuration.
    pub fn kurier_cli(&self, args: &[&str]) -> anyhow::Result<std::process::Output> {
        Ok(Command::new(workspace_bin("kurier"))
            .args(args)
            .env("KURIER_CONFIG", &self.config_path)
            .output()?)
    }

    /// Publish a body as a portal would.
    pub async fn publish(
        &self,
        routing_key: &str,
        message_id: &str,
        body: &[u8],
    ) -> anyhow::Result<()> {
        let channel = kurier::intake::confirm_channel(&self.observer).await?;
        kurier::intake::publish_confirmed(
            &channel,
            &self.config.amqp.exchange,
            routing_key,
            message_id,
            body,
            true,
        )
        .await?;
        let _ = channel.close(200, "ok".into()).await;
        Ok(())
    }

    /// Publish any body with the given AMQP properties (`app_id`, …).
    pub async fn publish_with(
        &self,
        routing_key: &str,
        properties: lapin::BasicProperties,
        body: &[u8],
    ) -> anyhow::Result<()> {
        let channel = kurier::intake::confirm_channel(&self.observer).await?;
        let confirm = channel
            .basic_publish(
                self.config.amqp.exchange.as_str().into(),
                routing_key.into(),
                lapin::options::BasicPublishOptions::default(),
                body,
                properties.with_delivery_mode(2),
            )
            .await?
            .await?;
        anyhow::ensure!(confirm.is_ack(), "RabbitMQ refused a publication");
        let _ = channel.close(200, "ok".into()).await;
        Ok(())
    }

    /// Publish many envelopes on one channel, confirms awaited in batches.
    pub async fn publish_many(&self, envelopes: &[serde_json::Value]) -> anyhow::Result<()> {
        let channel = kurier::intake::confirm_channel(&self.observer).await?;
        for chunk in envelopes.chunks(200) {
            let mut confirms = Vec::with_capacity(chunk.len());
            for e in chunk {
                let key = format!(
                    "{}.{}",
                    e["service"].as_str().unwrap_or("x"),
                    e["destination"].as_str().unwrap_or("x")
                );
                let properties = lapin::BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into())
                    .with_message_id(e["submission_id"].as_str().unwrap_or("none").into());
                confirms.push(
                    channel
                        .basic_publish(
                            self.config.amqp.exchange.as_str().into(),
                            key.as_str().into(),
                            lapin::options::BasicPublishOptions::default(),
                            &serde_json::to_vec(e)?,
                            properties,
                        )
                        .await?,
                );
            }
            for c in confirms {
                anyhow::ensure!(c.await?.is_ack(), "RabbitMQ refused a publication");
            }
        }
        let _ = channel.close(200, "ok".into()).await;
        Ok(())
    }

    /// Consume receipt events until every id in `ids` has one; returns when
    /// the last arrived. Events of other submissions are passed over.
    pub async fn await_events_for(
        &mut self,
        ids: &std::collections::HashSet<String>,
        timeout: Duration,
    ) -> anyhow::Result<Instant> {
        let mut missing = ids.clone();
        let deadline = Instant::now() + timeout;
        while !missing.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.receipt_events.next())
                .await
                .with_context(|| {
                    format!("{} receipt events missing after {timeout:?}", missing.len())
                })?;
            let delivery = next.context("receipt event stream ended")??;
            delivery.ack(BasicAckOptions::default()).await?;
            let event: serde_json::Value = serde_json::from_slice(&delivery.data)?;
            if let Some(id) = event["submission_id"].as_str() {
                missing.remove(id);
            }
        }
        Ok(Instant::now())
    }

    pub async fn publish_envelope(&self, envelope: &serde_json::Value) -> anyhow::Result<()> {
        let body = serde_json::to_vec(envelope)?;
        let key = format!(
            "{}.{}",
            envelope["service"].as_str().unwrap_or("x"),
            envelope["destination"].as_str().unwrap_or("x")
        );
        let id = envelope["submission_id"].as_str().unwrap_or("none");
        self.publish(&key, id, &body).await
    }

    pub async fn store(&self) -> anyhow::Result<Store> {
        Ok(Store::connect(&DatabaseConfig {
            url: self.config.database.url.clone(),
            max_connections: 2,
        })
        .await?)
    }

    /// Wait until the submission has a terminal receipt.
    pub async fn await_receipt(
        &self,
        submission_id: &str,
        timeout: Duration,
    ) -> anyhow::Result<Receipt> {
        let store = self.store().await?;
        let deadline = Instant::now() + timeout;
        loop {
            // The tables exist once kurier has migrated.
            if let Ok(Some(r)) = store.receipt(&crate::sid(submission_id)).await {
                store.close().await;
                return Ok(r);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "no receipt for {submission_id} within {timeout:?}; log: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Wait until at least `n` dead letters are recorded.
    pub async fn await_dead_letters(
        &self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<DeadLetter>> {
        let store = self.store().await?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(rows) = store.dead_letters(None, None, None, 10_000, 0).await
                && rows.len() >= n
            {
                store.close().await;
                return Ok(rows);
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "fewer than {n} dead letters within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Collect `n` receipt events (routing key and JSON body); each must
    /// carry the message_id `<submission_id>.<seq>`.
    pub async fn receipt_events(
        &mut self,
        n: usize,
        timeout: Duration,
    ) -> anyhow::Result<Vec<(String, serde_json::Value)>> {
        let mut events = Vec::new();
        let deadline = Instant::now() + timeout;
        while events.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            let next = tokio::time::timeout(left, self.receipt_events.next())
                .await
                .with_context(|| {
                    format!(
                        "only {} of {n} receipt events within {timeout:?}",
                        events.len()
                    )
                })?;
            let delivery = next.context("receipt event stream ended")??;
            delivery.ack(BasicAckOptions::default()).await?;
            let event: serde_json::Value = serde_json::from_slice(&delivery.data)?;
            // CONTRACT.md § 3: every event's AMQP message_id is <submission_id>.<seq>.
            let message_id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.to_string());
            let expected = format!(
                "{}.{}",
                event["submission_id"].as_str().unwrap_or(""),
                event["seq"]
            );
            anyhow::ensure!(
                message_id.as_deref() == Some(expected.as_str()),
                "receipt event message_id {message_id:?}, expected {expected}"
            );
            events.push((delivery.routing_key.to_string(), event));
        }
        Ok(events)
    }

    /// Messages ready in the intake queue (not counting unacked ones).
    pub async fn queue_ready(&self) -> anyhow::Result<u32> {
        let channel = self.observer.create_channel().await?;
        let queue = channel
            .queue_declare(
                self.config.amqp.queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "ok".into()).await;
        Ok(queue.message_count())
    }

    /// Panics if a canary (plain or base64) is in anything Kurier keeps.
    pub async fn assert_nothing_kept_contains(&self, canary: &str, when: &str) {
        let mut needles = vec![canary.to_owned()];
        needles.extend(base64_forms(canary));
        let kept = self
            .everything_kept()
            .await
            .expect("what Kurier keeps is readable");
        for (name, bytes) in &kept {
            for needle in &needles {
                assert!(
                    !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                    "{when}: {needle} found in {name}"
                );
            }
        }
    }

    /// Every byte Kurier keeps: the SQLite files or a text dump of the
    /// PostgreSQL tables, and the log.
    pub async fn everything_kept(&self) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
        let mut kept = vec![("kurier.log".to_owned(), std::fs::read(self.log_path())?)];
        match self.backend {
            Backend::Sqlite => {
                for entry in std::fs::read_dir(self.dir.path())? {
                    let path = entry?.path();
                    let name = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("")
                        .to_owned();
                    if name.starts_with("kurier.db") {
                        kept.push((name, std::fs::read(&path)?));
                    }
                }
            }
            Backend::Postgres => {
                let pool = sqlx::PgPool::connect(&self.config.database.url).await?;
                for table in [
                    "receipts",
                    "dead_letters",
                    "parked",
                    "transport_messages",
                    "outbox",
                ] {
                    let sql = match table {
                        "receipts" => "SELECT t::text FROM receipts t",
                        "parked" => "SELECT t::text FROM parked t",
                        "transport_messages" => "SELECT t::text FROM transport_messages t",
                        // The body is JSON in a bytea: as text, not hex.
                        "outbox" => {
                            "SELECT submission_id || ' ' || convert_from(body, 'UTF8') FROM outbox"
                        }
                        _ => "SELECT t::text FROM dead_letters t",
                    };
                    let rows: Vec<(String,)> = sqlx::query_as(sql).fetch_all(&pool).await?;
                    let text: Vec<String> = rows.into_iter().map(|r| r.0).collect();
                    kept.push((format!("postgres:{table}"), text.join("\n").into_bytes()));
                }
                pool.close().await;
            }
        }
        Ok(kept)
    }
}

/// base64 forms of `text` at the three byte alignments (the stable middle),
/// so a canary is found however it was encoded in an attachment.
pub fn base64_forms(text: &str) -> Vec<String> {
    use base64::Engine;
    (0..3)
        .map(|k| {
            let mut bytes = vec![b'x'; k];
            bytes.extend_from_slice(text.as_bytes());
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            encoded[4..encoded.len() - 4].to_owned()
        })
        .collect()
}

/// A portal listening for its receipt events, as the load tools do: an
/// exclusive, auto-deleted queue bound to `exchange` with each portal id as
/// routing key, consumed with acks.
pub async fn listen_for_events(
    channel: &lapin::Channel,
    exchange: &str,
    portals: &[String],
    tag: &str,
) -> lapin::Result<lapin::Consumer> {
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    for portal in portals {
        channel
            .queue_bind(
                queue.name().clone(),
                exchange.into(),
                portal.as_str().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
    }
    channel
        .basic_consume(
            queue.name().clone(),
            tag.into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
}

/// Resident set size and its peak (VmRSS, VmHWM) of a process, in KiB.
pub fn rss_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Run a shell command from an environment variable set by
/// deploy/local/services.sh (e.g. KURIER_RABBITMQCTL, KURIER_PG_CTL).
pub fn service_command(var: &str, args: &str) {
    let command =
        std::env::var(var).unwrap_or_else(|_| panic!("{var} is set by deploy/local/services.sh"));
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} {args}"))
        .status()
        .expect("the service command runs");
    assert!(status.success(), "{var} {args} failed");
}

/// A loopback port for a listener Kurier opens later (admin, probe).
///
/// Not one the kernel hands out for `127.0.0.1:0`: those come from the
/// ephemeral range (32768–60999 here), from which every outgoing connection
/// (to RabbitMQ, PostgreSQL, the test authority) also takes its source port.
/// Between this choice and Kurier's `bind`, or while a `kill -9`ed Kurier is
/// restarted on the same address, such a connection could take the port and
/// Kurier would stop with "address already in use" (seen under load in CI,
/// as a missing receipt). So the port is drawn from 10000–19999: below the
/// ephemeral range and below RabbitMQ's distribution ports (AMQP port +
/// 20000), never twice in one test process, and only if it binds now.
fn free_port() -> anyhow::Result<u16> {
    use std::sync::Mutex;
    const RANGE: std::ops::Range<u16> = 10_000..20_000;
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    anyhow::ensure!(
        ephemeral_low >= RANGE.end,
        "the ephemeral port range starts at {ephemeral_low}, inside the test ports {RANGE:?}"
    );
    let span = RANGE.end - RANGE.start;
    let start = (uuid::Uuid::new_v4().as_u128() % u128::from(span)) as u16;
    let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    for i in 0..span {
        let port = RANGE.start + (start + i) % span;
        if handed_out.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed_out.push(port);
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port in {RANGE:?}")
}

/// An HTTP answer: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct HttpAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpAnswer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }
}

/// A minimal HTTP/1.1 client over a raw socket (the admin endpoint is plain
/// HTTP on loopback).
pub async fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> anyhow::Result<HttpAnswer> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    exchange(stream, addr, method, path, headers, body).await
}

/// The same over TLS, verifying the server against `ca_pem` and the host
/// name `server_name` (e.g. `localhost`).
pub async fn https(
    addr: &str,
    ca_pem: &str,
    server_name: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> anyhow::Result<HttpAnswer> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(kurier::delivery::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from(server_name.to_owned())?;
    let stream = connector.connect(name, tcp).await?;
    exchange(stream, addr, method, path, headers, body).await
}

async fn exchange<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> anyhow::Result<HttpAnswer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    match stream.read_to_end(&mut response).await {
        Ok(_) => {}
        // A TLS peer that closes without close_notify after a full answer.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !response.is_empty() => {}
        Err(e) => return Err(e.into()),
    }
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").context("malformed answer")?;
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        let mut out = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            out.push_str(&after[..size]);
            rest = after[size..].trim_start_matches("\r\n");
        }
        out
    } else {
        rest.to_owned()
    };
    Ok(HttpAnswer {
        status,
        headers,
        body,
    })
}

impl World {
    /// A request to the admin endpoint, with this world's token if `auth`.
    pub async fn admin_request(
        &self,
        method: &str,
        path: &str,
        auth: bool,
        body: Option<&str>,
    ) -> anyhow::Result<HttpAnswer> {
        let token = auth.then(|| self.admin_token.clone());
        self.admin_request_as(token.as_deref(), method, path, body)
            .await
    }

    /// A request to the admin endpoint with `token` (none: no
    /// `Authorization`), over TLS when the world serves it so.
    pub async fn admin_request_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<HttpAnswer> {
        let bearer = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(b) = &bearer {
            headers.push(("Authorization", b.as_str()));
        }
        self.admin_raw(method, path, &headers, body).await
    }

    /// Any request to the admin endpoint (TLS when it serves TLS).
    pub async fn admin_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> anyhow::Result<HttpAnswer> {
        match &self.admin_ca {
            Some(ca) => https(&self.admin, ca, "localhost", method, path, headers, body).await,
            None => http(&self.admin, method, path, headers, body).await,
        }
    }

    /// Wait until the admin endpoint answers `/readyz` with 200.
    pub async fn await_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(a) = self.admin_raw("GET", "/readyz", &[], None).await
                && a.status == 200
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "kurier not ready within {timeout:?}; log: {}",
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn create_pg_database(name: &str) -> anyhow::Result<String> {
    let admin_url = postgres_url();
    let pool = sqlx::PgPool::connect(&admin_url).await?;
    // The name is our own hex tag: safe to splice.
    let sql = format!("CREATE DATABASE {name}");
    sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
    pool.close().await;
    let base = admin_url
        .rsplit_once('/')
        .map(|(b, _)| b)
        .unwrap_or(&admin_url);
    Ok(format!("{base}/{name}"))
}

/// A fresh envelope from a sample: new submission id, optional changes.
pub fn fresh(sample_name: &str) -> serde_json::Value {
    let mut e = sample(sample_name);
    e["submission_id"] = serde_json::Value::String(uuid::Uuid::new_v4().to_string());
    e
}

/// A canary that must never show where no payload may be: unique per world.
pub fn canary(world: &World) -> String {
    format!("kanarie{}", world.tag)
}

/// An hzl envelope for `destination` with the canary as the applicant's name.
pub fn envelope_for(world: &World, destination: &str) -> serde_json::Value {
    let mut e = fresh("hzl-minimal.json");
    e["destination"] = serde_json::json!(destination);
    e["form"]["applicant"]["given_names"] = serde_json::json!(canary(world));
    e
}

/// A command's stdout, as text.
pub fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A command's stderr, as text.
pub fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Generate one test per backend from a scenario `async fn(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario($crate::Backend::Sqlite).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$scenario($crate::Backend::Postgres).await;
                }
            }
        )*
    };
}

/// The sha256 (hex) of bytes, as Kurier writes it.
pub fn sha256_hex(bytes: &[u8]) -> String {
    kurier::domain::digest::sha256_hex(bytes)
}

pub use kurier::config::DestinationConfig;
pub use serde_json::json;

/// Amqp configuration of a world, for publishers outside the world.
pub fn amqp_of(world: &World) -> AmqpConfig {
    world.config.amqp.clone()
}

/// A submission id as the store takes it, from a test's text (not checked:
/// a test may look up anything).
pub fn sid(id: impl AsRef<str>) -> kurier::domain::id::SubmissionId {
    kurier::domain::id::SubmissionId::from_stored(id.as_ref())
}

/// A destination id as the store and the operations take it, from a test's
/// text.
pub fn did(id: impl AsRef<str>) -> kurier::domain::id::DestinationId {
    kurier::domain::id::DestinationId::new(id.as_ref())
}
