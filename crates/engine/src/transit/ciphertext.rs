//! The ciphertext format Vault's transit engine returns: `vault:v<N>:<base64>`, where the
//! base64 holds `nonce ‖ ciphertext ‖ tag`.

use super::CryptoError;

pub const PREFIX: &str = "vault:v";

/// Splits a ciphertext into its key version and base64 payload, with Vault's checks and
/// messages. Version 0 means 1, as in Vault (keys numbered from 0 before Vault 0.3).
pub fn parse(ciphertext: &str) -> Result<(i64, &str), CryptoError> {
    let rest = ciphertext
        .strip_prefix(PREFIX)
        .ok_or(CryptoError::NoPrefix)?;
    let (version, payload) = rest.split_once(':').ok_or(CryptoError::WrongFields)?;
    // Go's strconv.Atoi: an optional sign and decimal digits that fit in 64 bits.
    let version: i64 = version.parse().map_err(|_| CryptoError::BadVersionNumber)?;
    Ok((if version == 0 { 1 } else { version }, payload))
}

/// `vault:v<version>:` followed by the standard base64 of `sealed`.
pub fn format(version: u32, sealed: &[u8]) -> String {
    use base64::Engine;
    let mut out = String::with_capacity(PREFIX.len() + 11 + sealed.len().div_ceil(3) * 4);
    out.push_str(PREFIX);
    // Writing to a String cannot fail.
    let _ = std::fmt::Write::write_fmt(&mut out, format_args!("{version}:"));
    base64::engine::general_purpose::STANDARD.encode_string(sealed, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_vault() {
        assert_eq!(parse("vault:v1:abcd"), Ok((1, "abcd")));
        assert_eq!(parse("vault:v0:abcd"), Ok((1, "abcd")));
        assert_eq!(parse("vault:v+7:x"), Ok((7, "x")));
        assert_eq!(parse("vault:v-1:x"), Ok((-1, "x")));
        assert_eq!(parse("vault:v1:a:b"), Ok((1, "a:b")));
        assert_eq!(parse("vault:v1:"), Ok((1, "")));
        assert_eq!(parse("vault:"), Err(CryptoError::NoPrefix));
        assert_eq!(parse("garbage"), Err(CryptoError::NoPrefix));
        assert_eq!(parse("vault:v1"), Err(CryptoError::WrongFields));
        assert_eq!(parse("vault:vx:abcd"), Err(CryptoError::BadVersionNumber));
        assert_eq!(parse("vault:v:abcd"), Err(CryptoError::BadVersionNumber));
        assert_eq!(
            parse("vault:v99999999999999999999:a"),
            Err(CryptoError::BadVersionNumber)
        );
    }

    #[test]
    fn formats_like_vault() {
        assert_eq!(format(3, b"hi"), "vault:v3:aGk=");
        assert_eq!(format(12, b""), "vault:v12:");
    }
}
