//! The credential vault: every value is sealed with AES-256-GCM under the current master key,
//! with a fresh random 96-bit nonce, and bound (as associated data) to its owner, its server and
//! its key name, so a sealed value copied to another row does not open.
//!
//! A sealed value is `[format 0x01][key id, 4 bytes][ciphertext + tag]`; the nonce is kept beside
//! it. The key id is derived from the key itself, so a keyring can hold the current key and the
//! ones it replaced, open values sealed under any of them, and [`Keyring::needs_reseal`] tells
//! which values a rotation must re-encrypt.

use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

/// The envelope format this crate writes.
const FORMAT: u8 = 1;
/// Bytes in a nonce (AES-GCM's 96 bits).
pub const NONCE_LEN: usize = 12;
/// The shortest master key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 32;

/// What can go wrong with keys or sealed values. Never carries a secret.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum VaultError {
    #[error("the master key is too short: it has {0} bytes, at least {MIN_KEY_BYTES} are needed")]
    KeyTooShort(usize),
    #[error("the master key is a well-known sample value; generate one (for example `openssl rand -base64 32`)")]
    SampleKey,
    #[error("a sealed credential was made with key {0:08x}, which this server does not have")]
    UnknownKey(u32),
    /// The value, its nonce, its key id or what it is bound to was changed: it does not open.
    #[error("a sealed credential could not be decrypted: it was altered or belongs to another owner or server")]
    Decrypt,
    #[error("a sealed credential is malformed")]
    Malformed,
}

/// One master key. Its bytes never appear in `Debug`.
#[derive(Clone)]
pub struct MasterKey {
    id: u32,
    key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({:08x}, [redacted])", self.id)
    }
}

impl MasterKey {
    /// A key from configured material: base64 of at least 32 bytes, or any text of at least 32
    /// bytes. The AES key is derived from it with HKDF-SHA256, so any such text serves.
    pub fn from_material(material: &str) -> Result<MasterKey, VaultError> {
        let material = material.trim();
        let lowered = material.to_ascii_lowercase();
        const SAMPLES: [&str; 8] =
            ["changeme", "change-me", "change_me", "secret", "password", "example", "placeholder", "your-"];
        if SAMPLES.iter().any(|s| lowered.contains(s)) || is_repetitive(material) {
            return Err(VaultError::SampleKey);
        }
        let decoded =
            base64::engine::general_purpose::STANDARD.decode(material).ok().filter(|b| b.len() >= MIN_KEY_BYTES);
        let bytes = Zeroizing::new(decoded.unwrap_or_else(|| material.as_bytes().to_vec()));
        if bytes.len() < MIN_KEY_BYTES {
            return Err(VaultError::KeyTooShort(bytes.len()));
        }
        let mut key = Zeroizing::new([0u8; 32]);
        hkdf::Hkdf::<Sha256>::new(Some(b"switchboard vault"), &bytes)
            .expand(b"credential key v1", key.as_mut())
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        let digest = Sha256::digest(key.as_ref());
        let id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        Ok(MasterKey { id, key })
    }

    /// A new random key, as the base64 text to keep in a key file.
    pub fn generate() -> SecretString {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).expect("the operating system's random source is available");
        SecretString::from(base64::engine::general_purpose::STANDARD.encode(bytes.as_ref()))
    }

    /// The key's id, as stored with every value it sealed.
    pub fn id(&self) -> u32 {
        self.id
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new_from_slice(self.key.as_ref()).expect("the key is 32 bytes")
    }
}

/// Text made of one repeated character or of a short repeated pattern ("aaaa…", "abcabc…").
fn is_repetitive(material: &str) -> bool {
    let bytes = material.as_bytes();
    (1..=4).any(|period| bytes.len() > period && bytes.iter().enumerate().all(|(i, b)| *b == bytes[i % period]))
}

/// What a sealed value is bound to: opening it anywhere else fails.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    pub owner: Uuid,
    pub server: &'a str,
    pub key: &'a str,
}

impl Binding<'_> {
    fn aad(&self, key_id: u32) -> Vec<u8> {
        let mut aad = Vec::with_capacity(64);
        aad.extend_from_slice(b"switchboard-credential\0");
        aad.push(FORMAT);
        aad.extend_from_slice(&key_id.to_be_bytes());
        aad.extend_from_slice(self.owner.as_bytes());
        aad.extend_from_slice(&(self.server.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.server.as_bytes());
        aad.extend_from_slice(&(self.key.len() as u32).to_be_bytes());
        aad.extend_from_slice(self.key.as_bytes());
        aad
    }
}

