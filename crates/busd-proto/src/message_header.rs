//! The two headers every message carries, `Pub` and `Msg`, read without
//! serde and, for a subject or sender seen just before, without allocating
//! or validating again; and plain ones (no message headers) written
//! without serde.
//!
//! Only the exact shape our encoders write (MessagePack as rmp-serde lays
//! an `Op` out, no message headers, nothing after) is taken here; anything
//! else returns `None` and goes to serde ([`decode_with_serde`]), which
//! decides it (and words the error). So this path accepts a subset of what
//! serde accepts and decodes it to the same `Op`; `tests::agrees_with_serde`
//! holds it to that.
//!
//! Both paths are strict: a header is one `Op` and nothing after it.
//! Bytes left over inside the header's length are an error, never skipped:
//! a peer must not be able to hide data in a frame that a reader acts on.

use bytes::{BufMut, BytesMut};
use rmp::decode;
use serde::de::{Deserialize, Deserializer, Visitor};

use crate::codec_error::CodecError;
use crate::op::{Op, Sender};
use crate::pfn::Pfn;
use crate::subject::Subject;

/// MessagePack `nil`.
const NIL: u8 = 0xc0;
/// `{"Pub": [` — a map of one entry, the variant's name, an array of its
/// two fields.
const PUB_PREFIX: [u8; 6] = [0x81, 0xa3, b'P', b'u', b'b', 0x92];
/// `{"Msg": [` and its four fields.
const MSG_PREFIX: [u8; 6] = [0x81, 0xa3, b'M', b's', b'g', 0x94];

/// The last subject and package name decoded on one connection: a
/// publisher sends to the same subject, a subscriber hears the same sender,
/// again and again, and a hit costs a comparison and a reference count.
#[derive(Debug, Default)]
pub(crate) struct NameCache {
    subject: Option<Subject>,
    pfn: Option<Pfn>,
}

impl NameCache {
    /// Decodes `header` if it is a plain `Pub` or `Msg`.
    pub(crate) fn decode(&mut self, header: &[u8]) -> Option<Op> {
        // The map of one variant and its field array, as the writers below
        // lay them out, compared whole; then the fields, and nothing after.
        if let Some(mut rd) = header.strip_prefix(&PUB_PREFIX) {
            let subject = self.subject(&mut rd)?;
            nil(&mut rd)?; // headers
            let op = Op::Pub {
                subject,
                headers: None,
            };
            return rd.is_empty().then_some(op);
        }
        let mut rd = header.strip_prefix(&MSG_PREFIX)?;
        let sid = decode::read_int(&mut rd).ok()?;
        let subject = self.subject(&mut rd)?;
        if decode::read_array_len(&mut rd).ok()? != 2 {
            return None;
        }
        let client_id = decode::read_int(&mut rd).ok()?;
        let pfn = if nil(&mut rd).is_some() {
            None
        } else {
            Some(self.pfn(&mut rd)?)
        };
        nil(&mut rd)?; // headers
        let op = Op::Msg {
            sid,
            subject,
            from: Sender { client_id, pfn },
            headers: None,
        };
        rd.is_empty().then_some(op)
    }

    /// Reads a subject: the cached one if the text is the same, else a
    /// newly checked one (`None` if invalid: serde words the error).
    fn subject(&mut self, rd: &mut &[u8]) -> Option<Subject> {
        cached(&mut self.subject, raw_string(rd)?, Subject::as_str, |t| {
            Subject::parse(t)
        })
    }

    /// Reads a package family name, as [`subject`](Self::subject) does.
    fn pfn(&mut self, rd: &mut &[u8]) -> Option<Pfn> {
        cached(&mut self.pfn, raw_string(rd)?, Pfn::as_str, |t| {
            Pfn::parse(t)
        })
    }
}

/// `slot`'s value if its text is `raw`, else `raw` checked as UTF-8 and
/// parsed, kept in `slot`. (Equal bytes are the cached text's, valid
/// UTF-8 already: a hit checks nothing again.)
fn cached<T: Clone, E>(
    slot: &mut Option<T>,
    raw: &[u8],
    as_str: fn(&T) -> &str,
    parse: fn(&str) -> Result<T, E>,
) -> Option<T> {
    if let Some(v) = slot.as_ref().filter(|v| as_str(v).as_bytes() == raw) {
        return Some(v.clone());
    }
    let v = parse(std::str::from_utf8(raw).ok()?).ok()?;
    *slot = Some(v.clone());
    Some(v)
}

/// Decodes `header` with serde: one `Op`, and nothing after it.
///
/// # Errors
/// [`CodecError::Malformed`] when the bytes are not an `Op`, or when
/// bytes follow it.
pub(crate) fn decode_with_serde(header: &[u8]) -> Result<Op, CodecError> {
    let mut de = rmp_serde::Deserializer::from_read_ref(header);
    let op = Op::deserialize(&mut de).map_err(|e| CodecError::Malformed(e.to_string()))?;
    // rmp-serde does not say where it stopped: the next marker read must
    // find the end of the header (one empty read, a few nanoseconds).
    match (&mut de).deserialize_option(AnyMarker) {
        Err(rmp_serde::decode::Error::InvalidMarkerRead(e))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            Ok(op)
        }
        _ => Err(CodecError::Malformed(format!(
            "bytes follow the {} in its header",
            op.name()
        ))),
    }
}

