//! The tenant's temporary admin password.
//!
//! It is derived, not stored: HMAC-SHA256 of the tenant id under a secret key
//! from the secret store. The record step keeps only an argon2id hash (which
//! the tenant's app receives); the mail step derives the same plaintext again
//! to put it in the welcome mail. So the plaintext never sits in the table,
//! in a workflow's history or in a log, and a retried step yields the same one.

use std::fmt;
use std::sync::{Mutex, OnceLock, PoisonError};

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Semaphore;

use super::ids::TenantId;

/// Crockford's base32 alphabet: no I, L, O or U to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// The secrets the passwords are derived from, by version. Never printed.
///
/// Written `v2:secret,v1:secret`: the first is current (new signups are
/// hashed under it); older ones still derive the password of a tenant
/// recorded under them, whose welcome mail may not be sent yet, so a key is
/// rotated by putting the new one first and dropped once no welcome mail
/// waits for it. A bare secret is version `1`.
#[derive(Clone)]
pub struct PasswordKey {
    /// Never empty; the first is current.
    versions: Vec<(String, Vec<u8>)>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WeakPasswordKey {
    #[error("password key must be at least 32 characters")]
    Short,
    #[error(
        "password keys are `version:secret` separated by commas, versions 1 to 16 lower-case letters or digits, each once"
    )]
    Malformed,
}

/// The version a bare key (and a record from before versions) has.
pub const FIRST_KEY_VERSION: &str = "1";

impl PasswordKey {
    pub fn parse(raw: &str) -> Result<Self, WeakPasswordKey> {
        let raw = raw.trim();
        let labelled = |entry: &str| {
            let (version, secret) = entry.split_once(':')?;
            let ok = (1..=16).contains(&version.len())
                && version.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            ok.then(|| (version.to_owned(), secret.trim().to_owned()))
        };
        let versions: Vec<(String, String)> = if raw.split(',').all(|entry| labelled(entry.trim()).is_some())
        {
            raw.split(',').filter_map(|entry| labelled(entry.trim())).collect()
        } else if raw.contains(',') {
            return Err(WeakPasswordKey::Malformed);
        } else {
            vec![(FIRST_KEY_VERSION.to_owned(), raw.to_owned())]
        };
        if versions.iter().any(|(_, secret)| secret.len() < 32) {
            return Err(WeakPasswordKey::Short);
        }
        let mut seen: Vec<&str> = versions.iter().map(|(v, _)| v.as_str()).collect();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != versions.len() {
            return Err(WeakPasswordKey::Malformed);
        }
        Ok(PasswordKey { versions: versions.into_iter().map(|(v, s)| (v, s.into_bytes())).collect() })
    }

    /// The version new passwords are derived under.
    pub fn current_version(&self) -> &str {
        &self.versions[0].0
    }

    /// Just `version`, as the current key, if it is still configured.
    pub fn version(&self, version: &str) -> Option<PasswordKey> {
        let found = self.versions.iter().find(|(v, _)| v == version)?;
        Some(PasswordKey { versions: vec![found.clone()] })
    }

    /// HMAC-SHA256 of `message` for `purpose` under the current version: what
    /// else the key signs (billing links), kept apart from passwords by
    /// `purpose`.
    pub fn sign(&self, purpose: &str, message: &str) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.versions[0].1) else {
            unreachable!("HMAC-SHA256 takes keys of any length")
        };
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(message.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn mac(&self, purpose: &str, tenant: &TenantId) -> [u8; 32] {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.versions[0].1) else {
            unreachable!("HMAC-SHA256 takes keys of any length")
        };
        mac.update(purpose.as_bytes());
        mac.update(b":");
        mac.update(tenant.as_str().as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for PasswordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let versions: Vec<&str> = self.versions.iter().map(|(v, _)| v.as_str()).collect();
        write!(f, "PasswordKey(versions {}, ***)", versions.join(","))
    }
}

/// A temporary admin password, `xxxxx-xxxxx-xxxxx-xxxxx` (100 bits). Never printed.
pub struct TemporaryPassword(String);

