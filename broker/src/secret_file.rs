//! Files that hold secrets — the vault master keys, the admin token file,
//! the admin TLS key, destinations' client keys — are refused when every
//! account on the machine may read them (CONTRACT.md § 7): a key that others
//! can read is a key that has leaked. Checked at start, by `check-config`
//! and whenever such a file is (re)read.
//!
//! Reads file metadata only.

use std::path::Path;

/// `Err` with a message that names the file and the fix when others (the
/// world) may read `path`. A file that does not exist passes: whoever opens
/// it next reports that.
pub fn check(what: &str, path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o004 != 0 {
                return Err(format!(
                    "{what} {path} is readable by others (mode {mode:03o}); it holds a secret: run `chmod 600 {path}` (owned by the account Kurier runs as)",
                    path = path.display()
                ));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (what, path);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_world_readable_file_is_refused_with_its_name_and_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin.tokens");
        std::fs::write(&file, "a:b\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = super::check("[admin] token_file", &file).unwrap_err();
        assert!(err.contains(&file.display().to_string()), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(super::check("[admin] token_file", &file).is_ok());
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(super::check("[admin] token_file", &file).is_ok());
    }
}
