//! RMCP+ cipher suites and the RAKP key exchange (IPMI 2.0 §13.28–13.32).
//!
//! Public so that tests can check every derivation against independently
//! computed vectors; the session code is the only real user.

use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::{Hmac, Mac};
use zeroize::Zeroize;

use crate::IpmiError;

/// RAKP authentication algorithm (Open Session authentication payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthAlgorithm {
    /// RAKP-none: no key exchange authentication at all.
    None,
    /// RAKP-HMAC-SHA1.
    HmacSha1,
    /// RAKP-HMAC-SHA256.
    HmacSha256,
}

/// Per-message integrity algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrityAlgorithm {
    /// No integrity check.
    None,
    /// HMAC-SHA1 truncated to 96 bits.
    HmacSha1_96,
    /// HMAC-SHA256 truncated to 128 bits.
    HmacSha256_128,
}

/// Payload confidentiality algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfidentialityAlgorithm {
    /// Clear text.
    None,
    /// AES-CBC-128 with a random IV per message.
    AesCbc128,
}

impl AuthAlgorithm {
    /// Wire number.
    pub fn code(self) -> u8 {
        match self {
            AuthAlgorithm::None => 0,
            AuthAlgorithm::HmacSha1 => 1,
            AuthAlgorithm::HmacSha256 => 3,
        }
    }

    /// Length of the RAKP 2/3 key exchange authentication code.
    pub fn hmac_len(self) -> usize {
        match self {
            AuthAlgorithm::None => 0,
            AuthAlgorithm::HmacSha1 => 20,
            AuthAlgorithm::HmacSha256 => 32,
        }
    }

    /// Length of the RAKP 4 integrity check value.
    pub fn icv_len(self) -> usize {
        match self {
            AuthAlgorithm::None => 0,
            AuthAlgorithm::HmacSha1 => 12,
            AuthAlgorithm::HmacSha256 => 16,
        }
    }

    /// HMAC of the concatenated `parts` under `key` (empty for RAKP-none).
    pub fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            AuthAlgorithm::None => Vec::new(),
            AuthAlgorithm::HmacSha1 => hmac_sha1(key, parts),
            AuthAlgorithm::HmacSha256 => hmac_sha256(key, parts),
        }
    }
}

impl IntegrityAlgorithm {
    /// Wire number.
    pub fn code(self) -> u8 {
        match self {
            IntegrityAlgorithm::None => 0,
            IntegrityAlgorithm::HmacSha1_96 => 1,
            IntegrityAlgorithm::HmacSha256_128 => 4,
        }
    }

    /// Length of the AuthCode field in the session trailer.
    pub fn mac_len(self) -> usize {
        match self {
            IntegrityAlgorithm::None => 0,
            IntegrityAlgorithm::HmacSha1_96 => 12,
            IntegrityAlgorithm::HmacSha256_128 => 16,
        }
    }

    /// The truncated MAC of `data` under K1.
    pub fn mac(self, k1: &[u8], data: &[u8]) -> Vec<u8> {
        let mut full = match self {
            IntegrityAlgorithm::None => return Vec::new(),
            IntegrityAlgorithm::HmacSha1_96 => hmac_sha1(k1, &[data]),
            IntegrityAlgorithm::HmacSha256_128 => hmac_sha256(k1, &[data]),
        };
        full.truncate(self.mac_len());
        full
    }
}

impl ConfidentialityAlgorithm {
    /// Wire number.
    pub fn code(self) -> u8 {
        match self {
            ConfidentialityAlgorithm::None => 0,
            ConfidentialityAlgorithm::AesCbc128 => 1,
        }
    }
}

/// A cipher suite: the three algorithms proposed in Open Session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CipherSuite {
    /// Suite number (ipmitool `-C`).
    pub id: u8,
    /// RAKP authentication.
    pub auth: AuthAlgorithm,
    /// Message integrity.
    pub integrity: IntegrityAlgorithm,
    /// Confidentiality.
    pub confidentiality: ConfidentialityAlgorithm,
}

