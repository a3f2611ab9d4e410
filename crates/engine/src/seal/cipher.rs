//! HPKE sealing and opening, and the public key in the forms it travels in.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use zeroize::Zeroizing;

use super::format::{SealedValue, binding_tag, key_id};
use super::{ALGORITHM, Binding, HPKE_INFO, OsCsprng, SealError, truncate};

pub(crate) type Kem = hpke::kem::X25519HkdfSha256;
type Kdf = hpke::kdf::HkdfSha256;
type Aead = hpke::aead::AesGcm256;

/// An X25519 public key to seal to, with its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingPublicKey {
    bytes: [u8; 32],
    id: String,
}

/// What `GET /v1/sys/sealing-key` serves in `data`, and what `svctl seal --public-key`
/// reads back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyDocument {
    /// [`super::format::key_id`] of the public key.
    pub key_id: String,
    /// The 32-byte X25519 public key, standard base64 with padding.
    pub public_key: String,
    /// [`ALGORITHM`].
    pub algorithm: String,
    /// When the key pair was created (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_time: Option<String>,
}

impl SealingPublicKey {
    /// A 32-byte X25519 public key. Refuses the low-order points, with which every sealed
    /// value would be readable by anyone (RFC 9180 §7.1.4).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SealError> {
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            SealError::invalid_public_key(format!(
                "it is {} bytes long; an X25519 public key is 32 bytes",
                bytes.len()
            ))
        })?;
        let key = <Kem as hpke::Kem>::PublicKey::from_bytes(&bytes)
            .map_err(|_| SealError::invalid_public_key("it is not an X25519 public key"))?;
        hpke::setup_sender::<Aead, Kdf, Kem, _>(&OpModeS::Base, &key, HPKE_INFO, &mut OsCsprng)
            .map_err(|_| {
                SealError::invalid_public_key(
                    "it is a low-order X25519 point, which no real key pair has",
                )
            })?;
        Ok(SealingPublicKey {
            id: key_id(&bytes),
            bytes,
        })
    }

    pub(crate) fn from_hpke(key: &<Kem as hpke::Kem>::PublicKey) -> Self {
        let mut bytes = [0u8; 32];
        key.write_exact(&mut bytes);
        SealingPublicKey {
            id: key_id(&bytes),
            bytes,
        }
    }

    /// The key in base64 (standard or URL-safe alphabet, padded or not).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or_else(|| {
                SealError::invalid_public_key(
                    "it is not base64 (expected the 44-character public_key served by /v1/sys/sealing-key)",
                )
            })?;
        Self::from_bytes(&bytes)
    }

    /// A public key file as `svctl seal --public-key` takes it: the JSON response of
    /// `GET /v1/sys/sealing-key`, its `data` object alone, or the bare base64 key. When the
    /// JSON names an algorithm or a key id they must match this suite and this key.
    pub fn parse(text: &str) -> Result<Self, SealError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(SealError::invalid_public_key(
                "the file is empty (expected what svctl seal --fetch-public-key prints)",
            ));
        }
        if !text.starts_with('{') {
            return Self::from_base64(text);
        }
        let value: Value = serde_json::from_str(text).map_err(|e| {
            SealError::invalid_public_key(format!("the file looks like JSON but is not: {e}"))
        })?;
        let object = match value.get("data") {
            Some(data @ Value::Object(_)) => data,
            _ => &value,
        };
        let Some(public_key) = object.get("public_key").and_then(Value::as_str) else {
            return Err(SealError::invalid_public_key(
                "the JSON has no \"public_key\" string (expected the response of GET /v1/sys/sealing-key, or its \"data\" object)",
            ));
        };
        if let Some(algorithm) = object.get("algorithm")
            && algorithm.as_str() != Some(ALGORITHM)
        {
            return Err(SealError::invalid_public_key(format!(
                "its algorithm is {}, but svctl seals with {ALGORITHM:?}; use a newer svctl",
                truncate(&algorithm.to_string(), 80)
            )));
        }
        let key = Self::from_base64(public_key)?;
        if let Some(id) = object.get("key_id")
            && id.as_str() != Some(key.id())
        {
            return Err(SealError::invalid_public_key(format!(
                "its key_id {} does not match its public_key (whose id is {:?}); the file was altered",
                truncate(&id.to_string(), 40),
                key.id()
            )));
        }
        Ok(key)
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.bytes)
    }

    fn to_hpke(&self) -> Result<<Kem as hpke::Kem>::PublicKey, SealError> {
        <Kem as hpke::Kem>::PublicKey::from_bytes(&self.bytes)
            .map_err(|_| SealError::invalid_public_key("it is not an X25519 public key"))
    }
}

