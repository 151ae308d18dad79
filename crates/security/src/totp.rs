//! Time-based one-time passwords (RFC 6238), the second factor for tier 3.

use hmac::{Hmac, Mac};
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// The HMAC hash a TOTP uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TotpAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

/// Why a TOTP secret could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TotpError {
    #[error("TOTP secret is not valid base32")]
    InvalidBase32,
    #[error("TOTP secret must be at least 16 bytes, found {0}")]
    TooShort(usize),
    #[error("TOTP codes have 6 to 8 digits, not {0}")]
    Digits(u32),
}

/// A TOTP generator and checker. The seed is a [`Secret`].
#[derive(Debug, Clone)]
pub struct Totp {
    secret: Secret<Vec<u8>>,
    algorithm: TotpAlgorithm,
    digits: u32,
    step_secs: u64,
    /// How many steps either side of now a code may come from.
    skew: u64,
}

impl Totp {
    /// The common authenticator-app setting: SHA-1, 6 digits, 30 seconds,
    /// one step of clock skew either way.
    pub fn new(secret: Vec<u8>) -> Result<Self, TotpError> {
        Self::with_params(secret, TotpAlgorithm::Sha1, 6, 30)
    }

    /// A seed given in base32 (as authenticator apps show it).
    pub fn from_base32(text: &str) -> Result<Self, TotpError> {
        Self::new(decode_base32(text).ok_or(TotpError::InvalidBase32)?)
    }

    /// Explicit parameters (RFC 6238 allows SHA-1/256/512, 6–8 digits).
    pub fn with_params(
        secret: Vec<u8>,
        algorithm: TotpAlgorithm,
        digits: u32,
        step_secs: u64,
    ) -> Result<Self, TotpError> {
        if secret.len() < 16 {
            return Err(TotpError::TooShort(secret.len()));
        }
        if !(6..=8).contains(&digits) {
            return Err(TotpError::Digits(digits));
        }
        Ok(Self {
            secret: Secret::new(secret),
            algorithm,
            digits,
            step_secs: step_secs.max(1),
            skew: 1,
        })
    }

    /// The time step containing `unix_secs`.
    pub fn step_at(&self, unix_secs: u64) -> u64 {
        unix_secs / self.step_secs
    }

    /// The code for the step containing `unix_secs`.
    pub fn generate(&self, unix_secs: u64) -> String {
        self.code_for_step(self.step_at(unix_secs))
    }

    /// The time step a code belongs to, if it is valid at `unix_secs`
    /// (within the allowed skew). Compared in constant time.
    pub fn verify(&self, code: &str, unix_secs: u64) -> Option<u64> {
        let code = code.trim();
        if code.len() != self.digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let now = self.step_at(unix_secs);
        let mut found = None;
        for step in now.saturating_sub(self.skew)..=now + self.skew {
            let expected = self.code_for_step(step);
            if bool::from(expected.as_bytes().ct_eq(code.as_bytes())) {
                found = Some(step);
            }
        }
        found
    }

    fn code_for_step(&self, step: u64) -> String {
        let message = step.to_be_bytes();
        let key = self.secret.expose();
        let digest = match self.algorithm {
            TotpAlgorithm::Sha1 => mac::<Hmac<sha1::Sha1>>(key, &message),
            TotpAlgorithm::Sha256 => mac::<Hmac<sha2::Sha256>>(key, &message),
            TotpAlgorithm::Sha512 => mac::<Hmac<sha2::Sha512>>(key, &message),
        };
        let offset = (digest[digest.len() - 1] & 0x0f) as usize;
        let binary = u32::from_be_bytes([
            digest[offset] & 0x7f,
            digest[offset + 1],
            digest[offset + 2],
            digest[offset + 3],
        ]);
        let code = binary % 10u32.pow(self.digits);
        format!("{code:0width$}", width = self.digits as usize)
    }
}

fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac =
        <M as hmac::digest::KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 4648 base32, case-insensitive, padding and spaces ignored.
fn decode_base32(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u64 = 0;
    let mut bits = 0u32;
    for c in text.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let value = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return None,
        };
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMES: [u64; 6] = [
        59,
        1111111109,
        1111111111,
        1234567890,
        2000000000,
        20000000000,
    ];

    fn check(algorithm: TotpAlgorithm, seed: &[u8], expected: [&str; 6]) {
        let totp = Totp::with_params(seed.to_vec(), algorithm, 8, 30).unwrap();
        for (time, code) in TIMES.iter().zip(expected) {
            assert_eq!(totp.generate(*time), code, "{algorithm:?} at {time}");
        }
    }

    #[test]
    fn matches_rfc6238_sha1_vectors() {
        check(
            TotpAlgorithm::Sha1,
            b"12345678901234567890",
            [
                "94287082", "07081804", "14050471", "89005924", "69279037", "65353130",
            ],
        );
    }

    #[test]
    fn matches_rfc6238_sha256_vectors() {
        check(
            TotpAlgorithm::Sha256,
            b"12345678901234567890123456789012",
            [
                "46119246", "68084774", "67062674", "91819424", "90698825", "77737706",
            ],
        );
    }

    #[test]
    fn matches_rfc6238_sha512_vectors() {
        check(
            TotpAlgorithm::Sha512,
            b"1234567890123456789012345678901234567890123456789012345678901234",
            [
                "90693936", "25091201", "99943326", "93441116", "38618901", "47863826",
            ],
        );
    }

    #[test]
    fn accepts_one_step_of_skew_and_refuses_older_codes() {
        let totp = Totp::new(b"12345678901234567890".to_vec()).unwrap();
        let code = totp.generate(1_000_000);
        assert_eq!(totp.verify(&code, 1_000_000), Some(totp.step_at(1_000_000)));
        assert!(totp.verify(&code, 1_000_030).is_some());
        assert!(totp.verify(&code, 1_000_090).is_none());
        assert!(totp.verify("12345", 1_000_000).is_none());
        assert!(totp.verify("abcdef", 1_000_000).is_none());
    }

    #[test]
    fn base32_seed_decodes_like_authenticator_apps() {
        // "12345678901234567890" in base32.
        let totp = Totp::from_base32("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
        assert_eq!(totp.generate(59), "287082");
        assert_eq!(
            Totp::from_base32("not base32!").unwrap_err(),
            TotpError::InvalidBase32
        );
    }

    #[test]
    fn debug_output_hides_the_seed() {
        let totp = Totp::new(b"12345678901234567890".to_vec()).unwrap();
        assert!(!format!("{totp:?}").contains("49, 50"));
        assert!(format!("{totp:?}").contains("redacted"));
    }
}