impl CipherSuite {
    /// The suites this crate implements: 0, 1, 2, 3 and 17.
    pub fn from_id(id: u8) -> Result<CipherSuite, IpmiError> {
        use AuthAlgorithm as A;
        use ConfidentialityAlgorithm as C;
        use IntegrityAlgorithm as I;
        let (auth, integrity, confidentiality) = match id {
            0 => (A::None, I::None, C::None),
            1 => (A::HmacSha1, I::None, C::None),
            2 => (A::HmacSha1, I::HmacSha1_96, C::None),
            3 => (A::HmacSha1, I::HmacSha1_96, C::AesCbc128),
            17 => (A::HmacSha256, I::HmacSha256_128, C::AesCbc128),
            other => return Err(IpmiError::CipherSuiteUnknown(other)),
        };
        Ok(CipherSuite {
            id,
            auth,
            integrity,
            confidentiality,
        })
    }
}

fn hmac_sha1(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac =
        <Hmac<sha1::Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac =
        <Hmac<sha2::Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

/// The values both sides feed into the RAKP exchange.
#[derive(Debug, Clone)]
pub struct RakpInputs<'a> {
    /// Remote console (our) session ID, SIDm.
    pub console_session_id: u32,
    /// Managed system (BMC) session ID, SIDc.
    pub bmc_session_id: u32,
    /// Our random number Rm (RAKP 1).
    pub console_random: [u8; 16],
    /// The BMC's random number Rc (RAKP 2).
    pub bmc_random: [u8; 16],
    /// The BMC's GUID (RAKP 2).
    pub bmc_guid: [u8; 16],
    /// Requested role byte as sent in RAKP 1 (privilege | name-only lookup bit).
    pub role: u8,
    /// User name as sent in RAKP 1.
    pub username: &'a [u8],
}

impl RakpInputs<'_> {
    fn name_len(&self) -> [u8; 1] {
        [self.username.len() as u8]
    }
}

/// RAKP 2 key exchange authentication code the BMC must send:
/// HMAC_Kuid(SIDm, SIDc, Rm, Rc, GUIDc, ROLEm, ULENGTHm, UNAMEm).
pub fn rakp2_auth_code(auth: AuthAlgorithm, password: &[u8], i: &RakpInputs) -> Vec<u8> {
    auth.hmac(
        password,
        &[
            &i.console_session_id.to_le_bytes(),
            &i.bmc_session_id.to_le_bytes(),
            &i.console_random,
            &i.bmc_random,
            &i.bmc_guid,
            &[i.role],
            &i.name_len(),
            i.username,
        ],
    )
}

/// RAKP 3 key exchange authentication code we send:
/// HMAC_Kuid(Rc, SIDm, ROLEm, ULENGTHm, UNAMEm).
pub fn rakp3_auth_code(auth: AuthAlgorithm, password: &[u8], i: &RakpInputs) -> Vec<u8> {
    auth.hmac(
        password,
        &[
            &i.bmc_random,
            &i.console_session_id.to_le_bytes(),
            &[i.role],
            &i.name_len(),
            i.username,
        ],
    )
}

/// Session Integrity Key: HMAC_KG(Rm, Rc, ROLEm, ULENGTHm, UNAMEm), where KG
/// is the BMC key when one is configured and the user password otherwise.
pub fn session_integrity_key(auth: AuthAlgorithm, kg: &[u8], i: &RakpInputs) -> Vec<u8> {
    auth.hmac(
        kg,
        &[
            &i.console_random,
            &i.bmc_random,
            &[i.role],
            &i.name_len(),
            i.username,
        ],
    )
}

/// RAKP 4 integrity check value the BMC must send: HMAC_SIK(Rm, SIDc, GUIDc),
/// truncated (12 bytes for SHA1, 16 for SHA256).
pub fn rakp4_icv(auth: AuthAlgorithm, sik: &[u8], i: &RakpInputs) -> Vec<u8> {
    let mut v = auth.hmac(
        sik,
        &[
            &i.console_random,
            &i.bmc_session_id.to_le_bytes(),
            &i.bmc_guid,
        ],
    );
    v.truncate(auth.icv_len());
    v
}

