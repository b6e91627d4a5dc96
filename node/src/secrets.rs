//! BGP passwords from `secretKeyRef`s. Outside Kubernetes a Secret is a directory:
//! `<dir>/<secret>/<key>` holds the password, and the file must not be readable by group or
//! others (mode 0600 or stricter). Files are re-read at every reconcile, so a rotated password
//! takes effect without a restart.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::Error;
use crate::desired::PasswordSource;

/// Reads one password. A trailing newline is dropped.
pub fn read(dir: &Path, src: &PasswordSource) -> Result<String, Error> {
    let bad = |r: String| Error::Config {
        field: format!("secret {}/{}", src.secret, src.key),
        reason: r,
    };
    if src.secret.contains('/') || src.key.contains('/') || src.key.starts_with('.') {
        return Err(bad("names must not contain '/'".into()));
    }
    let path = dir.join(&src.secret).join(&src.key);
    let meta = std::fs::metadata(&path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "{} has mode {mode:o}; it must be 0600 (readable by its owner only)",
            path.display()
        )));
    }
    let text =
        std::fs::read_to_string(&path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let pw = text.trim_end_matches(['\n', '\r']).to_string();
    if pw.is_empty() || pw.len() > 80 {
        return Err(bad(format!(
            "{}: a password is 1 to 80 bytes",
            path.display()
        )));
    }
    Ok(pw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_and_content() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("bgp")).unwrap();
        let f = d.path().join("bgp/pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        let src = PasswordSource {
            secret: "bgp".into(),
            key: "pw".into(),
        };
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read(d.path(), &src).unwrap_err().to_string();
        assert!(e.contains("0600"), "{e}");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read(d.path(), &src).unwrap(), "s3cret");
        let bad = PasswordSource {
            secret: "..".into(),
            key: "../x".into(),
        };
        assert!(read(d.path(), &bad).is_err());
    }
}