/// Takes one MessagePack marker, whatever it is, and reads nothing more:
/// `deserialize_option` reads the marker before it calls either method.
struct AnyMarker;

impl<'de> Visitor<'de> for AnyMarker {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any MessagePack value")
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, _rest: D) -> Result<(), D::Error> {
        Ok(())
    }
}

/// Appends the header of an `Op::Pub` without message headers, byte for
/// byte as rmp-serde would (checked in the tests below).
pub(crate) fn put_plain_pub(dst: &mut BytesMut, subject: &Subject) {
    dst.put_slice(&PUB_PREFIX);
    put_str(dst, subject.as_str());
    dst.put_u8(NIL); // no message headers
}

/// Appends the header of an `Op::Msg` without message headers, byte for
/// byte as rmp-serde would (checked in `frame`'s tests).
pub(crate) fn put_plain_msg(dst: &mut BytesMut, sid: u64, subject: &Subject, from: &Sender) {
    dst.put_slice(&MSG_PREFIX);
    put_uint(dst, sid);
    put_str(dst, subject.as_str());
    dst.put_u8(0x92); // from: [
    put_uint(dst, from.client_id);
    match &from.pfn {
        Some(pfn) => put_str(dst, pfn.as_str()),
        None => dst.put_u8(NIL),
    }
    dst.put_u8(NIL); // no message headers
}

// The two MessagePack primitives of those headers, appended directly:
// through rmp's `io::Write` calls, one per marker and field, encoding a
// delivery's head took 60 ns, most of it in the calls. Each writes exactly
// what `rmp::encode::write_uint`/`write_str` write (tests below).

/// An unsigned integer in its shortest form.
fn put_uint(dst: &mut BytesMut, n: u64) {
    match u8::try_from(n) {
        Ok(fixint) if fixint < 0x80 => dst.put_u8(fixint),
        _ => put_sized(dst, n, [0xcc, 0xcd, 0xce, 0xcf]),
    }
}

/// A string. (Only subjects and package names come here, at most 1 KiB:
/// never the `str32` lengths past 4 GiB that MessagePack cannot express.)
fn put_str(dst: &mut BytesMut, s: &str) {
    let len = s.len() as u64;
    match u8::try_from(len) {
        Ok(short) if short < 32 => dst.put_u8(0xa0 | short), // fixstr
        _ => put_sized(dst, len, [0xd9, 0xda, 0xdb, 0xdb]),
    }
    dst.put_slice(s.as_bytes());
}

/// A marker and `n`, big-endian, in the narrowest of 1, 2, 4 and 8 bytes
/// that holds it; `markers` are the four widths' markers.
fn put_sized(dst: &mut BytesMut, n: u64, markers: [u8; 4]) {
    if let Ok(n) = u8::try_from(n) {
        dst.put_u8(markers[0]);
        dst.put_u8(n);
    } else if let Ok(n) = u16::try_from(n) {
        dst.put_u8(markers[1]);
        dst.put_u16(n);
    } else if let Ok(n) = u32::try_from(n) {
        dst.put_u8(markers[2]);
        dst.put_u32(n);
    } else {
        dst.put_u8(markers[3]);
        dst.put_u64(n);
    }
}

/// Reads a string's bytes, borrowed from the header, not yet checked as UTF-8.
fn raw_string<'a>(rd: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(decode::read_str_len(rd).ok()?).ok()?;
    if rd.len() < len {
        return None;
    }
    let (text, rest) = rd.split_at(len);
    *rd = rest;
    Some(text)
}

