//! The JOSE that FIT-Connect needs, built on aws-lc-rs: JWE compact
//! serialisation with `RSA-OAEP-256` key wrapping and `A256GCM` content
//! encryption (what senders must use, FIT-Connect "Verschlüsselte
//! Übertragung"), and JWS compact with `PS512` (the signature of security
//! event tokens).
//!
//! Why not a JOSE crate: `josekit` links OpenSSL, a second crypto library
//! beside aws-lc-rs, which DEPENDENCIES.md rules out (one provider in the
//! tree); the pure-Rust JOSE crates pull RustCrypto's `rsa`, which had a
//! timing side channel (RUSTSEC-2023-0071) with no fixed release. The two
//! algorithms needed are a few lines each over aws-lc-rs primitives that
//! are already here for TLS and the vault: RSA-OAEP (SHA-256, MGF1-SHA-256),
//! AES-256-GCM, RSA-PSS (SHA-512). Everything else JOSE allows (other
//! algorithms, `zip`, JSON serialisation, `crit`) is refused, not ignored.
//!
//! Decryption and signing are here too: the FIT-Connect test double and the
//! tests use them (Kurier itself only encrypts and verifies).

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{
    KeyPair, RSA_PSS_2048_8192_SHA512, RSA_PSS_SHA512, RsaKeyPair, RsaPublicKeyComponents,
};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

/// FIT-Connect requires 4096-bit RSA keys for encryption and signatures.
pub const MIN_RSA_BITS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JoseError {
    #[error("not a JOSE compact serialisation")]
    Malformed,
    #[error("JOSE algorithm or header not supported: {0}")]
    Unsupported(&'static str),
    #[error("RSA key rejected: {0}")]
    Key(&'static str),
    #[error("decryption failed: wrong key or the token was altered")]
    Decrypt,
    #[error("signature does not verify")]
    Signature,
    #[error("no key with the token's kid")]
    UnknownKid,
    #[error("the crypto library failed")]
    Crypto,
}

/// A JSON Web Key as FIT-Connect publishes it (RSA only). Public parts
/// only: `n`, `e`, and the certificate chain `x5c` (standard base64 DER,
/// leaf first).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Jwk {
    pub kty: String,
    #[serde(default)]
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_ops: Vec<String>,
    pub n: String,
    pub e: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub x5c: Vec<String>,
}

impl Jwk {
    /// Modulus and exponent, big-endian.
    pub fn components(&self) -> Result<(Vec<u8>, Vec<u8>), JoseError> {
        if self.kty != "RSA" {
            return Err(JoseError::Unsupported("kty other than RSA"));
        }
        let n = B64URL.decode(&self.n).map_err(|_| JoseError::Malformed)?;
        let e = B64URL.decode(&self.e).map_err(|_| JoseError::Malformed)?;
        Ok((strip_zeros(&n).to_vec(), strip_zeros(&e).to_vec()))
    }

    /// The public JWK of an RSA key pair (`n`, `e`).
    pub fn rsa_public(kid: &str, pair: &RsaKeyPair) -> Jwk {
        let public = pair.public_key();
        Jwk {
            kty: "RSA".into(),
            kid: kid.into(),
            alg: None,
            key_ops: Vec::new(),
            n: B64URL.encode(public.modulus().big_endian_without_leading_zero()),
            e: B64URL.encode(public.exponent().big_endian_without_leading_zero()),
            x5c: Vec::new(),
        }
    }
}

pub(crate) fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The protected header of a JWE Kurier writes.
#[derive(Serialize)]
struct JweHeader<'a> {
    alg: &'static str,
    enc: &'static str,
    kid: &'a str,
    cty: &'a str,
}

/// What a JWE's protected header says, as far as it is read.
#[derive(Debug, Deserialize)]
pub struct ReadHeader {
    pub alg: String,
    #[serde(default)]
    pub enc: Option<String>,
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub cty: Option<String>,
    #[serde(default)]
    pub typ: Option<String>,
    #[serde(default)]
    pub zip: Option<String>,
    #[serde(default)]
    pub crit: Option<serde_json::Value>,
}

