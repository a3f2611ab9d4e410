//! Standard base64 decoding with the acceptance rules and error positions of Go's
//! `base64.StdEncoding.DecodeString`, which Vault uses for every base64 field of transit.
//!
//! Clients see the decoder's verdict in error messages (`illegal base64 data at input byte
//! 4`), and a value Vault accepts must be accepted here too: padding is required, `\r` and
//! `\n` are skipped anywhere, and non-zero trailing bits are tolerated (Go's encoding is not
//! strict by default).

use zeroize::Zeroizing;

/// Where the input stopped being base64, as Go's `CorruptInputError` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("illegal base64 data at input byte {0}")]
pub struct Base64Error(pub usize);

const INVALID: u8 = 0xff;

const DECODE: [u8; 256] = {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < alphabet.len() {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn is_newline(b: u8) -> bool {
    b == b'\n' || b == b'\r'
}

/// The `base64` crate's decoder, set to accept exactly what Go accepts of input without
/// line breaks: canonical padding required, non-zero trailing bits tolerated.
const FAST: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
);

/// Decodes `input`; the result is wiped from memory when dropped (it is often a secret).
///
/// Well-formed input (every transit request carries some) is decoded by the `base64`
/// crate, several symbols at a time; anything it refuses — or input with line breaks — is
/// decoded symbol by symbol by [`decode_like_go`], which also finds the position to report.
pub fn decode(input: &str) -> Result<Zeroizing<Vec<u8>>, Base64Error> {
    use base64::Engine;
    let mut out = Zeroizing::new(vec![0u8; input.len() / 4 * 3 + 3]);
    match FAST.decode_slice(input, &mut out[..]) {
        Ok(len) => {
            out.truncate(len);
            Ok(out)
        }
        Err(_) => decode_like_go(input),
    }
}

/// Go's `base64.StdEncoding.DecodeString`, symbol by symbol.
fn decode_like_go(input: &str) -> Result<Zeroizing<Vec<u8>>, Base64Error> {
    let src = input.as_bytes();
    let mut out = Zeroizing::new(Vec::with_capacity(src.len() / 4 * 3 + 3));
    let mut si = 0;
    // One quantum (up to four symbols, newlines skipped) per iteration.
    loop {
        let mut quantum = [0u8; 4];
        let mut len = 4;
        let mut j = 0;
        let mut trailing_garbage = None;
        while j < 4 {
            if si == src.len() {
                if j == 0 {
                    return Ok(out);
                }
                // A partial quantum without padding.
                return Err(Base64Error(si - j));
            }
            let byte = src[si];
            si += 1;
            let symbol = DECODE[byte as usize];
            if symbol != INVALID {
                quantum[j] = symbol;
                j += 1;
                continue;
            }
            if is_newline(byte) {
                continue;
            }
            if byte != b'=' {
                return Err(Base64Error(si - 1));
            }
            // Padding: valid only after two or three symbols, and only at the end.
            match j {
                0 | 1 => return Err(Base64Error(si - 1)),
                2 => {
                    while si < src.len() && is_newline(src[si]) {
                        si += 1;
                    }
                    if si == src.len() {
                        return Err(Base64Error(src.len()));
                    }
                    if src[si] != b'=' {
                        return Err(Base64Error(si - 1));
                    }
                    si += 1;
                }
                _ => {}
            }
            while si < src.len() && is_newline(src[si]) {
                si += 1;
            }
            if si < src.len() {
                trailing_garbage = Some(si);
            }
            len = j;
            break;
        }
        let value = u32::from(quantum[0]) << 18
            | u32::from(quantum[1]) << 12
            | u32::from(quantum[2]) << 6
            | u32::from(quantum[3]);
        let bytes = [(value >> 16) as u8, (value >> 8) as u8, value as u8];
        out.extend_from_slice(&bytes[..len - 1]);
        if let Some(at) = trailing_garbage {
            return Err(Base64Error(at));
        }
        if len < 4 {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;

    #[test]
    fn decodes_what_go_decodes() {
        assert_eq!(decode("aGVsbG8=").unwrap().as_slice(), b"hello");
        assert_eq!(decode("").unwrap().as_slice(), b"");
        assert_eq!(decode("aGk=").unwrap().as_slice(), b"hi");
        assert_eq!(decode("aA==").unwrap().as_slice(), b"h");
        assert_eq!(decode("aG\nVs\r\nbG8=\n").unwrap().as_slice(), b"hello");
        // Non-canonical trailing bits are accepted, as Go's non-strict decoder does.
        assert_eq!(decode("aGl=").unwrap().as_slice(), b"hi");
    }

    #[test]
    fn errors_point_where_go_points() {
        // Each position checked against OpenBao's answers.
        assert_eq!(decode("aGVsbG8"), Err(Base64Error(4)));
        assert_eq!(decode("not base64!"), Err(Base64Error(3)));
        assert_eq!(decode("!!"), Err(Base64Error(0)));
        assert_eq!(decode("5"), Err(Base64Error(0)));
        assert_eq!(decode("aGk=x"), Err(Base64Error(4)));
        assert_eq!(decode("a==="), Err(Base64Error(1)));
        assert_eq!(decode("aG=="), Ok(Zeroizing::new(b"h".to_vec())));
        assert_eq!(decode("aG="), Err(Base64Error(3)));
        assert_eq!(decode("aG=x"), Err(Base64Error(2)));
        assert_eq!(
            decode("illegal").unwrap_err().to_string(),
            "illegal base64 data at input byte 4"
        );
    }

    proptest! {
        #[test]
        fn round_trips_with_the_standard_encoder(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let decoded = decode(&encoded).unwrap();
            prop_assert_eq!(decoded.as_slice(), bytes.as_slice());
        }

        /// The fast path only ever gives the answer the symbol-by-symbol decoder gives.
        #[test]
        fn the_fast_path_agrees_with_the_go_decoder(input in "[A-Za-z0-9+/=\\n]{0,40}") {
            prop_assert_eq!(decode(&input), decode_like_go(&input));
        }

        /// Valid encodings, with the symbol before the padding replaced (non-zero
        /// trailing bits, which Go tolerates) and the padding sometimes cut or doubled.
        #[test]
        fn the_fast_path_agrees_on_near_valid_input(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            symbol in "[A-Za-z0-9+/]",
            padding in 0usize..4,
        ) {
            let encoded = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let body = encoded.trim_end_matches('=');
            let input = match body.char_indices().last() {
                Some((at, _)) => format!("{}{symbol}{}", &body[..at], "=".repeat(padding)),
                None => "=".repeat(padding),
            };
            prop_assert_eq!(decode(&input), decode_like_go(&input));
        }

        #[test]
        fn never_panics_and_agrees_with_a_strict_decoder(input in ".{0,64}") {
            let ours = decode(&input);
            let strict = base64::engine::general_purpose::STANDARD.decode(input.as_bytes());
            // Whatever the strict decoder accepts, Go (and so we) accept identically.
            match (&ours, strict) {
                (Ok(ours), Ok(bytes)) => prop_assert_eq!(ours.as_slice(), bytes.as_slice()),
                (Err(e), Ok(_)) => prop_assert!(false, "refused what a strict decoder accepts: {e}"),
                (Err(Base64Error(at)), Err(_)) => prop_assert!(*at <= input.len()),
                (Ok(_), Err(_)) => {}
            }
        }
    }
}
