//! Password hashing in the crypt(3) formats guests use: yescrypt (`$y$`), SHA-512 (`$6$`),
//! SHA-256 (`$5$`) and MD5 (`$1$`), with RustCrypto's implementations (pwhash for MD5).

use diskfab_storage::{Error, Result};
use password_hash::PasswordHasher;
use serde::Serialize;

/// A crypt(3) method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Crypto {
    /// `$1$`.
    Md5,
    /// `$5$`.
    Sha256,
    /// `$6$`.
    Sha512,
    /// `$y$` (Debian 11+, Fedora 35+ default).
    Yescrypt,
}

impl std::str::FromStr for Crypto {
    type Err = Error;
    fn from_str(s: &str) -> Result<Crypto> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "md5" => Crypto::Md5,
            "sha256" => Crypto::Sha256,
            "sha512" => Crypto::Sha512,
            "yescrypt" => Crypto::Yescrypt,
            _ => {
                return Err(Error::Invalid(format!(
                    "password crypto {s:?}: use md5, sha256, sha512 or yescrypt"
                )))
            }
        })
    }
}

/// crypt(3)'s salt alphabet.
const ALPHABET: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// 16 salt characters from 16 bytes of entropy.
pub fn salt_chars(entropy: &[u8; 16]) -> String {
    entropy
        .iter()
        .map(|b| ALPHABET[usize::from(b & 63)] as char)
        .collect()
}

/// Hashes `password` with a salt made from `entropy`: 16 salt characters for SHA-crypt (the
/// most glibc/libxcrypt use), 22 for yescrypt, 8 for MD5-crypt.
pub fn hash(method: Crypto, password: &str, entropy: &[u8; 16]) -> Result<String> {
    let salt = salt_chars(entropy);
    let fail = |e: String| Error::Failed(format!("hashing the password: {e}"));
    Ok(match method {
        // MD5-crypt is obsolete but still what old guests' tools write; only on request.
        #[allow(deprecated)]
        Crypto::Md5 => {
            let s: String = salt.chars().take(8).collect();
            pwhash::md5_crypt::hash_with(format!("$1${s}$").as_str(), password)
                .map_err(|e| fail(e.to_string()))?
        }
        Crypto::Sha256 => sha_crypt::ShaCrypt::SHA256
            .hash_password_with_salt(password.as_bytes(), &entropy[..12])
            .map_err(|e| fail(e.to_string()))?
            .to_string(),
        Crypto::Sha512 => sha_crypt::ShaCrypt::SHA512
            .hash_password_with_salt(password.as_bytes(), &entropy[..12])
            .map_err(|e| fail(e.to_string()))?
            .to_string(),
        Crypto::Yescrypt => yescrypt::Yescrypt::default()
            .hash_password_with_salt(password.as_bytes(), entropy)
            .map_err(|e| fail(e.to_string()))?
            .to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_produces_its_crypt_prefix() {
        let salt = [7u8; 16];
        for (m, p) in [
            (Crypto::Md5, "$1$"),
            (Crypto::Sha256, "$5$"),
            (Crypto::Sha512, "$6$"),
            (Crypto::Yescrypt, "$y$"),
        ] {
            let h = hash(m, "secret", &salt).unwrap();
            assert!(h.starts_with(p), "{h}");
            assert_eq!(h, hash(m, "secret", &salt).unwrap(), "same salt, same hash");
            assert_ne!(h, hash(m, "other", &salt).unwrap());
        }
    }
}