/// A destination's public encryption key (`RSA-OAEP-256`).
pub struct EncryptionKey {
    kid: String,
    key: OaepPublicEncryptingKey,
}

impl std::fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl EncryptionKey {
    /// The key of a JWK (at least [`MIN_RSA_BITS`] bits).
    pub fn from_jwk(jwk: &Jwk) -> Result<EncryptionKey, JoseError> {
        let (n, e) = jwk.components()?;
        let der = RsaPublicKeyComponents { n: &n, e: &e }
            .as_der()
            .map_err(|_| JoseError::Key("not an RSA public key"))?;
        let key = PublicEncryptingKey::from_der(der.as_ref())
            .map_err(|_| JoseError::Key("not an RSA public key"))?;
        if key.key_size_bits() < MIN_RSA_BITS {
            return Err(JoseError::Key("shorter than 4096 bits"));
        }
        Ok(EncryptionKey {
            kid: jwk.kid.clone(),
            key: OaepPublicEncryptingKey::new(key).map_err(|_| JoseError::Crypto)?,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// JWE compact: `RSA-OAEP-256` wraps a fresh AES-256 key, `A256GCM`
    /// encrypts `plaintext`; `cty` names the plaintext's media type.
    pub fn encrypt(&self, cty: &str, plaintext: &[u8]) -> Result<String, JoseError> {
        let header = serde_json::to_vec(&JweHeader {
            alg: "RSA-OAEP-256",
            enc: "A256GCM",
            kid: &self.kid,
            cty,
        })
        .map_err(|_| JoseError::Crypto)?;
        let header = B64URL.encode(header);
        let mut cek = [0u8; 32];
        let mut iv = [0u8; 12];
        aws_lc_rs::rand::fill(&mut cek).map_err(|_| JoseError::Crypto)?;
        aws_lc_rs::rand::fill(&mut iv).map_err(|_| JoseError::Crypto)?;
        let mut wrapped = vec![0u8; self.key.ciphertext_size()];
        let sealed = (|| {
            let wrapped = self
                .key
                .encrypt(&OAEP_SHA256_MGF1SHA256, &cek, &mut wrapped, None)
                .map_err(|_| JoseError::Crypto)?
                .len();
            let key = LessSafeKey::new(
                UnboundKey::new(&AES_256_GCM, &cek).map_err(|_| JoseError::Crypto)?,
            );
            let mut body = plaintext.to_vec();
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key(iv),
                    Aad::from(header.as_bytes()),
                    &mut body,
                )
                .map_err(|_| JoseError::Crypto)?;
            Ok::<_, JoseError>((wrapped, body, tag))
        })();
        cek.zeroize();
        let (wrapped_len, body, tag) = sealed?;
        Ok(format!(
            "{header}.{}.{}.{}.{}",
            B64URL.encode(&wrapped[..wrapped_len]),
            B64URL.encode(iv),
            B64URL.encode(&body),
            B64URL.encode(tag.as_ref())
        ))
    }
}

/// A private decryption key (the authority's side: the test double).
pub struct DecryptionKey {
    kid: String,
    key: OaepPrivateDecryptingKey,
}

impl DecryptionKey {
    /// A new 4096-bit key and its PKCS#8 DER (e.g. for a certificate).
    pub fn generate(kid: &str) -> Result<(DecryptionKey, Vec<u8>), JoseError> {
        let key =
            PrivateDecryptingKey::generate(KeySize::Rsa4096).map_err(|_| JoseError::Crypto)?;
        let pkcs8 = key
            .as_der()
            .map_err(|_| JoseError::Crypto)?
            .as_ref()
            .to_vec();
        Ok((DecryptionKey::from_pkcs8(kid, &pkcs8)?, pkcs8))
    }

    pub fn from_pkcs8(kid: &str, pkcs8: &[u8]) -> Result<DecryptionKey, JoseError> {
        let key = PrivateDecryptingKey::from_pkcs8(pkcs8)
            .map_err(|_| JoseError::Key("not PKCS#8 RSA"))?;
        Ok(DecryptionKey {
            kid: kid.into(),
            key: OaepPrivateDecryptingKey::new(key).map_err(|_| JoseError::Crypto)?,
        })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// Decrypt a JWE compact `RSA-OAEP-256`/`A256GCM`: the header and the
    /// plaintext. Any other algorithm, compression or a critical header is
    /// refused; any altered part fails the GCM tag.
    pub fn decrypt(&self, compact: &str) -> Result<(ReadHeader, Vec<u8>), JoseError> {
        let parts: Vec<&str> = compact.trim().split('.').collect();
        let [header_b64, wrapped, iv, body, tag] = parts.as_slice() else {
            return Err(JoseError::Malformed);
        };
        let decode = |s: &str| B64URL.decode(s).map_err(|_| JoseError::Malformed);
        let header: ReadHeader =
            serde_json::from_slice(&decode(header_b64)?).map_err(|_| JoseError::Malformed)?;
        if header.alg != "RSA-OAEP-256" {
            return Err(JoseError::Unsupported("alg other than RSA-OAEP-256"));
        }
        if header.enc.as_deref() != Some("A256GCM") {
            return Err(JoseError::Unsupported("enc other than A256GCM"));
        }
        if header.zip.is_some() || header.crit.is_some() {
            return Err(JoseError::Unsupported("zip or crit"));
        }
        if header.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(JoseError::UnknownKid);
        }
        let iv: [u8; 12] = decode(iv)?.try_into().map_err(|_| JoseError::Malformed)?;
        let tag = decode(tag)?;
        if tag.len() != 16 {
            return Err(JoseError::Malformed);
        }
        let mut cek_buf = vec![0u8; self.key.min_output_size()];
        let cek = self
            .key
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                &decode(wrapped)?,
                &mut cek_buf,
                None,
            )
            .map_err(|_| JoseError::Decrypt)?;
        if cek.len() != 32 {
            cek_buf.zeroize();
            return Err(JoseError::Decrypt);
        }
        let key =
            LessSafeKey::new(UnboundKey::new(&AES_256_GCM, cek).map_err(|_| JoseError::Crypto)?);
        cek_buf.zeroize();
        let mut in_out = decode(body)?;
        in_out.extend_from_slice(&tag);
        let plain_len = key
            .open_in_place(
                Nonce::assume_unique_for_key(iv),
                Aad::from(header_b64.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| JoseError::Decrypt)?
            .len();
        in_out.truncate(plain_len);
        Ok((header, in_out))
    }
}

/// An RSA key that signs PS512 (the test double's event signatures).
pub struct SigningKey {
    kid: String,
    pair: RsaKeyPair,
}

impl SigningKey {
    pub fn generate(kid: &str) -> Result<SigningKey, JoseError> {
        let pair = RsaKeyPair::generate(KeySize::Rsa4096).map_err(|_| JoseError::Crypto)?;
        Ok(SigningKey {
            kid: kid.into(),
            pair,
        })
    }

    /// The public key as a JWK for a JWKS (`alg` PS512, `key_ops` verify).
    pub fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::rsa_public(&self.kid, &self.pair);
        jwk.alg = Some("PS512".into());
        jwk.key_ops = vec!["verify".into()];
        jwk
    }

    /// JWS compact, PS512, with `typ` in the header.
    pub fn sign(&self, typ: &str, payload: &[u8]) -> Result<String, JoseError> {
        let header = serde_json::json!({"typ": typ, "alg": "PS512", "kid": self.kid});
        let input = format!(
            "{}.{}",
            B64URL.encode(header.to_string()),
            B64URL.encode(payload)
        );
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(
                &RSA_PSS_SHA512,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .map_err(|_| JoseError::Crypto)?;
        Ok(format!("{input}.{}", B64URL.encode(sig)))
    }
}

/// Verify a JWS compact signed PS512 by one of `keys` (by `kid`): its
/// header and payload.
pub fn verify_ps512(compact: &str, keys: &[Jwk]) -> Result<(ReadHeader, Vec<u8>), JoseError> {
    let parts: Vec<&str> = compact.trim().split('.').collect();
    let [header_b64, payload_b64, sig_b64] = parts.as_slice() else {
        return Err(JoseError::Malformed);
    };
    let header: ReadHeader = serde_json::from_slice(
        &B64URL
            .decode(header_b64)
            .map_err(|_| JoseError::Malformed)?,
    )
    .map_err(|_| JoseError::Malformed)?;
    if header.alg != "PS512" {
        return Err(JoseError::Unsupported("alg other than PS512"));
    }
    if header.crit.is_some() {
        return Err(JoseError::Unsupported("crit"));
    }
    let kid = header.kid.as_deref().ok_or(JoseError::UnknownKid)?;
    let jwk = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or(JoseError::UnknownKid)?;
    let (n, e) = jwk.components()?;
    if n.len() * 8 < MIN_RSA_BITS {
        return Err(JoseError::Key("shorter than 4096 bits"));
    }
    let sig = B64URL.decode(sig_b64).map_err(|_| JoseError::Malformed)?;
    let input_len = header_b64.len() + 1 + payload_b64.len();
    RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &RSA_PSS_2048_8192_SHA512,
            &compact.trim().as_bytes()[..input_len],
            &sig,
        )
        .map_err(|_| JoseError::Signature)?;
    let payload = B64URL
        .decode(payload_b64)
        .map_err(|_| JoseError::Malformed)?;
    Ok((header, payload))
}

/// A 4096-bit RSA key for encryption with its public JWK (the test double).
pub fn generate_encryption_key(kid: &str) -> Result<(DecryptionKey, Jwk, Vec<u8>), JoseError> {
    let (key, pkcs8) = DecryptionKey::generate(kid)?;
    let pair = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| JoseError::Crypto)?;
    let mut jwk = Jwk::rsa_public(kid, &pair);
    jwk.alg = Some("RSA-OAEP-256".into());
    jwk.key_ops = vec!["wrapKey".into()];
    Ok((key, jwk, pkcs8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::OnceLock;

    /// One key for all tests: 4096-bit generation takes a while.
    fn key() -> &'static (DecryptionKey, Jwk, Vec<u8>) {
        static KEY: OnceLock<(DecryptionKey, Jwk, Vec<u8>)> = OnceLock::new();
        KEY.get_or_init(|| generate_encryption_key("k1").unwrap())
    }

    #[test]
    fn a_jwe_round_trips_and_carries_kid_and_cty() {
        let (private, jwk, _) = key();
        let public = EncryptionKey::from_jwk(jwk).unwrap();
        let doc = "<antrag>Grüße & <vertraulich/></antrag>".as_bytes();
        let jwe = public.encrypt("application/xml", doc).unwrap();
        assert_eq!(jwe.split('.').count(), 5);
        assert!(!jwe.contains("antrag"));
        let (header, plain) = private.decrypt(&jwe).unwrap();
        assert_eq!(plain, doc);
        assert_eq!(header.kid.as_deref(), Some("k1"));
        assert_eq!(header.cty.as_deref(), Some("application/xml"));
        assert_eq!(header.enc.as_deref(), Some("A256GCM"));
        // Two encryptions of the same text differ (fresh key and IV).
        assert_ne!(public.encrypt("application/xml", doc).unwrap(), jwe);
        // Empty plaintexts work too.
        let empty = public.encrypt("text/plain", b"").unwrap();
        assert_eq!(private.decrypt(&empty).unwrap().1, b"");
    }

    #[test]
    fn an_independent_decryption_of_the_same_jwe_agrees() {
        // Decrypt by hand with aws-lc-rs primitives, not through
        // DecryptionKey: unwrap the CEK with RSA-OAEP-256 and open A256GCM
        // with the header's base64url text as AAD (RFC 7516 § 5.2).
        let (_, jwk, pkcs8) = key();
        let jwe = EncryptionKey::from_jwk(jwk)
            .unwrap()
            .encrypt("application/json", br#"{"a":1}"#)
            .unwrap();
        let p: Vec<Vec<u8>> = jwe.split('.').map(|s| B64URL.decode(s).unwrap()).collect();
        let header: serde_json::Value = serde_json::from_slice(&p[0]).unwrap();
        assert_eq!(header["alg"], "RSA-OAEP-256");
        let oaep = OaepPrivateDecryptingKey::new(PrivateDecryptingKey::from_pkcs8(pkcs8).unwrap())
            .unwrap();
        let mut out = vec![0u8; oaep.min_output_size()];
        let cek = oaep
            .decrypt(&OAEP_SHA256_MGF1SHA256, &p[1], &mut out, None)
            .unwrap();
        let gcm = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, cek).unwrap());
        let mut in_out = [p[3].clone(), p[4].clone()].concat();
        let aad = jwe.split('.').next().unwrap();
        let plain = gcm
            .open_in_place(
                Nonce::try_assume_unique_for_key(&p[2]).unwrap(),
                Aad::from(aad.as_bytes()),
                &mut in_out,
            )
            .unwrap();
        assert_eq!(plain, br#"{"a":1}"#);
    }

    #[test]
    fn any_altered_part_fails_to_decrypt() {
        let (private, jwk, _) = key();
        let jwe = EncryptionKey::from_jwk(jwk)
            .unwrap()
            .encrypt("application/xml", b"<a>1</a>")
            .unwrap();
        for part in 0..5 {
            let mut parts: Vec<String> = jwe.split('.').map(str::to_owned).collect();
            let mut bytes = B64URL.decode(&parts[part]).unwrap();
            if part == 0 {
                // A header that still parses: the AAD changes.
                bytes = br#"{"alg":"RSA-OAEP-256","enc":"A256GCM","kid":"k1","cty":"text/xml"}"#
                    .to_vec();
            } else {
                let last = bytes.len() - 1;
                bytes[last] ^= 1;
            }
            parts[part] = B64URL.encode(bytes);
            let result = private.decrypt(&parts.join("."));
            assert!(result.is_err(), "part {part} altered but decrypted");
        }
        // Other algorithms and a foreign kid are refused.
        let swapped = jwe.replacen(
            jwe.split('.').next().unwrap(),
            &B64URL.encode(br#"{"alg":"RSA1_5","enc":"A256GCM","kid":"k1"}"#),
            1,
        );
        assert!(matches!(
            private.decrypt(&swapped),
            Err(JoseError::Unsupported(_))
        ));
        let other = DecryptionKey::from_pkcs8("k2", &key().2).unwrap();
        assert_eq!(other.decrypt(&jwe).unwrap_err(), JoseError::UnknownKid);
    }

    #[test]
    fn short_rsa_keys_are_refused_for_encryption() {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
        let jwk = Jwk::rsa_public("short", &pair);
        assert_eq!(
            EncryptionKey::from_jwk(&jwk).unwrap_err(),
            JoseError::Key("shorter than 4096 bits")
        );
    }

    #[test]
    fn ps512_signatures_verify_and_tampering_is_detected() {
        let signer = SigningKey::generate("sig-1").unwrap();
        let keys = [signer.jwk()];
        let token = signer
            .sign("secevent+jwt", br#"{"sub":"submission:1"}"#)
            .unwrap();
        let (header, payload) = verify_ps512(&token, &keys).unwrap();
        assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
        assert_eq!(payload, br#"{"sub":"submission:1"}"#);
        // Another payload under the same signature.
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            B64URL.encode(br#"{"sub":"submission:2"}"#),
            parts[2]
        );
        assert_eq!(
            verify_ps512(&forged, &keys).unwrap_err(),
            JoseError::Signature
        );
        // A key that did not sign it.
        let mut stranger = SigningKey::generate("sig-1").unwrap().jwk();
        stranger.kid = "sig-1".into();
        assert_eq!(
            verify_ps512(&token, &[stranger]).unwrap_err(),
            JoseError::Signature
        );
        assert_eq!(
            verify_ps512(&token, &[]).unwrap_err(),
            JoseError::UnknownKid
        );
        // alg "none" or HS512 are never accepted.
        let none = format!(
            "{}.{}.",
            B64URL.encode(br#"{"alg":"none","kid":"sig-1"}"#),
            parts[1]
        );
        assert!(matches!(
            verify_ps512(&none, &keys),
            Err(JoseError::Unsupported(_))
        ));
    }
}
