//! ISO-8859-15 (Latin-9) for the adapters whose authorities want it: an
//! encoder for XML that never loses a character, and a decoder for tests and
//! for reading such documents back. Pure functions and an in-memory sink; no
//! I/O.
//!
//! ISO-8859-15 is Latin-1 with eight code points replaced:
//!
//! | byte | Latin-1 | ISO-8859-15 |
//! |---|---|---|
//! | A4 | ¤ | € |
//! | A6 | ¦ | Š |
//! | A8 | ¨ | š |
//! | B4 | ´ | Ž |
//! | B8 | ¸ | ž |
//! | BC | ¼ | Œ |
//! | BD | ½ | œ |
//! | BE | ¾ | Ÿ |
//!
//! [`Sink`] takes the UTF-8 an [`crate::xml::XmlWriter`] produces and writes
//! every character ISO-8859-15 has as its byte, and every other character
//! (Turkish ğ ı ş, Polish ł ą ę, the Latin-1 characters above, emoji, …) as a
//! numeric character reference `&#NNN;`, which every XML parser turns back
//! into the character. C1 controls (U+0080–U+009F) are written as references
//! too, so that no reader can mistake them for Windows-1252 letters. This is
//! correct for text and attribute values; element and attribute names must be
//! ASCII, which every adapter's names are.

use std::io;

use crate::xml::ShortId;

/// The ISO-8859-15 byte for `c`, `None` if the charset lacks it (or it is a
/// C1 control, which we never write as a byte).
pub fn encode_char(c: char) -> Option<u8> {
    let byte = match c {
        '\u{0}'..='\u{7f}' => c as u8,
        '€' => 0xa4,
        'Š' => 0xa6,
        'š' => 0xa8,
        'Ž' => 0xb4,
        'ž' => 0xb8,
        'Œ' => 0xbc,
        'œ' => 0xbd,
        'Ÿ' => 0xbe,
        // The Latin-1 characters whose bytes ISO-8859-15 gave away.
        '\u{a4}' | '\u{a6}' | '\u{a8}' | '\u{b4}' | '\u{b8}' | '\u{bc}' | '\u{bd}' | '\u{be}' => {
            return None;
        }
        // The rest of U+00A0–U+00FF is the same in both; the match arm's
        // range guarantees the cast keeps the value.
        '\u{a0}'..='\u{ff}' => c as u8,
        _ => return None,
    };
    Some(byte)
}

/// The character of an ISO-8859-15 byte.
pub fn decode_byte(byte: u8) -> char {
    match byte {
        0xa4 => '€',
        0xa6 => 'Š',
        0xa8 => 'š',
        0xb4 => 'Ž',
        0xb8 => 'ž',
        0xbc => 'Œ',
        0xbd => 'œ',
        0xbe => 'Ÿ',
        other => char::from(other),
    }
}

/// Decodes ISO-8859-15 bytes. Every byte is a character, so this cannot fail.
/// Character references are left as they are: they are XML, not encoding.
pub fn decode(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| decode_byte(b)).collect()
}

/// Appends `text` to `out` in ISO-8859-15, every character the charset lacks
/// as a numeric character reference.
pub fn encode_into(text: &str, out: &mut Vec<u8>) {
    let mut rest = text;
    while !rest.is_empty() {
        // ASCII runs are copied as they are.
        let ascii = rest
            .bytes()
            .position(|b| !b.is_ascii())
            .unwrap_or(rest.len());
        out.extend_from_slice(&rest.as_bytes()[..ascii]);
        rest = &rest[ascii..];
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            match encode_char(c) {
                Some(byte) => out.push(byte),
                None => {
                    out.extend_from_slice(b"&#");
                    out.extend_from_slice(
                        ShortId::number(u64::from(u32::from(c))).as_str().as_bytes(),
                    );
                    out.push(b';');
                }
            }
            rest = chars.as_str();
        }
    }
}

/// An [`io::Write`] that receives UTF-8 XML and appends it to a buffer in
/// ISO-8859-15 (see the module documentation). A character split across two
/// writes is held back until it is complete; bytes that are not UTF-8 are an
/// [`io::ErrorKind::InvalidData`] error.
pub struct Sink<'o> {
    out: &'o mut Vec<u8>,
    pending: [u8; 4],
    pending_len: usize,
}

impl<'o> Sink<'o> {
    pub fn new(out: &'o mut Vec<u8>) -> Self {
        Self {
            out,
            pending: [0; 4],
            pending_len: 0,
        }
    }

