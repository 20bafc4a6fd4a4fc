//! What the user writes for a `transport = "fit-connect"` destination
//! (CONTRACT.md § 6; the fields live in
//! [`crate::config::DestinationConfig`]): checked here, so that
//! `kurier check-config` names a missing key, a plaintext URL or a secret
//! file that others may read before anything connects.

use crate::config::DestinationConfig;

/// The transport's name in `transport = "…"`.
pub const TRANSPORT: &str = "fit-connect";

/// The keys a FIT-Connect destination must have.
pub const REQUIRED: [&str; 6] = [
    "fit_token_url",
    "fit_submission_api",
    "fit_destination_id",
    "fit_client_id",
    "fit_client_secret_file",
    "fit_service_identifier",
];

/// `Err` names the first problem; `Ok` carries warnings.
pub fn check(d: &DestinationConfig) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    let secret = d
        .fit_client_secret_file
        .as_ref()
        .map(|p| p.display().to_string());
    for (key, value) in REQUIRED.iter().zip([
        &d.fit_token_url,
        &d.fit_submission_api,
        &d.fit_destination_id,
        &d.fit_client_id,
        &secret,
        &d.fit_service_identifier,
    ]) {
        if value.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return Err(format!("transport = \"fit-connect\" needs {key}"));
        }
    }
    for (key, url) in [
        ("fit_token_url", &d.fit_token_url),
        ("fit_submission_api", &d.fit_submission_api),
    ] {
        let url = url.as_deref().unwrap_or_default();
        match reqwest::Url::parse(url) {
            Ok(u) if u.scheme() == "https" => {}
            Ok(u) if u.scheme() == "http" && d.allow_insecure_http => warnings.push(format!(
                "{key} {url} is plaintext HTTP (development only): the token and the encrypted submission travel unprotected"
            )),
            Ok(_) => {
                return Err(format!(
                    "{key} {url} must be an https:// URL (or set allow_insecure_http = true for local development only)"
                ));
            }
            Err(e) => return Err(format!("{key} {url} is not a URL: {e}")),
        }
    }
    let destination = d.fit_destination_id.as_deref().unwrap_or_default();
    if uuid::Uuid::parse_str(destination).is_err() {
        return Err(format!("fit_destination_id {destination:?} is not a UUID"));
    }
    if let Some(file) = &d.fit_client_secret_file {
        if !file.is_file() {
            return Err(format!(
                "fit_client_secret_file {} does not exist",
                file.display()
            ));
        }
        crate::secret_file::check("fit_client_secret_file", file)?;
    }
    // Their PEM is read when the destination is built (start-up and
    // `check-config` do that next).
    for (key, file) in [
        ("ca_file", &d.ca_file),
        ("fit_key_ca_file", &d.fit_key_ca_file),
    ] {
        if let Some(file) = file
            && !file.is_file()
        {
            return Err(format!("{key} {} does not exist", file.display()));
        }
    }
    if d.fit_key_ca_file.is_none() {
        warnings.push(
            "fit_key_ca_file is not set: the destination's encryption key is used without checking its certificate chain".into(),
        );
    }
    Ok(warnings)
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use crate::config::Config;

    const KEYS: &str = r#"
fit_token_url = "https://auth.example/token"
fit_submission_api = "https://submission-api.example"
fit_destination_id = "5a0f0b8e-3c1d-4e55-9a53-6a2f7c0d1e01"
fit_client_id = "kurier"
fit_client_secret_file = "@DIR@/secret"
fit_service_identifier = "urn:de:fim:leika:leistung:99050012104001"
"#;

    /// `check` of a configuration with one fit-connect destination with `keys`.
    fn check(dir: &std::path::Path, keys: &str) -> Result<Vec<String>, String> {
        let text = format!(
            "[amqp]\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n[database]\nurl = \"sqlite://@DIR@/k.db\"\n[vault]\nkey_file = \"@DIR@/vault.key\"\n[[destinations]]\nid = \"kreis-offenbach-fit\"\nadapter = \"xfall\"\ntransport = \"fit-connect\"\n{keys}"
        )
        .replace("@DIR@", &dir.display().to_string());
        Config::parse(&text, &dir.join("k.toml"))
            .map_err(|e| e.to_string())?
            .check()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn a_fit_connect_destination_needs_its_keys_https_and_a_private_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "s3cr3t\n").unwrap();
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        // No endpoint and no client certificate needed; an unchecked key
        // chain is a warning.
        let warnings = check(dir.path(), KEYS).unwrap();
        assert!(
            warnings
                .iter()
                .any(|w| w.contains("fit_key_ca_file is not set")),
            "{warnings:?}"
        );
        for (key, expect) in [
            ("fit_client_id", "needs fit_client_id"),
            ("fit_service_identifier", "needs fit_service_identifier"),
        ] {
            let without: String = KEYS
                .lines()
                .filter(|l| !l.starts_with(key))
                .map(|l| format!("{l}\n"))
                .collect();
            let err = check(dir.path(), &without).unwrap_err();
            assert!(err.contains(expect), "{err}");
        }
        let plain = KEYS.replace("https://auth", "http://auth");
        let err = check(dir.path(), &plain).unwrap_err();
        assert!(err.contains("must be an https:// URL"), "{err}");
        let not_uuid = KEYS.replace("5a0f0b8e-", "x-");
        let err = check(dir.path(), &not_uuid).unwrap_err();
        assert!(err.contains("not a UUID"), "{err}");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = check(dir.path(), KEYS).unwrap_err();
        assert!(err.contains("readable by others"), "{err}");
    }
}
