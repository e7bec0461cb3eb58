//! The tenant app's key to its live status (`GET /status` on the checkout API).
//!
//! Derived, never stored: HMAC-SHA256 under the tenant key (its own purpose,
//! `status-token`) of the key version, the tenant id and the tenant's token
//! generation. The text carries all three, so a check needs the tenant's one
//! item only:
//!
//! ```text
//! tst.{tenant id}.{key version}.{generation}.{mac, base64url without padding}
//! tst.tnt_0123456789abcdef0123.1.1.Xk3…(43 characters)
//! ```
//!
//! None of the parts can hold a `.` (tenant ids are `tnt_` and hex, key
//! versions lower-case letters and digits, generations decimal, base64url
//! `A-Z a-z 0-9 - _`), so there is one way to read a token. The tenant
//! record keeps only the SHA-256 of the current token and its generation
//! ([`StatusTokenRecord`]); a new generation revokes the one before.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::ids::TenantId;
use super::password::PasswordKey;

const PURPOSE: &str = "status-token";
const PREFIX: &str = "tst";

/// Why a presented token is refused (one line, nothing secret; the API
/// answers all of them alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StatusTokenError {
    #[error("not a status token")]
    Malformed,
    #[error("status token signed with a key version that is no longer configured")]
    UnknownKey,
    #[error("status token signature does not match")]
    BadSignature,
    #[error("status token is not the tenant's current one")]
    NotCurrent,
}

/// A status token whose shape was checked (not yet whether it is genuine or
/// current: see [`StatusToken::verify_signature`] and [`StatusTokenRecord::matches`]).
/// Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct StatusToken {
    text: String,
    tenant: TenantId,
    key_version: String,
    generation: u32,
    mac: [u8; 32],
}

fn signed_text(key_version: &str, tenant: &TenantId, generation: u32) -> String {
    format!("{key_version}.{tenant}.{generation}")
}

fn valid_key_version(version: &str) -> bool {
    (1..=16).contains(&version.len()) && version.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

impl StatusToken {
    /// Reads a presented token; anything but exactly our shape is [`StatusTokenError::Malformed`].
    pub fn parse(raw: &str) -> Result<Self, StatusTokenError> {
        let mut parts = raw.split('.');
        let (Some(PREFIX), Some(tenant), Some(version), Some(generation), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(StatusTokenError::Malformed);
        };
        let tenant = TenantId::parse(tenant).map_err(|_| StatusTokenError::Malformed)?;
        if !valid_key_version(version) {
            return Err(StatusTokenError::Malformed);
        }
        // Decimal, no sign, no leading zero: one text per generation.
        let canonical = !generation.is_empty()
            && generation.len() <= 10
            && generation.bytes().all(|b| b.is_ascii_digit())
            && !generation.starts_with('0');
        let generation: u32 = match generation.parse() {
            Ok(number) if canonical => number,
            _ => return Err(StatusTokenError::Malformed),
        };
        let mac: [u8; 32] = URL_SAFE_NO_PAD
            .decode(mac)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or(StatusTokenError::Malformed)?;
        Ok(StatusToken { text: raw.to_owned(), tenant, key_version: version.to_owned(), generation, mac })
    }

    /// The token of `tenant` at `generation`, under `key`'s current version.
    pub fn derive(key: &PasswordKey, tenant: &TenantId, generation: u32) -> StatusToken {
        let key_version = key.current_version().to_owned();
        let mac = key.sign(PURPOSE, &signed_text(&key_version, tenant, generation));
        let text = format!("{PREFIX}.{tenant}.{key_version}.{generation}.{}", URL_SAFE_NO_PAD.encode(mac));
        StatusToken { text, tenant: tenant.clone(), key_version, generation, mac }
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn key_version(&self) -> &str {
        &self.key_version
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The token's text, for the app's environment only.
    pub fn expose(&self) -> &str {
        &self.text
    }

    /// SHA-256 of the token's text: what the record keeps.
    pub fn fingerprint(&self) -> [u8; 32] {
        Sha256::digest(self.text.as_bytes()).into()
    }

    /// Whether `key` (any version it still holds) signed this token;
    /// compared in constant time. Costs no read: a forged token is refused
    /// before the table is asked.
    pub fn verify_signature(&self, key: &PasswordKey) -> Result<(), StatusTokenError> {
        let key = key.version(&self.key_version).ok_or(StatusTokenError::UnknownKey)?;
        let expected = key.sign(PURPOSE, &signed_text(&self.key_version, &self.tenant, self.generation));
        if bool::from(expected.ct_eq(&self.mac)) { Ok(()) } else { Err(StatusTokenError::BadSignature) }
    }
}

impl std::fmt::Debug for StatusToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "StatusToken({}, key {}, generation {}, ***)",
            self.tenant, self.key_version, self.generation
        )
    }
}

