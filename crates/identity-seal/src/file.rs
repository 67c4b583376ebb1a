//! Files of secrets: written atomically, readable by their owner only, one writing process.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use identity_core::{ConfigError, Error};
use serde::de::DeserializeOwned;

fn file_error(path: &Path, problem: impl fmt::Display) -> Error {
    ConfigError::new(path.display().to_string(), None, problem.to_string()).into()
}

/// A file of secrets (sealed or not) that one process writes.
///
/// Each [`PrivateFile::write`] replaces the whole file atomically: the bytes go to a temporary
/// file beside it, under a random name, created exclusively (an existing file or a link planted
/// at that name is refused, never followed) and readable by its owner only (mode 0600); the
/// temporary file is synced, renamed over the file, and the directory synced, so that a reader
/// sees the old content or the new, never a part, and a crash keeps one of them.
///
/// The first write takes an advisory lock (`flock`) on `.<name>.lock` beside the file, held until
/// the value is dropped: a second process (or a second `PrivateFile` on the same path) that
/// tries to write is refused with an error that says so, instead of overwriting what the first
/// one wrote. Reading takes no lock (a `check` of the configuration may read a file a running
/// server writes).
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let dir = std::env::temp_dir().join(format!("seal-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let file = identity_seal::PrivateFile::new(dir.join("state.json"));
/// file.write(br#"{"version": 1}"#.to_vec()).await?;
/// assert_eq!(std::fs::read(file.path()).unwrap(), br#"{"version": 1}"#);
/// // Another writer of the same file is refused while this one lives.
/// let other = identity_seal::PrivateFile::new(dir.join("state.json"));
/// assert!(other.write(b"{}".to_vec()).await.unwrap_err().to_string().contains("another"));
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), identity_core::Error>(()) }).unwrap();
/// ```
pub struct PrivateFile {
    path: PathBuf,
    /// The lock file, once the first write took the lock.
    lock: Arc<Mutex<Option<File>>>,
}

impl fmt::Debug for PrivateFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl PrivateFile {
    /// The file at `path` (nothing is opened yet).
    ///
    /// ```
    /// let file = identity_seal::PrivateFile::new("/var/lib/agent-identity/clients.json");
    /// assert!(file.path().ends_with("clients.json"));
    /// ```
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            lock: Arc::new(Mutex::new(None)),
        }
    }

    /// Where the file is.
    ///
    /// ```
    /// assert_eq!(identity_seal::PrivateFile::new("a.json").path(), std::path::Path::new("a.json"));
    /// ```
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's JSON document, which must carry `"version": <version>`; `None` when the file
    /// does not exist yet. See [`read_versioned`].
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), identity_core::Error> {
    /// #[derive(serde::Deserialize)]
    /// struct Content { version: u64 }
    /// let content: Option<Content> = identity_seal::PrivateFile::new("state.json").read("state file", 1).await?;
    /// # Ok(()) }
    /// ```
    pub async fn read<T: DeserializeOwned>(
        &self,
        kind: &str,
        version: u64,
    ) -> Result<Option<T>, Error> {
        let read = tokio::fs::read(&self.path).await;
        read_versioned(&self.path, read, kind, version)
    }

    /// [`PrivateFile::read`] for callers without a runtime (a configuration loader).
    ///
    /// ```no_run
    /// #[derive(serde::Deserialize)]
    /// struct Content { version: u64 }
    /// let content: Option<Content> = identity_seal::PrivateFile::new("state.json").read_blocking("state file", 1)?;
    /// # Ok::<(), identity_core::Error>(())
    /// ```
    pub fn read_blocking<T: DeserializeOwned>(
        &self,
        kind: &str,
        version: u64,
    ) -> Result<Option<T>, Error> {
        read_versioned(&self.path, std::fs::read(&self.path), kind, version)
    }

    /// Replaces the file's content with `bytes`, atomically (see the type's documentation).
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), identity_core::Error> {
    /// identity_seal::PrivateFile::new("state.json").write(b"{}".to_vec()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn write(&self, bytes: Vec<u8>) -> Result<(), Error> {
        let path = self.path.clone();
        let lock = Arc::clone(&self.lock);
        tokio::task::spawn_blocking(move || {
            let mut held = lock.lock().unwrap_or_else(PoisonError::into_inner);
            if held.is_none() {
                *held = Some(take_lock(&path)?);
            }
            replace(&path, &bytes)
        })
        .await
        .map_err(|_| file_error(&self.path, "the write was interrupted"))?
    }
}

/// Where a file's lock lives: `.<name>.lock` beside it.
fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    path.with_file_name(format!(".{name}.lock"))
}

fn take_lock(path: &Path) -> Result<File, Error> {
    let lock_path = lock_path(path);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true);
    no_follow(&mut options);
    let file = options.open(&lock_path).map_err(|err| {
        file_error(
            path,
            format!("its lock file cannot be opened: {}", err.kind()),
        )
    })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(file_error(
            path,
            "is written by another process (or another store of this one); one writer per file",
        )),
        Err(std::fs::TryLockError::Error(err)) => Err(file_error(
            path,
            format!("cannot be locked: {}", err.kind()),
        )),
    }
}

/// Creates `path` for writing: it must not exist (a planted file or link is refused, not
/// followed: `O_CREAT | O_EXCL` fails on a link whatever it points to), owner-only.
pub(crate) fn create_exclusive(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    no_follow(&mut options);
    options.open(path)
}

