//! The data directory: who may read it.
//!
//! It holds password hashes, sealed secrets, session records, the signing
//! keys and the keys that seal and digest everything else, so it is created
//! 0700 and every file the gateway makes in it 0600 (`private_dir`,
//! `private_file`). A key file that others can read is refused at start
//! ([`check_key_files`]): it may already have leaked, and an operator must
//! look at it (the gateway will not quietly tighten it and carry on).
//! Never: widens a mode, or creates a file in it readable by others.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The key files, relative to the data directory (plus every file in `keys/`).
const KEY_FILES: [&str; 2] = ["secrets.key", "api-key-hash.key"];

#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: io::Error },
    /// A key file others can read (or write).
    #[error("{path} is readable by other users (mode {mode:04o}): check it has not leaked, then chmod 600 it")]
    Exposed { path: PathBuf, mode: u32 },
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> DataDirError + '_ {
    move |error| DataDirError::Io { path: path.to_path_buf(), error }
}

/// Creates `dir` (and its parents) 0700, or takes away the group's and
/// others' access to an existing one.
pub fn private_dir(dir: &Path) -> Result<(), DataDirError> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io_error(dir))?;
    tighten(dir, 0o700)
}

/// Creates `path` empty and 0600 if it is missing (so the file is never
/// readable by others, not even for a moment), or takes away the group's
/// and others' access to an existing one.
pub fn private_file(path: &Path) -> Result<(), DataDirError> {
    match OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten(path, 0o600),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn tighten(path: &Path, mode: u32) -> Result<(), DataDirError> {
    let current = fs::metadata(path).map_err(io_error(path))?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(current & mode)).map_err(io_error(path))?;
    }
    Ok(())
}

/// Refuses key files that the group or others can read or write.
pub fn check_key_files(data_dir: &Path) -> Result<(), DataDirError> {
    let keys_dir = data_dir.join("keys");
    let mut files: Vec<PathBuf> = KEY_FILES.iter().map(|name| data_dir.join(name)).collect();
    if let Ok(entries) = fs::read_dir(&keys_dir) {
        files.extend(entries.filter_map(Result::ok).map(|e| e.path()));
    }
    for path in files {
        let metadata = match fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error(&path)(e)),
        };
        let mode = metadata.permissions().mode() & 0o777;
        if metadata.is_file() && mode & 0o077 != 0 {
            return Err(DataDirError::Exposed { path, mode });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn made_private_and_loose_ones_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("data");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("db");
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
    }

    #[test]
    fn a_key_file_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        check_key_files(dir.path()).unwrap();
        let key = dir.path().join("secrets.key");
        fs::write(&key, [0u8; 32]).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
        check_key_files(dir.path()).unwrap();
        fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(check_key_files(dir.path()), Err(DataDirError::Exposed { mode: 0o640, .. })));
    }
}
