//! The operators' token file (`[admin] token_file`) and what each token may
//! do. One operator per line, `#` starts a comment:
//!
//! ```text
//! anna.schmidt:read,operate:3f9c0a…     name:roles:token
//! revision:read,view_payload:9be14d…
//! monitoring:5d21e7…                    name:token — the old form: read only
//! ```
//!
//! Roles: `read` (list and show metadata, status, receipts, audit),
//! `operate` (replay, purge, parked actions, pause and resume),
//! `view_payload` (the decrypted payload, always audited). Every token may
//! read; the other two are given explicitly. The old `name:token` form is
//! read on the safe side: it gives `read` only, so a file written before
//! roles existed grants no action and no payload until someone says so.
//!
//! The file is read on every request that needs it, so adding, changing or
//! removing a line takes effect at once (console sessions included: a
//! session remembers the digest of its token and ends when no line has it
//! any more). A file that others may read is refused altogether.
//!
//! Tokens are compared as SHA-256 digests in constant time: every line is
//! compared, and the comparison takes as long for a token that shares a
//! prefix or a length with a real one as for any other.
//!
//! Reads the token file; touches nothing else.

use std::path::{Path, PathBuf};

use aws_lc_rs::digest;

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// List and show metadata, status, receipts, the audit trail.
    Read,
    /// Replay, purge, parked-queue actions, pause and resume.
    Operate,
    /// The decrypted payload of a dead letter (always audited).
    ViewPayload,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Read, Role::Operate, Role::ViewPayload];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::ViewPayload => "view_payload",
        }
    }

    fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// What the role is needed for, for the 403 message.
    pub fn needed_for(self) -> &'static str {
        match self {
            Role::Read => "to list and show",
            Role::Operate => {
                "to replay, purge, act on parked submissions, pause or resume destinations"
            }
            Role::ViewPayload => "to view a payload",
        }
    }
}

/// The SHA-256 of a token: what is compared and what a console session
/// remembers instead of the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    pub fn of(token: &str) -> TokenDigest {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest::digest(&digest::SHA256, token.as_bytes()).as_ref());
        TokenDigest(out)
    }

    /// Constant time; both sides are 32 bytes, so no length leaks either.
    fn matches(&self, other: &TokenDigest) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, &other.0).is_ok()
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(…)")
    }
}

/// An operator as the token file describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    roles: Vec<Role>,
}

impl Operator {
    pub fn may(&self, role: Role) -> bool {
        role == Role::Read || self.roles.contains(&role)
    }

    /// The roles as written in the token file (`read` always included).
    pub fn roles(&self) -> Vec<&'static str> {
        Role::ALL
            .into_iter()
            .filter(|r| self.may(*r))
            .map(Role::as_str)
            .collect()
    }

    /// Why a request without `role` is refused (for the 403 answer).
    pub fn lacks(&self, role: Role) -> String {
        format!(
            "operator {:?} lacks the role {} (needed {}); its roles: {}. Give it in [admin] token_file as {}:{}:<token>",
            self.name,
            role.as_str(),
            role.needed_for(),
            self.roles().join(","),
            self.name,
            self.roles()
                .into_iter()
                .chain([role.as_str()])
                .collect::<Vec<_>>()
                .join(","),
        )
    }
}

struct Entry {
    operator: Operator,
    digest: TokenDigest,
}

/// Tokens shorter than this are refused: a guessable token is no token.
pub const MIN_TOKEN_LEN: usize = 16;

/// Parse the file's text: the usable entries and a problem per broken line
/// (by line number; a problem never quotes a token).
fn parse(text: &str) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (n, line) = (i + 1, line.trim());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split(':').map(str::trim).collect();
        let (name, roles, token) = match parts.as_slice() {
            [name, token] => (*name, vec![Role::Read], *token),
            [name, roles, token] => {
                let mut parsed = Vec::new();
                let mut unknown = None;
                for r in roles.split(',').map(str::trim).filter(|r| !r.is_empty()) {
                    match Role::parse(r) {
                        Some(role) => parsed.push(role),
                        None => unknown = Some(r.to_owned()),
                    }
                }
                if let Some(r) = unknown {
                    problems.push(format!(
                        "line {n}: unknown role {r:?} (roles: read, operate, view_payload); the line is ignored"
                    ));
                    continue;
                }
                (*name, parsed, *token)
            }
            _ => {
                problems.push(format!(
                    "line {n}: write name:token or name:role,role:token (a token contains no ':'); the line is ignored"
                ));
                continue;
            }
        };
        if name.is_empty() {
            problems.push(format!("line {n}: no operator name; the line is ignored"));
            continue;
        }
        if token.len() < MIN_TOKEN_LEN {
            problems.push(format!(
                "line {n} ({name}): the token is shorter than {MIN_TOKEN_LEN} characters (use e.g. `openssl rand -hex 32`); the line is ignored"
            ));
            continue;
        }
        entries.push(Entry {
            operator: Operator {
                name: name.to_owned(),
                roles,
            },
            digest: TokenDigest::of(token),
        });
    }
    (entries, problems)
}