/// A value as stored: the envelope and its nonce.
#[derive(Clone, PartialEq, Eq)]
pub struct Sealed {
    pub ciphertext: Vec<u8>,
    pub nonce: Vec<u8>,
}

impl fmt::Debug for Sealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealed({} bytes)", self.ciphertext.len())
    }
}

impl Sealed {
    /// The id of the key that sealed it, read from the envelope.
    pub fn key_id(&self) -> Result<u32, VaultError> {
        match self.ciphertext.as_slice() {
            [FORMAT, a, b, c, d, ..] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
            _ => Err(VaultError::Malformed),
        }
    }
}

/// The current key, which seals, and older ones, which only open.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: MasterKey,
    previous: Vec<MasterKey>,
}

impl Keyring {
    pub fn new(current: MasterKey) -> Keyring {
        Keyring { current, previous: Vec::new() }
    }

    /// Adds keys that values may still be sealed under (during a rotation).
    pub fn with_previous(mut self, keys: impl IntoIterator<Item = MasterKey>) -> Keyring {
        for key in keys {
            if key.id != self.current.id && !self.previous.iter().any(|k| k.id == key.id) {
                self.previous.push(key);
            }
        }
        self
    }

    pub fn current_id(&self) -> u32 {
        self.current.id
    }

    /// Seals `plaintext` under the current key with a fresh nonce.
    pub fn seal(&self, binding: Binding<'_>, plaintext: &str) -> Sealed {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source is available");
        let aad = binding.aad(self.current.id);
        let body = self
            .current
            .cipher()
            .encrypt(&Nonce::from(nonce), Payload { msg: plaintext.as_bytes(), aad: &aad })
            .expect("AES-GCM encryption of an in-memory value does not fail");
        let mut ciphertext = Vec::with_capacity(5 + body.len());
        ciphertext.push(FORMAT);
        ciphertext.extend_from_slice(&self.current.id.to_be_bytes());
        ciphertext.extend_from_slice(&body);
        Sealed { ciphertext, nonce: nonce.to_vec() }
    }

