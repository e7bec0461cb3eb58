//! State kept in a JSON file (when a state directory is given), so a local
//! run survives a restart, as the AWS services it stands in for would.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;

pub struct Persisted<T> {
    /// The value and its generation: how many updates it has seen.
    value: Mutex<(T, u64)>,
    file: Option<File>,
}

struct File {
    path: PathBuf,
    /// The generation last written out. Held while writing, so writes are
    /// one at a time and never go back to an older snapshot.
    written: Mutex<u64>,
}

fn lock<V>(mutex: &Mutex<V>) -> MutexGuard<'_, V> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Serialize + DeserializeOwned + Default> Persisted<T> {
    /// In memory only.
    pub fn in_memory() -> Self {
        Persisted { value: Mutex::new((T::default(), 0)), file: None }
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
        Ok(Persisted { value: Mutex::new((value, 0)), file: Some(File { path, written: Mutex::new(0) }) })
    }

    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&lock(&self.value).0)
    }

    /// Changes the value and writes it through before returning (temporary
    /// file, then rename, so a crash never leaves half a file). Concurrent
    /// updates share writes: one that finds its change already written by
    /// another's snapshot returns at once, so a burst of updates costs a few
    /// whole-file writes rather than one each.
    pub fn update<R>(&self, f: impl FnOnce(&mut T) -> R) -> io::Result<R> {
        let (result, generation) = {
            let mut guard = lock(&self.value);
            let result = f(&mut guard.0);
            guard.1 += 1;
            (result, guard.1)
        };
        let Some(file) = &self.file else { return Ok(result) };
        let mut written = lock(&file.written);
        if *written >= generation {
            return Ok(result);
        }
        let (bytes, snapshot) = {
            let guard = lock(&self.value);
            (serde_json::to_vec_pretty(&guard.0).map_err(io::Error::other)?, guard.1)
        };
        let temporary = file.path.with_extension("json.tmp");
        std::fs::write(&temporary, bytes)?;
        std::fs::rename(&temporary, &file.path)?;
        *written = snapshot;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use super::*;

    type Map = BTreeMap<u32, u32>;

    #[test]
    fn every_update_is_on_disk_when_it_returns_and_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("persisted-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = Arc::new(Persisted::<Map>::open(Some(&dir), "map.json").unwrap());
        let writers: Vec<_> = (0..8u32)
            .map(|t| {
                let store = store.clone();
                let dir = dir.clone();
                std::thread::spawn(move || {
                    for i in 0..50u32 {
                        let key = t * 1000 + i;
                        store.update(|m| m.insert(key, i)).unwrap();
                        // Durable on return: the file already holds this key.
                        let on_disk: Map =
                            serde_json::from_slice(&std::fs::read(dir.join("map.json")).unwrap()).unwrap();
                        assert_eq!(on_disk.get(&key), Some(&i));
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let reopened = Persisted::<Map>::open(Some(&dir), "map.json").unwrap();
        assert_eq!(reopened.read(BTreeMap::len), 400);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