/// What the tenant record keeps of its current status token: never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusTokenRecord {
    /// Rises by one with each new token (a rotation, or a key version dropped).
    pub generation: u32,
    /// The key version it was derived under, so a key rotation does not
    /// change the app's environment (no relaunch) while the old version is kept.
    pub key_version: String,
    /// Hex SHA-256 of the token's text.
    pub sha256: String,
}

impl StatusTokenRecord {
    pub fn of(token: &StatusToken) -> StatusTokenRecord {
        StatusTokenRecord {
            generation: token.generation,
            key_version: token.key_version.clone(),
            sha256: hex::encode(token.fingerprint()),
        }
    }

    /// Whether `token` is the one recorded: its SHA-256 against the
    /// recorded one, in constant time.
    pub fn matches(&self, token: &StatusToken) -> bool {
        let Ok(recorded) = hex::decode(&self.sha256) else {
            return false;
        };
        bool::from(recorded.as_slice().ct_eq(&token.fingerprint()))
    }
}

/// The whole check of a presented token against its tenant's record
/// (`None`: no such tenant, or one without a token): genuine and current.
/// `GET /status` makes it in two halves, the signature before the record
/// is read and the hash after.
pub fn check(
    key: &PasswordKey,
    token: &StatusToken,
    recorded: Option<&StatusTokenRecord>,
) -> Result<(), StatusTokenError> {
    token.verify_signature(key)?;
    match recorded {
        Some(recorded) if recorded.matches(token) => Ok(()),
        _ => Err(StatusTokenError::NotCurrent),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "1:unit-test-password-key-0123456789abcdef";

    fn key(raw: &str) -> PasswordKey {
        PasswordKey::parse(raw).unwrap()
    }

    fn tenant(n: u8) -> TenantId {
        TenantId::parse(&format!("tnt_{n:020x}")).unwrap()
    }

    #[test]
    fn a_token_round_trips_and_is_the_recorded_one() {
        let token = StatusToken::derive(&key(KEY), &tenant(1), 1);
        assert!(token.expose().starts_with("tst.tnt_00000000000000000001.1.1."), "{}", token.expose());
        let parsed = StatusToken::parse(token.expose()).unwrap();
        assert_eq!(parsed, token);
        assert_eq!((parsed.tenant(), parsed.key_version(), parsed.generation()), (&tenant(1), "1", 1));
        let recorded = StatusTokenRecord::of(&token);
        assert_eq!(recorded.sha256.len(), 64);
        assert!(!recorded.sha256.contains(&token.expose()[40..]), "only a hash is kept");
        assert_eq!(check(&key(KEY), &parsed, Some(&recorded)), Ok(()));
        // Derived: the same tenant and generation give the same token.
        assert_eq!(StatusToken::derive(&key(KEY), &tenant(1), 1).expose(), token.expose());
        assert!(!format!("{token:?}").contains(&token.expose()[40..]));
    }

    #[test]
    fn tampered_forged_and_other_tenants_tokens_are_refused() {
        let ours = key(KEY);
        let token = StatusToken::derive(&ours, &tenant(1), 1);
        let recorded = StatusTokenRecord::of(&token);
        // Another tenant's id in a genuine token: the signature covers it.
        let moved = token.expose().replace("tnt_00000000000000000001", "tnt_00000000000000000002");
        let moved = StatusToken::parse(&moved).unwrap();
        assert_eq!(moved.verify_signature(&ours), Err(StatusTokenError::BadSignature));
        // A later generation written in by hand.
        let bumped = StatusToken::parse(&token.expose().replacen(".1.1.", ".1.2.", 1)).unwrap();
        assert_eq!(check(&ours, &bumped, Some(&recorded)), Err(StatusTokenError::BadSignature));
        // Signed by someone else's key.
        let forged = StatusToken::derive(&key("1:someone-elses-key-0123456789abcdefghij"), &tenant(1), 1);
        assert_eq!(check(&ours, &forged, Some(&recorded)), Err(StatusTokenError::BadSignature));
        // Another tenant's genuine token against this tenant's record.
        let other = StatusToken::derive(&ours, &tenant(2), 1);
        assert_eq!(check(&ours, &other, Some(&recorded)), Err(StatusTokenError::NotCurrent));
        // A tenant that does not exist, or has no token.
        assert_eq!(check(&ours, &token, None), Err(StatusTokenError::NotCurrent));
    }

    #[test]
    fn an_older_generation_is_refused_once_a_new_one_is_recorded() {
        let key = key(KEY);
        let old = StatusToken::derive(&key, &tenant(1), 1);
        let new = StatusToken::derive(&key, &tenant(1), 2);
        assert_ne!(old.expose(), new.expose());
        let recorded = StatusTokenRecord::of(&new);
        assert_eq!(check(&key, &old, Some(&recorded)), Err(StatusTokenError::NotCurrent));
        assert_eq!(check(&key, &new, Some(&recorded)), Ok(()));
    }

    #[test]
    fn a_dropped_key_version_refuses_its_tokens_and_a_kept_one_accepts_them() {
        let old = StatusToken::derive(&key(KEY), &tenant(1), 1);
        let recorded = StatusTokenRecord::of(&old);
        let rotated =
            key("v2:a-new-password-key-0123456789abcdefgh,1:unit-test-password-key-0123456789abcdef");
        assert_eq!(check(&rotated, &old, Some(&recorded)), Ok(()), "kept while the old version is");
        let dropped = key("v2:a-new-password-key-0123456789abcdefgh");
        assert_eq!(check(&dropped, &old, Some(&recorded)), Err(StatusTokenError::UnknownKey));
        assert!(StatusToken::derive(&rotated, &tenant(1), 1).expose().contains(".v2.1."));
    }

    #[test]
    fn anything_but_the_shape_is_malformed() {
        let good = StatusToken::derive(&key(KEY), &tenant(1), 7);
        let mac = good.expose().rsplit('.').next().unwrap().to_owned();
        for junk in [
            String::new(),
            "Bearer".into(),
            format!("tst.tnt_00000000000000000001.1.7.{mac}.x"),
            format!("tsx.tnt_00000000000000000001.1.7.{mac}"),
            format!("tst.tnt_0000000000000000000g.1.7.{mac}"),
            format!("tst.tnt_00000000000000000001.V1.7.{mac}"),
            format!("tst.tnt_00000000000000000001..7.{mac}"),
            format!("tst.tnt_00000000000000000001.1.07.{mac}"),
            format!("tst.tnt_00000000000000000001.1.+7.{mac}"),
            format!("tst.tnt_00000000000000000001.1.0.{mac}"),
            format!("tst.tnt_00000000000000000001.1.99999999999.{mac}"),
            format!("tst.tnt_00000000000000000001.1.7.{}", &mac[1..]),
            format!("tst.tnt_00000000000000000001.1.7.{mac}="),
            format!("tst.tnt_00000000000000000001.1.7.{}", mac.replace(['-', '_'], "+")),
        ] {
            assert_eq!(StatusToken::parse(&junk), Err(StatusTokenError::Malformed), "{junk}");
        }
    }

    #[test]
    fn a_recorded_hash_that_differs_in_its_last_digit_only_is_no_match() {
        // `matches` compares the whole digest with subtle's `ct_eq` (no
        // early exit); a test cannot time it, but it checks every byte.
        let token = StatusToken::derive(&key(KEY), &tenant(1), 1);
        let mut recorded = StatusTokenRecord::of(&token);
        let last = recorded.sha256.pop().unwrap();
        recorded.sha256.push(if last == '0' { '1' } else { '0' });
        assert!(!recorded.matches(&token));
        recorded.sha256 = "not hex".into();
        assert!(!recorded.matches(&token));
    }
}
