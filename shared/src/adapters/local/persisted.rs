//! State kept in a JSON file (when a state directory is given), so a local
//! run survives a restart, as the AWS services it stands in for would.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Persisted<T> {
    value: Mutex<T>,
    path: Option<PathBuf>,
}

impl<T: Serialize + DeserializeOwned + Default> Persisted<T> {
    /// In memory only.
    pub fn in_memory() -> Self {
        Persisted { value: Mutex::new(T::default()), path: None }
    }

    /// Backed by `dir/file`, loaded if it exists.
    pub fn open(dir: Option<&Path>, file: &str) -> io::Result<Self> {
        let Some(dir) = dir else { return Ok(Self::in_memory()) };
        std::fs::create_dir_all(dir)?;
        let path = dir.join(file);
        let value = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{}: {e}", path.display()))
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => T::default(),
            Err(e) => return Err(e),
        };
        Ok(Persisted { value: Mutex::new(value), path: Some(path) })
    }

    fn lock(&self) -> MutexGuard<'_, T> {
        self.value.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the value and writes it through (temporary file, then rename,
    /// so a crash never leaves half a file).
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> io::Result<R> {
        let mut guard = self.lock();
        let result = f(&mut guard);
        if let Some(path) = &self.path {
            let bytes = serde_json::to_vec_pretty(&*guard).map_err(io::Error::other)?;
            let temporary = path.with_extension("json.tmp");
            std::fs::write(&temporary, bytes)?;
            std::fs::rename(&temporary, path)?;
        }
        Ok(result)
    }
}