/// Additional key K1 (integrity) or K2 (confidentiality): HMAC_SIK(constant
/// byte `n` repeated for the hash length).
pub fn additional_key(auth: AuthAlgorithm, sik: &[u8], n: u8) -> Vec<u8> {
    let c = vec![n; auth.hmac_len()];
    auth.hmac(sik, &[&c])
}

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;
type Aes128CbcDec = cbc::Decryptor<aes::Aes128>;

/// Encrypts an IPMI payload with AES-CBC-128: returns IV || ciphertext, where
/// the plaintext is padded with 1, 2, 3, ... and a pad-length byte to a
/// multiple of 16 (IPMI 2.0 §13.29).
pub fn aes_cbc_encrypt(k2: &[u8], iv: [u8; 16], payload: &[u8]) -> Vec<u8> {
    let key: [u8; 16] = k2[..16].try_into().expect("K2 has at least 16 bytes");
    let pad = (16 - (payload.len() + 1) % 16) % 16;
    let mut buf = Vec::with_capacity(payload.len() + pad + 1);
    buf.extend_from_slice(payload);
    buf.extend((1..=pad as u8).collect::<Vec<_>>());
    buf.push(pad as u8);
    let mut enc = Aes128CbcEnc::new(&key.into(), &iv.into());
    for block in buf.chunks_exact_mut(16) {
        enc.encrypt_block_mut(block.into());
    }
    let mut out = iv.to_vec();
    out.extend_from_slice(&buf);
    buf.zeroize();
    out
}

/// Decrypts IV || ciphertext and removes the IPMI confidentiality padding.
pub fn aes_cbc_decrypt(k2: &[u8], data: &[u8]) -> Result<Vec<u8>, &'static str> {
    if data.len() < 32 || data.len() % 16 != 0 {
        return Err("encrypted payload is not IV plus whole AES blocks");
    }
    let key: [u8; 16] = k2[..16].try_into().expect("K2 has at least 16 bytes");
    let iv: [u8; 16] = data[..16].try_into().expect("checked length");
    let mut buf = data[16..].to_vec();
    let mut dec = Aes128CbcDec::new(&key.into(), &iv.into());
    for block in buf.chunks_exact_mut(16) {
        dec.decrypt_block_mut(block.into());
    }
    let pad = *buf.last().expect("at least one block") as usize;
    if pad > 15 || pad + 1 > buf.len() {
        return Err("bad confidentiality pad length");
    }
    let body_len = buf.len() - pad - 1;
    for (k, b) in buf[body_len..buf.len() - 1].iter().enumerate() {
        if *b as usize != k + 1 {
            return Err("bad confidentiality pad bytes");
        }
    }
    buf.truncate(body_len);
    Ok(buf)
}

/// Compares two MACs / key exchange codes in constant time (for equal
/// lengths): how many leading bytes match must not show in the timing.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aes_round_trip_for_every_length_class() {
        let k2 = [7u8; 20];
        for len in 0..40 {
            let p: Vec<u8> = (0..len as u8).collect();
            let c = aes_cbc_encrypt(&k2, [9; 16], &p);
            assert_eq!(c.len() % 16, 0);
            assert_eq!(aes_cbc_decrypt(&k2, &c).unwrap(), p);
        }
    }

    #[test]
    fn suites_map_to_spec_algorithms() {
        assert_eq!(CipherSuite::from_id(3).unwrap().integrity.code(), 1);
        assert_eq!(CipherSuite::from_id(17).unwrap().auth.code(), 3);
        assert_eq!(CipherSuite::from_id(17).unwrap().integrity.code(), 4);
        assert!(matches!(
            CipherSuite::from_id(6),
            Err(IpmiError::CipherSuiteUnknown(6))
        ));
    }
}
