//! The data directory is private to the server's Unix user (issue 13, item 2): the process
//! creates files with umask 077, and at start (`serve` and admin commands that open the
//! store) the data dir is made 0700 and every file directly in it (the database and its
//! -wal/-shm, key files, caches) 0600, with a log line for each mode fixed. Sub-directories
//! are made 0700; what is inside them is protected by the directory itself.

use std::path::Path;

/// Sets the process umask so every file and directory the server creates is owner-only.
#[allow(unsafe_code)] // FFI: see the SAFETY comment inside
pub fn restrict_umask() {
    // SAFETY: umask only changes the calling process's file mode creation mask.
    unsafe {
        libc::umask(0o077);
    }
}

/// One mode changed by [`secure_data_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModeFix {
    pub path: std::path::PathBuf,
    pub from: u32,
    pub to: u32,
}

/// Makes `data_dir` 0700 and its entries owner-only; returns what was changed. A missing
/// directory is not an error (it is created later, under the umask).
pub fn secure_data_dir(data_dir: &Path) -> std::io::Result<Vec<ModeFix>> {
    use std::os::unix::fs::PermissionsExt;
    let mut fixes = Vec::new();
    let mut fix = |path: &Path, want: u32| -> std::io::Result<()> {
        let meta = std::fs::symlink_metadata(path)?;
        if meta.file_type().is_symlink() {
            return Ok(());
        }
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            let to = mode & !0o077 & want;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(to))?;
            fixes.push(ModeFix {
                path: path.to_path_buf(),
                from: mode,
                to,
            });
        }
        Ok(())
    };
    match std::fs::symlink_metadata(data_dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(fixes),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    fix(data_dir, 0o700)?;
    for entry in std::fs::read_dir(data_dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            fix(&entry.path(), 0o700)?;
        } else if kind.is_file() {
            fix(&entry.path(), 0o600)?;
        }
    }
    Ok(fixes)
}

/// [`secure_data_dir`], logging each fix (and on standard error when logging is not set up,
/// as for admin commands).
pub fn secure_and_log(data_dir: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let fixes = secure_data_dir(data_dir).with_context(|| {
        format!(
            "cannot make the data directory {} private",
            data_dir.display()
        )
    })?;
    for f in fixes {
        let text = format!(
            "fixed permissions of {}: {:o} -> {:o} (secrets must not be readable by other users)",
            f.path.display(),
            f.from,
            f.to
        );
        if tracing::dispatcher::has_been_set() {
            tracing::warn!("{text}");
        } else {
            eprintln!("warning: {text}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn open_data_dir_and_files_are_made_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("bulwark.db"), b"x").unwrap();
        std::fs::create_dir(data.join("blobs")).unwrap();
        for (p, m) in [
            (&data, 0o755),
            (&data.join("bulwark.db"), 0o644),
            (&data.join("blobs"), 0o755),
        ] {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        let fixes = secure_data_dir(&data).unwrap();
        assert_eq!(fixes.len(), 3);
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&data.join("bulwark.db")), 0o600);
        assert_eq!(mode(&data.join("blobs")), 0o700);
        assert!(
            secure_data_dir(&data).unwrap().is_empty(),
            "nothing left to fix"
        );
        assert!(
            secure_data_dir(&dir.path().join("missing"))
                .unwrap()
                .is_empty()
        );
    }
}