/// Seals `plaintext` to `public_key` for `binding`; needs no server. Fails only for an
/// invalid binding (or an unusable key, which [`SealingPublicKey::from_bytes`] refuses).
pub fn seal(
    public_key: &SealingPublicKey,
    binding: &Binding,
    plaintext: &[u8],
) -> Result<String, SealError> {
    binding.validate()?;
    let key = public_key.to_hpke()?;
    let (enc, ciphertext) = hpke::single_shot_seal::<Aead, Kdf, Kem, _>(
        &OpModeS::Base,
        &key,
        HPKE_INFO,
        plaintext,
        binding.aad().as_bytes(),
        &mut OsCsprng,
    )
    .map_err(|e| match e {
        hpke::HpkeError::EncapError => SealError::invalid_public_key(
            "it is a low-order X25519 point, which no real key pair has",
        ),
        // AES-GCM refuses only messages past 64 GiB.
        other => SealError::invalid_public_key(format!("encryption failed: {other}")),
    })?;
    let mut payload = Vec::with_capacity(32 + ciphertext.len());
    payload.extend_from_slice(&enc.to_bytes());
    payload.extend_from_slice(&ciphertext);
    Ok(SealedValue {
        key_id: public_key.id.clone(),
        binding_tag: binding_tag(binding),
        payload,
    }
    .to_string())
}

/// Opens a parsed sealed value with the private key its key id named.
pub(crate) fn open(
    private_key: &<Kem as hpke::Kem>::PrivateKey,
    binding: &Binding,
    sealed: &SealedValue,
) -> Result<Zeroizing<Vec<u8>>, SealError> {
    if sealed.binding_tag != binding_tag(binding) {
        return Err(SealError::WrongBinding {
            binding: binding.clone(),
        });
    }
    let tampered = || SealError::Tampered {
        binding: binding.clone(),
    };
    let (enc, ciphertext) = sealed.split().ok_or_else(tampered)?;
    let enc = <Kem as hpke::Kem>::EncappedKey::from_bytes(enc).map_err(|_| tampered())?;
    hpke::single_shot_open::<Aead, Kdf, Kem>(
        &OpModeR::Base,
        private_key,
        &enc,
        HPKE_INFO,
        ciphertext,
        binding.aad().as_bytes(),
    )
    .map(Zeroizing::new)
    .map_err(|_| tampered())
}

/// A fresh key pair from the operating system's CSPRNG.
pub(crate) fn generate() -> (<Kem as hpke::Kem>::PrivateKey, SealingPublicKey) {
    let (private, public) = Kem::gen_keypair(&mut OsCsprng);
    (private, SealingPublicKey::from_hpke(&public))
}

/// The private key's 32 bytes, for storage.
pub(crate) fn private_bytes(key: &<Kem as hpke::Kem>::PrivateKey) -> Zeroizing<[u8; 32]> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    key.write_exact(bytes.as_mut_slice());
    bytes
}

/// A stored private key and the public key it implies.
pub(crate) fn private_from_bytes(
    bytes: &[u8],
) -> Option<(<Kem as hpke::Kem>::PrivateKey, SealingPublicKey)> {
    let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes).ok()?;
    let public = SealingPublicKey::from_hpke(&Kem::sk_to_pk(&private));
    Some((private, public))
}
