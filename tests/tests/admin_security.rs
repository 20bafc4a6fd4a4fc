//! The admin surface keeps its secrets (CONTRACT.md § 7): `/api` and the
//! console over TLS with a certificate the client verifies, plain HTTP off
//! loopback refused by `check-config`, roles per token (403), a console
//! session that ends when its token is revoked, login rate limiting (429),
//! key and token files that others may read refused, and the CLI's audit
//! actor taken from the OS account, not the environment.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use kurier_e2e::{
    Backend, HttpAnswer, World, WorldOptions, envelope_for, json, on_both_backends, pki, stderr,
    stdout, workspace_bin,
};

const WAIT: Duration = Duration::from_secs(60);

on_both_backends!(a_token_may_do_what_its_roles_say_and_a_payload_view_is_audited);

/// A token of 32 hex characters.
fn new_token() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

fn write_tokens(world: &World, lines: &str) {
    pki::write_key(&world.token_file, lines).unwrap();
}

/// The operator lines of the world plus `more`.
fn tokens_with(world: &World, more: &str) -> String {
    format!(
        "e2e-operator:read,operate,view_payload:{}\n{more}",
        world.admin_token
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_console_are_served_over_tls_and_the_probes_in_plain_http() {
    let mut options = WorldOptions::new(Backend::Sqlite);
    options.admin_tls = true;
    options.probe_listen = true;
    let mut world = World::start(options).await.unwrap();
    world.start_kurier().unwrap();
    world.await_ready(WAIT).await.unwrap();

    // Over TLS, verified against the admin CA and the name localhost.
    let ok = world
        .admin_request("GET", "/api/status", true, None)
        .await
        .unwrap();
    assert_eq!(ok.status, 200, "{}", ok.body);
    let none = world
        .admin_request("GET", "/api/status", false, None)
        .await
        .unwrap();
    assert_eq!(none.status, 401);

    // Plain HTTP to the TLS listener gets no HTTP answer.
    let plain = kurier_e2e::http(&world.admin, "GET", "/healthz", &[], None).await;
    assert!(plain.is_err(), "plain HTTP answered: {plain:?}");
    // A client that trusts another CA does not get through either.
    let rogue = pki::Ca::new("Rogue CA").unwrap();
    let untrusted = kurier_e2e::https(
        &world.admin,
        &rogue.pem(),
        "localhost",
        "GET",
        "/healthz",
        &[],
        None,
    )
    .await;
    assert!(untrusted.is_err(), "{untrusted:?}");

    // The console's cookie is Secure over TLS.
    let login = console_login(&world, &world.admin_token).await;
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login.header("set-cookie").unwrap();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }

    // The probe listener: plain HTTP, the probes and nothing else.
    let probe = world.probe.clone().unwrap();
    for path in ["/healthz", "/readyz", "/metrics"] {
        let a = kurier_e2e::http(&probe, "GET", path, &[], None)
            .await
            .unwrap();
        assert_eq!(a.status, 200, "{path}: {}", a.body);
    }
    let bearer = format!("Bearer {}", world.admin_token);
    for path in ["/api/status", "/"] {
        let a = kurier_e2e::http(&probe, "GET", path, &[("Authorization", &bearer)], None)
            .await
            .unwrap();
        assert_eq!(a.status, 404, "{path} on the probe listener: {}", a.body);
    }

    // A renewed certificate (here from another CA) is served without a
    // restart.
    let renewed_ca = pki::Ca::new("Kurier Admin CA 2").unwrap();
    let renewed = renewed_ca.server().unwrap();
    pki::write_key(&world.dir.path().join("admin.key"), &renewed.key_pem).unwrap();
    std::fs::write(world.dir.path().join("admin.pem"), &renewed.cert_pem).unwrap();
    world.admin_ca = Some(renewed_ca.pem());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match world.admin_request("GET", "/api/status", true, None).await {
            Ok(a) if a.status == 200 => break,
            other => assert!(
                std::time::Instant::now() < deadline,
                "renewed certificate not served: {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(world.log_path()).unwrap();
    assert!(log.contains("admin TLS certificate reloaded"), "{log}");
}

async fn console_login(world: &World, token: &str) -> HttpAnswer {
    let body = format!("token={token}");
    world
        .admin_raw(
            "POST",
            "/login",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            Some(&body),
        )
        .await
        .unwrap()
}

/// The `name=value` of a Set-Cookie header.
fn session_of(login: &HttpAnswer) -> String {
    login
        .header("set-cookie")
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned()
}

async fn console_page(world: &World, session: &str) -> HttpAnswer {
    world
        .admin_raw("GET", "/", &[("Cookie", session)], None)
        .await
        .unwrap()
}

async fn a_token_may_do_what_its_roles_say_and_a_payload_view_is_audited(backend: Backend) {
    let mut world = World::start(WorldOptions::new(backend)).await.unwrap();
    let (reader, viewer, legacy) = (new_token(), new_token(), new_token());
    write_tokens(
        &world,
        &tokens_with(
            &world,
            &format!("reader:read:{reader}\nviewer:view_payload:{viewer}\nold-style:{legacy}\n"),
        ),
    );
    world.start_kurier().unwrap();
    world.await_ready(WAIT).await.unwrap();

    // A dead letter that keeps its payload: no route for the destination.
    let envelope = envelope_for(&world, "sozialamt-bonn");
    let id = envelope["submission_id"].as_str().unwrap().to_owned();
    let canary = kurier_e2e::canary(&world);
    world.publish_envelope(&envelope).await.unwrap();
    world.await_dead_letters(1, WAIT).await.unwrap();

    let replay = json!({"ids": [id]}).to_string();
    let view = json!({"reason": "ticket 4711"}).to_string();
    let payload_path = format!("/api/dead-letters/{id}/payload");

    // Every token may read.
    for token in [&reader, &viewer, &legacy] {
        let list = world
            .admin_request_as(Some(token), "GET", "/api/dead-letters", None)
            .await
            .unwrap();
        assert_eq!(list.status, 200, "{}", list.body);
        assert!(list.body.contains(&id));
    }
    // read (and the old name:token form) may neither act nor see a payload.
    for token in [&reader, &legacy] {
        let a = world
            .admin_request_as(
                Some(token),
                "POST",
                "/api/dead-letters/replay",
                Some(&replay),
            )
            .await
            .unwrap();
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(a.body.contains("operate"), "{}", a.body);
        let a = world
            .admin_request_as(Some(token), "POST", &payload_path, Some(&view))
            .await
            .unwrap();
        assert_eq!(a.status, 403, "{}", a.body);
        assert!(a.body.contains("view_payload"), "{}", a.body);
        assert!(!a.body.contains(&canary));
        let a = world
            .admin_request_as(
                Some(token),
                "POST",
                "/api/destinations/sozialamt-koeln/pause",
                None,
            )
            .await
            .unwrap();
        assert_eq!(a.status, 403, "{}", a.body);
    }
    // view_payload sees the payload, and that is in the audit trail under
    // its name; it still may not replay.
    let seen = world
        .admin_request_as(Some(&viewer), "POST", &payload_path, Some(&view))
        .await
        .unwrap();
    assert_eq!(seen.status, 200, "{}", seen.body);
    assert!(seen.body.contains(&canary));
    let a = world
        .admin_request_as(
            Some(&viewer),
            "POST",
            "/api/dead-letters/replay",
            Some(&replay),
        )
        .await
        .unwrap();
    assert_eq!(a.status, 403, "{}", a.body);
    let audit = world
        .admin_request_as(Some(&reader), "GET", "/api/audit", None)
        .await
        .unwrap()
        .json()
        .unwrap();
    let rows = audit.as_array().unwrap();
    assert_eq!(
        rows.len(),
        1,
        "only the payload view changed anything: {audit}"
    );
    assert_eq!(rows[0]["action"], "view_payload");
    assert_eq!(rows[0]["operator"], "viewer");
    assert_eq!(rows[0]["submission_ids"], id.as_str());
    assert_eq!(rows[0]["reason"], "ticket 4711");

    // The reader's console shows no buttons and refuses a forged action.
    let login = console_login(&world, &reader).await;
    assert_eq!(login.status, 303, "{}", login.body);
    let session = session_of(&login);
    let page = console_page(&world, &session).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("signed in as <b>reader</b>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("name=csrf"), "no action forms for read");

    // The CLI's actor is the OS account, whatever $USER says.
    let out = std::process::Command::new(workspace_bin("kurier"))
        .args([
            "dead-letters",
            "show",
            &id,
            "--payload",
            "--reason",
            "ticket 4712",
            "--json",
        ])
        .env("KURIER_CONFIG", &world.config_path)
        .env("USER", "mallory")
        .env("LOGNAME", "mallory")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let audit = world
        .admin_request("GET", "/api/audit", true, None)
        .await
        .unwrap()
        .json()
        .unwrap();
    let cli = audit
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["reason"] == "ticket 4712")
        .expect("the CLI's payload view is audited");
    assert_ne!(cli["operator"], "mallory");
    assert_eq!(
        cli["operator"],
        kurier::operator::ops::Actor::os_user().0.as_str()
    );

    // The token with every role replays.
    let a = world
        .admin_request("POST", "/api/dead-letters/replay", true, Some(&replay))
        .await
        .unwrap();
    assert_eq!(a.status, 200, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_console_session_ends_when_its_token_is_revoked_and_failed_logins_are_limited() {
    let mut world = World::start(WorldOptions::new(Backend::Sqlite))
        .await
        .unwrap();
    let anna = new_token();
    write_tokens(
        &world,
        &tokens_with(&world, &format!("anna:read,operate:{anna}\n")),
    );
    world.start_kurier().unwrap();
    world.await_ready(WAIT).await.unwrap();

    let login = console_login(&world, &anna).await;
    assert_eq!(login.status, 303, "{}", login.body);
    let cookie = login.header("set-cookie").unwrap().to_owned();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    assert!(
        !cookie.contains("Secure"),
        "plain HTTP on loopback: {cookie}"
    );
    assert!(!cookie.contains(&anna), "the cookie is not the token");
    let session = session_of(&login);
    let page = console_page(&world, &session).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("signed in as <b>anna</b>"));
    assert!(page.body.contains("name=csrf"), "operate: action forms");

    // Revoked: the next request ends the session.
    write_tokens(&world, &tokens_with(&world, ""));
    let page = console_page(&world, &session).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("no longer valid"), "{}", page.body);
    assert!(!page.body.contains("signed in as"));
    assert!(
        page.header("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    // Given back, the token does not revive the old session.
    write_tokens(
        &world,
        &tokens_with(&world, &format!("anna:read,operate:{anna}\n")),
    );
    let page = console_page(&world, &session).await;
    assert!(!page.body.contains("signed in as"), "{}", page.body);

    // Five wrong tokens a minute from one address; then 429, even for the
    // right token, with Retry-After.
    for _ in 0..5 {
        let wrong = console_login(&world, &new_token()).await;
        assert_eq!(wrong.status, 401, "{}", wrong.body);
    }
    let limited = console_login(&world, &anna).await;
    assert_eq!(limited.status, 429, "{}", limited.body);
    let retry: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=61).contains(&retry), "{retry}");
    // The API counts the same guesses.
    let api = world
        .admin_request("GET", "/api/status", true, None)
        .await
        .unwrap();
    assert_eq!(api.status, 429, "{}", api.body);
    assert!(api.header("retry-after").is_some());
}

/// A configuration for `check-config` in `dir`: a real destination (its
/// certificates from the test PKI), the given `[admin]` keys.
fn config_in(dir: &Path, admin: &str) -> std::path::PathBuf {
    let pki = pki::write_pki(&dir.join("certs")).unwrap();
    let text = format!(
        r#"
[amqp]
url = "amqp://guest:guest@127.0.0.1:5672/%2f"

[database]
url = "sqlite://{dir}/kurier.db"

[admin]
{admin}

[vault]
key_file = "{dir}/vault.key"

[[destinations]]
id = "sozialamt-koeln"
adapter = "xsozial-hzl"
endpoint = "https://localhost:8443/antraege"
ca_file = "{ca}"
client_cert_file = "{cert}"
client_key_file = "{key}"
"#,
        dir = dir.display(),
        ca = pki.authority_ca.display(),
        cert = pki.kurier_cert.display(),
        key = pki.kurier_key.display(),
    );
    let path = dir.join("kurier.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn check_config(config: &Path) -> std::process::Output {
    std::process::Command::new(workspace_bin("kurier"))
        .args(["check-config", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

#[test]
fn check_config_refuses_plain_http_off_loopback_unless_explicitly_allowed() {
    let dir = tempfile::tempdir().unwrap();
    // Never bound: check-config only reads the file.
    let config = config_in(dir.path(), "listen = \"0.0.0.0:9090\"");
    let out = check_config(&config);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("line 9"), "{err}");
    assert!(err.contains("[admin] listen = \"0.0.0.0:9090\""), "{err}");
    assert!(err.contains("tls_cert_file"), "{err}");

    let config = config_in(
        dir.path(),
        "listen = \"0.0.0.0:9090\"\nallow_plaintext = true",
    );
    let out = check_config(&config);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("allow_plaintext"), "{}", stdout(&out));

    let config = config_in(dir.path(), "listen = \"127.0.0.1:9090\"");
    assert!(check_config(&config).status.success());

    // TLS: both files, and they must belong together.
    let admin_ca = pki::Ca::new("Admin CA").unwrap();
    let leaf = admin_ca.server().unwrap();
    let (cert, key) = (dir.path().join("admin.pem"), dir.path().join("admin.key"));
    std::fs::write(&cert, &leaf.cert_pem).unwrap();
    pki::write_key(&key, &leaf.key_pem).unwrap();
    let config = config_in(
        dir.path(),
        &format!(
            "listen = \"0.0.0.0:9090\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\nprobe_listen = \"0.0.0.0:9091\"",
            cert.display(),
            key.display()
        ),
    );
    let out = check_config(&config);
    assert!(out.status.success(), "{}", stderr(&out));
    let config = config_in(
        dir.path(),
        &format!(
            "listen = \"0.0.0.0:9090\"\ntls_cert_file = \"{}\"",
            cert.display()
        ),
    );
    let err = stderr(&check_config(&config));
    assert!(err.contains("tls_key_file"), "{err}");
}

#[test]
fn key_and_token_files_that_others_may_read_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("admin.tokens");
    pki::write_key(&tokens, &format!("anna:read:{}\n", new_token())).unwrap();
    let config = config_in(
        dir.path(),
        &format!(
            "listen = \"127.0.0.1:9090\"\ntoken_file = \"{}\"",
            tokens.display()
        ),
    );
    let ok = check_config(&config);
    assert!(ok.status.success(), "{}", stderr(&ok));
    let chmod = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    // World-readable: check-config names the setting, the file and the fix.
    let refused = |file: &Path, setting: &str| {
        chmod(file, 0o644);
        let err = stderr(&check_config(&config));
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains(setting) && err.contains("chmod 600"), "{err}");
    };

    // The token file, at check-config and at start.
    refused(&tokens, "[admin] token_file");
    let run = std::process::Command::new(workspace_bin("kurier"))
        .args(["run", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!run.status.success());
    assert!(
        stderr(&run).contains(&format!("chmod 600 {}", tokens.display())),
        "{}",
        stderr(&run)
    );
    chmod(&tokens, 0o600);

    // The vault master key.
    let vault_key = dir.path().join("vault.key");
    kurier::vault::create_key_file(&vault_key).unwrap();
    assert!(check_config(&config).status.success());
    refused(&vault_key, "[vault] key_file");
    chmod(&vault_key, 0o600);

    // A destination's client key.
    let client_key = dir.path().join("certs/kurier.key");
    refused(&client_key, "client_key_file");
    chmod(&client_key, 0o600);

    // A broken line of the token file is named by its number, never its token.
    let token = new_token();
    pki::write_key(&tokens, &format!("# operators\nanna:read,root:{token}\n")).unwrap();
    let err = stderr(&check_config(&config));
    assert!(
        err.contains("line 2") && err.contains("unknown role \"root\""),
        "{err}"
    );
    assert!(!err.contains(&token), "{err}");
    pki::write_key(&tokens, &format!("anna:read:{token}\n")).unwrap();
    assert!(check_config(&config).status.success());
}