    /// Opens a sealed value with whichever of the keyring's keys sealed it.
    pub fn open(&self, binding: Binding<'_>, sealed: &Sealed) -> Result<SecretString, VaultError> {
        let key_id = sealed.key_id()?;
        let nonce: [u8; NONCE_LEN] = sealed.nonce.as_slice().try_into().map_err(|_| VaultError::Decrypt)?;
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == key_id)
            .ok_or(VaultError::UnknownKey(key_id))?;
        let aad = binding.aad(key_id);
        let plain = Zeroizing::new(
            key.cipher()
                .decrypt(&Nonce::from(nonce), Payload { msg: &sealed.ciphertext[5..], aad: &aad })
                .map_err(|_| VaultError::Decrypt)?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| VaultError::Malformed)?;
        Ok(SecretString::from(text.to_owned()))
    }

    /// Whether the value was sealed under an older key and should be sealed again.
    pub fn needs_reseal(&self, sealed: &Sealed) -> bool {
        !sealed.key_id().is_ok_and(|id| id == self.current.id)
    }

    /// Opens with any key and seals under the current one.
    pub fn reseal(&self, binding: Binding<'_>, sealed: &Sealed) -> Result<Sealed, VaultError> {
        let plain = self.open(binding, sealed)?;
        Ok(self.seal(binding, plain.expose_secret()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn ring() -> Keyring {
        Keyring::new(MasterKey::from_material(MasterKey::generate().expose_secret()).unwrap())
    }

    fn bound(owner: Uuid) -> Binding<'static> {
        Binding { owner, server: "github", key: "GITHUB_TOKEN" }
    }

    #[test]
    fn a_sealed_value_opens_to_what_was_sealed_and_does_not_contain_it() {
        let ring = ring();
        let owner = Uuid::new_v4();
        let sealed = ring.seal(bound(owner), "CANARY-secret-value");
        assert!(!sealed.ciphertext.windows(6).any(|w| w == b"CANARY"));
        assert_eq!(ring.open(bound(owner), &sealed).unwrap().expose_secret(), "CANARY-secret-value");
    }

    #[test]
    fn flipping_any_bit_of_nonce_envelope_or_tag_fails_with_an_explicit_error() {
        // B5.30: 100 tampered values, each refused.
        let ring = ring();
        let owner = Uuid::new_v4();
        for i in 0..100 {
            let mut sealed = ring.seal(bound(owner), &format!("value {i}"));
            match i % 4 {
                0 => sealed.nonce[i % NONCE_LEN] ^= 1 << (i % 8),
                1 => sealed.ciphertext[0] ^= 1,                    // format byte
                2 => sealed.ciphertext[1 + i % 4] ^= 1 << (i % 8), // key id
                _ => {
                    let at = 5 + i % (sealed.ciphertext.len() - 5); // body or tag
                    sealed.ciphertext[at] ^= 1 << (i % 8);
                }
            }
            let err = ring.open(bound(owner), &sealed).unwrap_err();
            assert!(matches!(err, VaultError::Decrypt | VaultError::Malformed | VaultError::UnknownKey(_)), "{err:?}");
        }
    }

    #[test]
    fn a_value_moved_to_another_owner_server_or_key_does_not_open() {
        // B5.31
        let ring = ring();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for _ in 0..100 {
            let sealed = ring.seal(bound(a), "tenant A's token");
            assert_eq!(ring.open(bound(b), &sealed).unwrap_err(), VaultError::Decrypt);
            let other_server = Binding { owner: a, server: "gitlab", key: "GITHUB_TOKEN" };
            assert_eq!(ring.open(other_server, &sealed).unwrap_err(), VaultError::Decrypt);
            let other_key = Binding { owner: a, server: "github", key: "OTHER" };
            assert_eq!(ring.open(other_key, &sealed).unwrap_err(), VaultError::Decrypt);
        }
    }

    #[test]
    fn one_hundred_thousand_seals_of_one_value_use_distinct_nonces_and_ciphertexts() {
        // B5.32
        let ring = ring();
        let owner = Uuid::new_v4();
        let mut nonces = HashSet::new();
        let mut bodies = HashSet::new();
        for _ in 0..100_000 {
            let sealed = ring.seal(bound(owner), "same");
            nonces.insert(sealed.nonce);
            bodies.insert(sealed.ciphertext);
        }
        assert_eq!((nonces.len(), bodies.len()), (100_000, 100_000));
    }

    #[test]
    fn after_rotation_old_values_still_open_and_reseal_under_the_new_key() {
        // B5.33
        let old = ring();
        let owner = Uuid::new_v4();
        let sealed: Vec<Sealed> = (0..20).map(|i| old.seal(bound(owner), &format!("v{i}"))).collect();
        let new_key = MasterKey::from_material(MasterKey::generate().expose_secret()).unwrap();
        let rotated = Keyring::new(new_key).with_previous([old.current.clone()]);
        assert!(sealed.iter().all(|s| rotated.needs_reseal(s)));
        for (i, s) in sealed.iter().enumerate() {
            assert_eq!(rotated.open(bound(owner), s).unwrap().expose_secret(), format!("v{i}"));
            let resealed = rotated.reseal(bound(owner), s).unwrap();
            assert!(!rotated.needs_reseal(&resealed));
            assert_eq!(resealed.key_id().unwrap(), rotated.current_id());
            let only_new = Keyring::new(rotated.current.clone());
            assert_eq!(only_new.open(bound(owner), &resealed).unwrap().expose_secret(), format!("v{i}"));
            assert_eq!(only_new.open(bound(owner), s).unwrap_err(), VaultError::UnknownKey(old.current_id()));
        }
    }

    #[test]
    fn short_and_sample_keys_are_refused() {
        // B5.34
        assert_eq!(MasterKey::from_material("too short").unwrap_err(), VaultError::KeyTooShort(9));
        for sample in [
            "changeme-changeme-changeme-changeme",
            &"a".repeat(40),
            &"abc".repeat(20),
            "your-secret-key-here-please-change-it!!",
        ] {
            assert_eq!(MasterKey::from_material(sample).unwrap_err(), VaultError::SampleKey, "{sample}");
        }
        assert!(MasterKey::from_material("k3v9-Qm2x-8Lp0-Zt7w-R4ny-Hs6e-Jd1u").is_ok());
    }

    #[test]
    fn debug_output_never_shows_key_bytes_or_values() {
        let material = MasterKey::generate();
        let key = MasterKey::from_material(material.expose_secret()).unwrap();
        let ring = Keyring::new(key.clone());
        let shown = format!("{key:?} {ring:?} {:?}", ring.seal(bound(Uuid::new_v4()), "CANARY-x"));
        assert!(!shown.contains(material.expose_secret()) && !shown.contains("CANARY"), "{shown}");
    }
}