/// Consumes a `nil`; `None` (consuming nothing) if the next value is not one.
fn nil(rd: &mut &[u8]) -> Option<()> {
    let (&first, rest) = rd.split_first()?;
    if first != NIL {
        return None;
    }
    *rd = rest;
    Some(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::frame::{Body, encode_head, encode_msg_head};
    use crate::op::Headers;

    fn header_of(op: &Op) -> Vec<u8> {
        let mut buf = bytes::BytesMut::new();
        encode_head(op, 0, &mut buf).unwrap();
        let header = buf[8..].to_vec();
        // Written directly or by serde, the bytes are serde's.
        assert_eq!(header, rmp_serde::to_vec(op).unwrap(), "{op:?}");
        header
    }

    fn serde(header: &[u8]) -> Option<Op> {
        decode_with_serde(header).ok()
    }

    #[test]
    fn decodes_what_the_encoders_write_and_reuses_the_last_names() {
        let mut cache = NameCache::default();
        let subject = Subject::from_static("weather.today.paris");
        let from = Sender {
            client_id: 1 << 40,
            pfn: Some(Pfn::parse("Contoso.Weather_8wekyb3d8bbwe").unwrap()),
        };
        let mut buf = bytes::BytesMut::new();
        encode_msg_head(7, &subject, &from, None, Body::Inline(0), &mut buf).unwrap();
        let first = cache.decode(&buf[8..]).expect("decoded directly");
        let second = cache.decode(&buf[8..]).expect("and again");
        assert_eq!(first, serde(&buf[8..]).unwrap());
        let (Op::Msg { subject: a, .. }, Op::Msg { subject: b, .. }) = (&first, &second) else {
            panic!("not a Msg: {first:?}");
        };
        assert!(
            std::ptr::eq(a.as_str(), b.as_str()),
            "the cached subject is shared"
        );
        let publish = Op::Pub {
            subject: subject.clone(),
            headers: None,
        };
        assert_eq!(cache.decode(&header_of(&publish)), Some(publish));
    }

    #[test]
    fn leaves_everything_else_to_serde() {
        let mut headers = Headers::new();
        headers.insert("k".into(), "v".into());
        let with_headers = Op::Pub {
            subject: Subject::from_static("a.b"),
            headers: Some(headers),
        };
        let mut cache = NameCache::default();
        assert_eq!(cache.decode(&header_of(&with_headers)), None);
        assert_eq!(cache.decode(&header_of(&Op::Ping)), None);
        let mut trailing = header_of(&Op::Pub {
            subject: Subject::from_static("a.b"),
            headers: None,
        });
        trailing.push(NIL);
        assert_eq!(cache.decode(&trailing), None);
        // An invalid subject: serde refuses it and says why.
        let bad = [0x81, 0xa3, b'P', b'u', b'b', 0x92, 0xa2, b'a', b' ', NIL];
        assert_eq!(cache.decode(&bad), None);
        assert!(serde(&bad).is_none());
    }

    proptest! {
        /// The direct primitives write what rmp writes.
        #[test]
        fn primitives_match_rmp(n in any::<u64>(), shift in 0_u32..64, len in 0_usize..70_000) {
            for n in [n, n >> shift] {
                let (mut ours, mut theirs) = (BytesMut::new(), Vec::new());
                put_uint(&mut ours, n);
                rmp::encode::write_uint(&mut theirs, n).unwrap();
                prop_assert_eq!(&ours[..], &theirs[..], "{}", n);
            }
            // Every str width: fixstr, str8, str16.
            for len in [len % 40, len % 300, len] {
                let s = "x".repeat(len);
                let (mut ours, mut theirs) = (BytesMut::new(), Vec::new());
                put_str(&mut ours, &s);
                rmp::encode::write_str(&mut theirs, &s).unwrap();
                prop_assert_eq!(&ours[..], &theirs[..], "len {}", len);
            }
        }

        /// Any header, valid or not: where the direct decoder decodes, serde
        /// decodes the same op.
        #[test]
        fn agrees_with_serde(
            sid in any::<u64>(),
            client in any::<u64>(),
            subject in "[a-c .*>]{0,6}",
            pfn in proptest::option::of("[A-Za-z.]{2,4}_[0-9a-z]{12,13}"),
            msg in any::<bool>(),
            cut in any::<usize>(),
            flip in any::<(usize, u8)>(),
            trailing in proptest::collection::vec(any::<u8>(), 1..8),
        ) {
            // Build the header by hand, so invalid names reach the decoder.
            let mut h = vec![0x81];
            rmp::encode::write_str(&mut h, if msg { "Msg" } else { "Pub" }).unwrap();
            rmp::encode::write_array_len(&mut h, if msg { 4 } else { 2 }).unwrap();
            if msg {
                rmp::encode::write_uint(&mut h, sid).unwrap();
            }
            rmp::encode::write_str(&mut h, &subject).unwrap();
            if msg {
                rmp::encode::write_array_len(&mut h, 2).unwrap();
                rmp::encode::write_uint(&mut h, client).unwrap();
                match &pfn {
                    Some(p) => rmp::encode::write_str(&mut h, p).unwrap(),
                    None => rmp::encode::write_nil(&mut h).unwrap(),
                }
            }
            rmp::encode::write_nil(&mut h).unwrap();
            // A valid subject is written as serde writes it (header_of checks).
            if let Ok(subject) = Subject::parse(subject.as_str()) {
                let publish = Op::Pub { subject, headers: None };
                prop_assert_eq!(NameCache::default().decode(&header_of(&publish)), Some(publish));
            }
            // Whole and well formed: the direct decoder takes it.
            prop_assert_eq!(NameCache::default().decode(&h).is_some(), serde(&h).is_some());
            // With anything after it, neither does.
            let long = [&h[..], &trailing[..]].concat();
            prop_assert_eq!(NameCache::default().decode(&long), None);
            prop_assert_eq!(serde(&long), None);
            for header in [h.clone(), h[..cut % (h.len() + 1)].to_vec(), {
                let mut f = h.clone();
                let i = flip.0 % f.len();
                f[i] ^= flip.1;
                f
            }] {
                let mut cache = NameCache::default();
                if let Some(op) = cache.decode(&header) {
                    prop_assert_eq!(Some(op), serde(&header));
                }
            }
        }
    }
}
