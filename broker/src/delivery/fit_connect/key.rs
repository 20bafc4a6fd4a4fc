//! The destination's encryption key as the Submission API publishes it
//! (`GET /v1/destinations/{id}/keys/{kid}`): a JWK for `RSA-OAEP-256` with
//! `key_ops` `wrapKey` and its certificate chain in `x5c`. When
//! `fit_key_ca_file` is set, the chain must lead to that CA at the time of
//! use and its leaf must certify exactly the JWK's `n` and `e`: a Submission
//! API (or anyone in front of it) cannot substitute a key of its own.

use base64::Engine;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::jose::{EncryptionKey, Jwk, strip_zeros};

/// anyExtendedKeyUsage (2.5.29.37.0): a leaf with an EKU must allow any use.
const ANY_EKU: &[u8] = &[0x55, 0x1d, 0x25, 0x00];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("encryption key {kid:?} refused: {why}")]
pub struct KeyRefused {
    pub kid: String,
    pub why: String,
}

/// The encryption key of `jwk`, its use and (with `anchors`) its chain checked.
pub fn accept(
    jwk: &Jwk,
    anchors: Option<&[CertificateDer<'static>]>,
    now: UnixTime,
) -> Result<EncryptionKey, KeyRefused> {
    let refuse = |why: String| KeyRefused {
        kid: jwk.kid.clone(),
        why,
    };
    if jwk.alg.as_deref().is_some_and(|a| a != "RSA-OAEP-256") {
        return Err(refuse("alg is not RSA-OAEP-256".into()));
    }
    if !jwk.key_ops.iter().any(|o| o == "wrapKey") {
        return Err(refuse("key_ops does not allow wrapKey".into()));
    }
    if let Some(anchors) = anchors {
        check_chain(jwk, anchors, now).map_err(refuse)?;
    }
    EncryptionKey::from_jwk(jwk).map_err(|e| refuse(e.to_string()))
}

fn check_chain(
    jwk: &Jwk,
    anchors: &[CertificateDer<'static>],
    now: UnixTime,
) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let chain: Vec<CertificateDer<'static>> = jwk
        .x5c
        .iter()
        .map(|c| b64.decode(c).map(CertificateDer::from))
        .collect::<Result<_, _>>()
        .map_err(|_| "x5c is not base64".to_owned())?;
    let Some((leaf, intermediates)) = chain.split_first() else {
        return Err("no x5c certificate chain".into());
    };
    let trust: Vec<rustls_pki_types::TrustAnchor<'_>> = anchors
        .iter()
        .map(|a| webpki::anchor_from_trusted_cert(a).map_err(|e| format!("fit_key_ca_file: {e}")))
        .collect::<Result<_, _>>()?;
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| format!("x5c leaf: {e}"))?;
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &trust,
        intermediates,
        now,
        webpki::KeyUsage::required_if_present(ANY_EKU),
        None,
        None,
    )
    .map_err(|e| format!("x5c chain does not lead to fit_key_ca_file: {e}"))?;
    // The leaf must certify this very key.
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|_| "x5c leaf is not X.509".to_owned())?;
    let Ok(x509_parser::public_key::PublicKey::RSA(rsa)) = parsed.public_key().parsed() else {
        return Err("x5c leaf does not hold an RSA key".into());
    };
    let (n, e) = jwk.components().map_err(|e| e.to_string())?;
    if strip_zeros(rsa.modulus) != n || strip_zeros(rsa.exponent) != e {
        return Err("x5c leaf certifies another key than n and e".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::fit_connect::jose::generate_encryption_key;
    use rustls_pki_types::PrivatePkcs8KeyDer;

    fn ca(name: &str) -> rcgen::CertifiedIssuer<'static, rcgen::KeyPair> {
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
        rcgen::CertifiedIssuer::self_signed(p, rcgen::KeyPair::generate().unwrap()).unwrap()
    }

    /// A JWK for a fresh key, certified by `issuer` (for `certified`'s key).
    fn jwk_with_chain(
        issuer: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
        certified: Option<&[u8]>,
    ) -> Jwk {
        let (_, mut jwk, pkcs8) = generate_encryption_key("enc-1").unwrap();
        let der = certified.unwrap_or(&pkcs8).to_vec();
        let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(
            &PrivatePkcs8KeyDer::from(der),
            &rcgen::PKCS_RSA_SHA256,
        )
        .unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.key_usages = vec![rcgen::KeyUsagePurpose::KeyEncipherment];
        let cert = p.signed_by(&pair, issuer).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        jwk.x5c = vec![b64.encode(cert.der()), b64.encode(issuer.der())];
        jwk
    }

    #[test]
    fn a_key_certified_by_the_configured_ca_is_accepted_and_others_are_refused() {
        let trusted = ca("Verwaltungs-PKI");
        let anchors = [trusted.der().clone()];
        let now = UnixTime::now();
        let good = jwk_with_chain(&trusted, None);
        assert!(accept(&good, Some(&anchors), now).is_ok());
        // No chain check without fit_key_ca_file.
        assert!(accept(&good, None, now).is_ok());
        // Issued by a CA nobody configured.
        let rogue = jwk_with_chain(&ca("Rogue"), None);
        let err = accept(&rogue, Some(&anchors), now).unwrap_err();
        assert!(err.why.contains("does not lead"), "{err}");
        // A genuine certificate, but for another key than n/e.
        let (_, _, other) = generate_encryption_key("other").unwrap();
        let swapped = jwk_with_chain(&trusted, Some(&other));
        let err = accept(&swapped, Some(&anchors), now).unwrap_err();
        assert!(err.why.contains("another key"), "{err}");
        // No chain at all, or a key not meant for key wrapping.
        let mut bare = good.clone();
        bare.x5c.clear();
        assert!(accept(&bare, Some(&anchors), now).is_err());
        let mut signing = good;
        signing.key_ops = vec!["verify".into()];
        assert!(accept(&signing, None, now).is_err());
    }
}