    /// Checks that no partial character is left over.
    pub fn finish(self) -> io::Result<()> {
        if self.pending_len == 0 {
            Ok(())
        } else {
            Err(invalid_utf8())
        }
    }
}

fn invalid_utf8() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, "input is not UTF-8")
}

/// The length of the UTF-8 sequence a lead byte starts, `None` if it is not
/// a lead byte.
fn sequence_len(lead: u8) -> Option<usize> {
    match lead {
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

impl io::Write for Sink<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut input = buf;
        if self.pending_len > 0 {
            let need = sequence_len(self.pending[0]).ok_or_else(invalid_utf8)?;
            let take = (need - self.pending_len).min(input.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&input[..take]);
            self.pending_len += take;
            input = &input[take..];
            if self.pending_len < need {
                return Ok(buf.len());
            }
            let c = std::str::from_utf8(&self.pending[..need]).map_err(|_| invalid_utf8())?;
            encode_into(c, self.out);
            self.pending_len = 0;
        }
        match std::str::from_utf8(input) {
            Ok(text) => encode_into(text, self.out),
            Err(e) => {
                let (valid, tail) = input.split_at(e.valid_up_to());
                // `valid_up_to` marks the end of valid UTF-8.
                encode_into(
                    std::str::from_utf8(valid).map_err(|_| invalid_utf8())?,
                    self.out,
                );
                if e.error_len().is_some() || tail.len() > 3 {
                    return Err(invalid_utf8());
                }
                // An incomplete character at the end: keep it for the next write.
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len();
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    #[test]
    fn every_byte_decodes_and_encodes_back() {
        for byte in 0..=255u8 {
            let c = decode_byte(byte);
            if (0x80..=0x9f).contains(&byte) {
                assert_eq!(
                    encode_char(c),
                    None,
                    "C1 control {byte:#x} is written as a reference"
                );
            } else {
                assert_eq!(encode_char(c), Some(byte), "{byte:#x}");
            }
        }
    }

    #[test]
    fn the_eight_replaced_code_points() {
        let pairs = [
            (0xa4, '€', '¤'),
            (0xa6, 'Š', '¦'),
            (0xa8, 'š', '¨'),
            (0xb4, 'Ž', '´'),
            (0xb8, 'ž', '¸'),
            (0xbc, 'Œ', '¼'),
            (0xbd, 'œ', '½'),
            (0xbe, 'Ÿ', '¾'),
        ];
        for (byte, latin9, latin1) in pairs {
            assert_eq!(decode_byte(byte), latin9);
            assert_eq!(encode_char(latin9), Some(byte));
            assert_eq!(encode_char(latin1), None, "{latin1} is not in ISO-8859-15");
        }
    }

    #[test]
    fn characters_outside_become_references() {
        let mut out = Vec::new();
        encode_into("Yıldız Łódź ½ € ä \u{85} 😀", &mut out);
        assert_eq!(
            out,
            b"Y&#305;ld&#305;z &#321;\xf3d&#378; &#189; \xa4 \xe4 &#133; &#128512;".to_vec()
        );
        assert!(!out.contains(&b'?'));
    }

    #[test]
    fn a_character_split_across_writes_is_kept_whole() {
        let text = "ağł€😀x";
        for split in 0..=text.len() {
            let mut out = Vec::new();
            let mut sink = Sink::new(&mut out);
            sink.write_all(&text.as_bytes()[..split]).unwrap();
            sink.write_all(&text.as_bytes()[split..]).unwrap();
            sink.finish().unwrap();
            assert_eq!(
                out,
                b"a&#287;&#322;\xa4&#128512;x".to_vec(),
                "split at {split}"
            );
        }
        // Byte by byte.
        let mut out = Vec::new();
        let mut sink = Sink::new(&mut out);
        for byte in text.as_bytes() {
            sink.write_all(std::slice::from_ref(byte)).unwrap();
        }
        sink.finish().unwrap();
        assert_eq!(out, b"a&#287;&#322;\xa4&#128512;x".to_vec());
    }

    #[test]
    fn bytes_that_are_not_utf8_are_refused() {
        let mut out = Vec::new();
        let mut sink = Sink::new(&mut out);
        assert!(sink.write(b"a\xffb").is_err());
        let mut out = Vec::new();
        let mut sink = Sink::new(&mut out);
        sink.write_all(b"a\xc3").unwrap();
        assert!(
            sink.finish().is_err(),
            "an unfinished character is an error"
        );
    }
}