#[cfg(unix)]
fn no_follow(options: &mut OpenOptions) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(0o600).custom_flags(libc::O_NOFOLLOW);
}

#[cfg(not(unix))]
fn no_follow(_: &mut OpenOptions) {}

/// A random temporary name beside `path`.
fn temporary_path(path: &Path) -> Result<PathBuf, Error> {
    let mut random = [0u8; 12];
    getrandom::fill(&mut random)
        .map_err(|_| file_error(path, "the system's random source failed"))?;
    let suffix: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    Ok(path.with_file_name(format!(".{name}.{suffix}.tmp")))
}

fn replace(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |err: std::io::Error| file_error(path, format!("cannot be written: {}", err.kind()));
    let temporary = temporary_path(path)?;
    let written = (|| {
        let mut file = create_exclusive(&temporary)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)
    })();
    if let Err(err) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(io(err));
    }
    // The rename is durable once the directory is synced.
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    #[cfg(unix)]
    File::open(directory)
        .and_then(|dir| dir.sync_all())
        .map_err(io)?;
    #[cfg(not(unix))]
    let _ = directory;
    Ok(())
}

/// The JSON document `read` gave for `path` (a file of kind `kind`, such as "client file"),
/// which must carry `"version": <version>`; `None` when the file does not exist yet. A file
/// that cannot be read or is not that document is an error naming the path, never silently
/// replaced.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Content { version: u64 }
/// let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
/// let read = identity_seal::read_versioned::<Content>("state.json".as_ref(), Err(missing), "state file", 2)?;
/// assert!(read.is_none());
/// let older = identity_seal::read_versioned::<Content>("state.json".as_ref(), Ok(br#"{"version": 1}"#.to_vec()), "state file", 2);
/// assert!(older.unwrap_err().to_string().contains("version 1"));
/// # Ok::<(), identity_core::Error>(())
/// ```
pub fn read_versioned<T: DeserializeOwned>(
    path: &Path,
    read: std::io::Result<Vec<u8>>,
    kind: &str,
    version: u64,
) -> Result<Option<T>, Error> {
    let bytes = match read {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(file_error(path, format!("cannot be read: {}", err.kind()))),
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|err| file_error(path, format!("is not a {kind}: {err}")))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(found) if found == version => {}
        Some(found) if found < version => {
            return Err(file_error(
                path,
                format!(
                    "has version {found}, written by an earlier release; this one reads \
                     {version} (see the upgrade notes: move the file aside and let it be \
                     filled again)"
                ),
            ));
        }
        Some(found) => {
            return Err(file_error(
                path,
                format!("has version {found}, this build reads {version}"),
            ));
        }
        None => return Err(file_error(path, format!("is not a {kind}: no version"))),
    }
    serde_json::from_value(value)
        .map(Some)
        .map_err(|err| file_error(path, format!("is not a {kind}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn directory(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("identity-seal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[cfg(unix)]
    #[test]
    fn a_link_planted_at_the_temporary_path_is_refused_not_followed() {
        let dir = directory("planted");
        let target = dir.join("target");
        std::fs::write(&target, b"untouched").unwrap();
        let planted = dir.join(".state.json.0123.tmp");
        std::os::unix::fs::symlink(&target, &planted).unwrap();
        let err = create_exclusive(&planted).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&target).unwrap(), b"untouched");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temporary_names_are_random_and_beside_the_file() {
        let path = Path::new("/var/lib/x/state.json");
        let a = temporary_path(path).unwrap();
        let b = temporary_path(path).unwrap();
        assert_ne!(a, b);
        assert_eq!(a.parent(), path.parent());
        let name = a.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".state.json.") && name.ends_with(".tmp"),
            "{name}"
        );
    }

    #[tokio::test]
    async fn writes_replace_the_file_owner_only_and_leave_no_temporary_file() {
        let dir = directory("replace");
        let path = dir.join("state.json");
        let file = PrivateFile::new(&path);
        file.write(b"one".to_vec()).await.unwrap();
        file.write(b"two".to_vec()).await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, [".state.json.lock", "state.json"]);
        // The lock goes with the writer: another one may write after it.
        drop(file);
        PrivateFile::new(&path)
            .write(b"three".to_vec())
            .await
            .unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn documents_of_another_version_or_shape_are_errors_naming_the_file() {
        #[derive(Debug, serde::Deserialize)]
        struct Content {
            #[allow(dead_code, reason = "read to check the shape")]
            items: Vec<u32>,
        }
        let path = Path::new("/data/state.json");
        let read = |text: &str| {
            read_versioned::<Content>(path, Ok(text.as_bytes().to_vec()), "state file", 2)
                .map(|c| c.is_some())
                .map_err(|e| e.to_string())
        };
        assert_eq!(read(r#"{"version": 2, "items": [1]}"#), Ok(true));
        for (text, says) in [
            (r#"{"version": 3, "items": []}"#, "version 3"),
            (r#"{"version": 1, "items": []}"#, "earlier release"),
            (r#"{"items": []}"#, "no version"),
            (r#"{"version": 2}"#, "missing field"),
            ("not json", "is not a state file"),
        ] {
            let err = read(text).unwrap_err();
            assert!(
                err.contains(says) && err.contains("/data/state.json"),
                "{text}: {err}"
            );
        }
    }
}