#[derive(Debug, thiserror::Error)]
#[error("hashing the admin password failed: {0}")]
pub struct HashError(String);

impl TemporaryPassword {
    pub fn derive(key: &PasswordKey, tenant: &TenantId) -> Self {
        let bytes = key.mac("admin-password", tenant);
        // 20 symbols of 5 bits from the first 100 bits.
        let mut bits: u128 = 0;
        for byte in &bytes[..16] {
            bits = (bits << 8) | u128::from(*byte);
        }
        let mut out = String::with_capacity(23);
        for index in 0..20 {
            if index > 0 && index % 5 == 0 {
                out.push('-');
            }
            let symbol = ((bits >> (123 - 5 * index)) & 0x1f) as usize;
            out.push(char::from(ALPHABET[symbol]));
        }
        TemporaryPassword(out)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// An argon2id PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`), with a
    /// salt derived from the key so the same tenant always gets the same hash.
    pub fn hash(&self, key: &PasswordKey, tenant: &TenantId) -> Result<String, HashError> {
        self.hash_in(key, tenant, &mut working_memory())
    }

    /// [`Self::hash`] in `memory` (argon2's 19 MiB of blocks), which the
    /// caller may keep for the next hash.
    fn hash_in(
        &self,
        key: &PasswordKey,
        tenant: &TenantId,
        memory: &mut [Block],
    ) -> Result<String, HashError> {
        let failed = |e: &dyn fmt::Display| HashError(e.to_string());
        let salt_bytes = key.mac("admin-password-salt", tenant);
        let salt = SaltString::encode_b64(&salt_bytes[..16]).map_err(|e| failed(&e))?;
        let params = Params::default();
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
        let mut raw = [0u8; Params::DEFAULT_OUTPUT_LEN];
        argon
            .hash_password_into_with_memory(self.0.as_bytes(), &salt_bytes[..16], &mut raw, memory)
            .map_err(|e| failed(&e))?;
        let hash = PasswordHash {
            algorithm: argon2::ARGON2ID_IDENT,
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&params).map_err(|e| failed(&e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&raw).map_err(|e| failed(&e))?),
        };
        Ok(hash.to_string())
    }
}

/// argon2id's working memory at the default parameters (19 MiB).
fn working_memory() -> Vec<Block> {
    vec![Block::default(); Params::default().block_count()]
}

/// The argon2id hash of `tenant`'s temporary admin password, computed off the
/// async workers. argon2id costs tens of milliseconds of CPU and 19 MiB per
/// hash by design, so at most one hash per spare core runs at once in a
/// process: a server running many steps together (the local server in a
/// burst) keeps answering webhooks, and its memory stays bounded.
pub async fn hash_admin_password(key: &PasswordKey, tenant: &TenantId) -> Result<String, HashError> {
    static HASHING: OnceLock<Semaphore> = OnceLock::new();
    let slots = HASHING.get_or_init(|| Semaphore::new(crate::spare_cores()));
    // Each slot's working memory is kept for the next hash. Freed instead,
    // it stayed in the malloc arena of whichever blocking thread ran the hash,
    // one arena after another: ~300 MiB of a local server's burst.
    static MEMORY: Mutex<Vec<Vec<Block>>> = Mutex::new(Vec::new());
    let _slot = slots.acquire().await.map_err(|e| HashError(e.to_string()))?;
    let (key, tenant) = (key.clone(), tenant.clone());
    tokio::task::spawn_blocking(move || {
        let mut memory =
            MEMORY.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_else(working_memory);
        let hashed = TemporaryPassword::derive(&key, &tenant).hash_in(&key, &tenant, &mut memory);
        MEMORY.lock().unwrap_or_else(PoisonError::into_inner).push(memory);
        hashed
    })
    .await
    .map_err(|e| HashError(e.to_string()))?
}

impl fmt::Debug for TemporaryPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TemporaryPassword(***)")
    }
}