/// Read and parse the token file, refusing it when others may read it.
fn read(file: &Path) -> Result<(Vec<Entry>, Vec<String>), String> {
    crate::secret_file::check("[admin] token_file", file)?;
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("[admin] token_file {}: {e}", file.display()))?;
    Ok(parse(&text))
}

/// For `check-config`: the file is usable and every line is well formed.
pub fn check_file(file: &Path) -> Result<(), String> {
    let (_, problems) = read(file)?;
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "[admin] token_file {}:\n  {}",
            file.display(),
            problems.join("\n  ")
        ))
    }
}

/// The operators' tokens (`[admin] token_file`).
pub struct Tokens {
    file: Option<PathBuf>,
    /// The problems last logged: each is logged once, not per request.
    logged: std::sync::Mutex<Vec<String>>,
}

impl Tokens {
    pub fn new(file: Option<PathBuf>) -> Tokens {
        Tokens {
            file,
            logged: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Log `problems` if they are not the ones logged last time.
    fn log_once(&self, problems: Vec<String>, log: impl Fn(&str)) {
        // A poisoned lock only means a panic elsewhere; the list stays usable.
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if *logged != problems {
            problems.iter().for_each(|p| log(p));
            *logged = problems;
        }
    }

    /// The file's entries now; none (refuse everything) when there is no
    /// file or it cannot be used. Broken lines are logged by number (once
    /// while they stay the same), never the token.
    fn entries(&self) -> Vec<Entry> {
        let Some(file) = &self.file else {
            return Vec::new();
        };
        match read(file) {
            Ok((entries, problems)) => {
                self.log_once(problems, |p| {
                    tracing::warn!(token_file = %file.display(), "{p}");
                });
                entries
            }
            Err(e) => {
                self.log_once(vec![e], |e| {
                    tracing::error!("{e}; refusing every operator token");
                });
                Vec::new()
            }
        }
    }

    /// The operator whose token this is.
    pub fn operator(&self, presented: &str) -> Option<Operator> {
        self.by_digest(&TokenDigest::of(presented))
    }

    /// The operator whose token has this digest, if the file still holds
    /// it. Every line is compared, so the timing says nothing about which
    /// line matched or came close.
    pub fn by_digest(&self, presented: &TokenDigest) -> Option<Operator> {
        let mut found = None;
        for entry in self.entries() {
            if entry.digest.matches(presented) && found.is_none() {
                found = Some(entry.operator);
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn the_old_form_reads_only_and_roles_are_given_explicitly() {
        let text = format!(
            "# operators\nmonitoring:{A}\nanna:read,operate,view_payload:{B}\nbad:root:{A}x\nshort:abc\n"
        );
        let (entries, problems) = parse(&text);
        assert_eq!(entries.len(), 2);
        let monitoring = &entries[0].operator;
        assert_eq!(monitoring.name, "monitoring");
        assert!(monitoring.may(Role::Read));
        assert!(!monitoring.may(Role::Operate));
        assert!(!monitoring.may(Role::ViewPayload));
        let anna = &entries[1].operator;
        assert!(anna.may(Role::Operate) && anna.may(Role::ViewPayload));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("line 4:") && problems[0].contains("\"root\""));
        assert!(problems[1].starts_with("line 5"));
        assert!(
            problems
                .iter()
                .all(|p| !p.contains(A) && !p.contains("abc\""))
        );
    }

    #[test]
    fn a_token_matches_by_digest_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin.tokens");
        std::fs::write(&file, format!("anna:operate:{A}\n")).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let tokens = Tokens::new(Some(file.clone()));
        assert_eq!(tokens.operator(A).unwrap().name, "anna");
        assert!(tokens.operator(&A[..31]).is_none());
        assert!(tokens.operator(&format!("{A}0")).is_none());
        assert!(tokens.operator(B).is_none());
        assert!(Tokens::new(None).operator(A).is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(
                tokens.operator(A).is_none(),
                "a world-readable file is refused"
            );
            assert!(check_file(&file).unwrap_err().contains("chmod 600"));
        }
    }
}