#[cfg(test)]
mod tests {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};

    use super::*;

    fn key() -> PasswordKey {
        PasswordKey::parse("a-test-key-that-is-long-enough-for-hmac").unwrap()
    }

    fn tenant(n: u8) -> TenantId {
        TenantId::parse(&format!("tnt_{:020x}", n)).unwrap()
    }

    #[tokio::test]
    async fn a_hash_in_kept_memory_is_the_one_argon2_makes_itself_and_verifies() {
        use argon2::password_hash::PasswordHasher;
        let (key, tenant) = (key(), tenant(3));
        let password = TemporaryPassword::derive(&key, &tenant);
        let salt = SaltString::encode_b64(&key.mac("admin-password-salt", &tenant)[..16]).unwrap();
        let theirs = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
            .hash_password(password.expose().as_bytes(), &salt)
            .unwrap()
            .to_string();
        // Twice through the pool: the second hash runs in the first one's memory.
        for _ in 0..2 {
            let ours = hash_admin_password(&key, &tenant).await.unwrap();
            assert_eq!(ours, theirs, "records hashed before keep their hash");
            let parsed = PasswordHash::new(&ours).unwrap();
            assert!(Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok());
        }
    }

    #[test]
    fn derivation_is_stable_per_tenant_and_differs_between_tenants() {
        let first = TemporaryPassword::derive(&key(), &tenant(1));
        assert_eq!(first.expose(), TemporaryPassword::derive(&key(), &tenant(1)).expose());
        assert_ne!(first.expose(), TemporaryPassword::derive(&key(), &tenant(2)).expose());
        let other_key = PasswordKey::parse("another-key-that-is-long-enough-for-hmac").unwrap();
        assert_ne!(first.expose(), TemporaryPassword::derive(&other_key, &tenant(1)).expose());
        assert_eq!(first.expose().len(), 23);
        assert!(first.expose().split('-').all(|group| group.len() == 5));
        assert!(!format!("{first:?}{:?}", key()).contains(first.expose()));
    }

    #[test]
    fn the_hash_verifies_the_password_and_is_reproducible() {
        let password = TemporaryPassword::derive(&key(), &tenant(1));
        let hash = password.hash(&key(), &tenant(1)).unwrap();
        assert!(hash.starts_with("$argon2id$v=19$"));
        assert_eq!(hash, password.hash(&key(), &tenant(1)).unwrap());
        let parsed = PasswordHash::new(&hash).unwrap();
        assert!(Argon2::default().verify_password(password.expose().as_bytes(), &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"wrong", &parsed).is_err());
    }

    #[test]
    fn short_keys_are_refused() {
        assert_eq!(PasswordKey::parse("short").unwrap_err(), WeakPasswordKey::Short);
        assert_eq!(
            PasswordKey::parse("v2:short,v1:a-test-key-that-is-long-enough-for-hmac").unwrap_err(),
            WeakPasswordKey::Short
        );
    }

    #[test]
    fn versions_rotate_and_old_ones_still_derive_what_they_derived() {
        let bare = key();
        assert_eq!(bare.current_version(), FIRST_KEY_VERSION);
        let rotated = PasswordKey::parse(
            "v2:another-key-that-is-long-enough-for-hmac, 1:a-test-key-that-is-long-enough-for-hmac",
        )
        .unwrap();
        assert_eq!(rotated.current_version(), "v2");
        let before = TemporaryPassword::derive(&bare, &tenant(1));
        let old = rotated.version(FIRST_KEY_VERSION).unwrap();
        assert_eq!(TemporaryPassword::derive(&old, &tenant(1)).expose(), before.expose());
        assert_ne!(TemporaryPassword::derive(&rotated, &tenant(1)).expose(), before.expose());
        assert!(rotated.version("v0").is_none());
        let shown = format!("{rotated:?}");
        assert!(shown.contains("v2,1") && !shown.contains("another-key"), "{shown}");
        for bad in [
            "v2:x,v2:y",
            "V2:another-key-that-is-long-enough-for-hmac,1:a-test-key-that-is-long-enough-for-hmac",
        ] {
            assert!(PasswordKey::parse(bad).is_err(), "{bad}");
        }
    }
}
