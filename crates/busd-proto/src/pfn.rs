//! Package family names (`Name_PublisherId`) and the publisher-id hash.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

/// Crockford's base32 alphabet, lower case, as Windows writes publisher ids.
const CROCKFORD: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// A package family name such as `Contoso.Weather_8wekyb3d8bbwe`.
///
/// The name part is 3–50 characters of `A-Za-z0-9.-`; the publisher id is
/// 13 characters of lower-case Crockford base32 (see [`publisher_id`]).
///
/// ```
/// use busd_proto::Pfn;
/// let pfn = Pfn::parse("Contoso.Weather_8wekyb3d8bbwe")?;
/// assert_eq!(pfn.name(), "Contoso.Weather");
/// assert_eq!(pfn.publisher_id(), "8wekyb3d8bbwe");
/// # Ok::<(), busd_proto::PfnError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
// Shared: the daemon stamps it on every delivery, so a clone is a count.
pub struct Pfn(Arc<str>);

/// Why a string is not a package family name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PfnError {
    /// No `_` between name and publisher id.
    #[error("package family name {0:?} is not of the form Name_PublisherId")]
    NoSeparator(String),
    /// The name part breaks the 3–50 `A-Za-z0-9.-` rule.
    #[error("package name {0:?} must be 3 to 50 characters of A-Z, a-z, 0-9, '.' and '-'")]
    BadName(String),
    /// The publisher id is not 13 lower-case Crockford base32 characters.
    #[error("publisher id {0:?} must be 13 lower-case Crockford base32 characters")]
    BadPublisherId(String),
}

impl Pfn {
    /// Checks `text` and makes a package family name of it.
    ///
    /// # Errors
    /// A [`PfnError`] saying which part is malformed.
    pub fn parse(text: impl Into<String>) -> Result<Self, PfnError> {
        let text = text.into();
        let Some((name, id)) = text.rsplit_once('_') else {
            return Err(PfnError::NoSeparator(text));
        };
        let name_ok = (3..=50).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !name_ok {
            return Err(PfnError::BadName(name.to_owned()));
        }
        if id.len() != 13 || !id.bytes().all(|b| CROCKFORD.contains(&b)) {
            return Err(PfnError::BadPublisherId(id.to_owned()));
        }
        Ok(Self(text.into()))
    }

    /// Makes a package family name from a name and a publisher string
    /// (`CN=…`), computing the publisher id.
    ///
    /// # Errors
    /// [`PfnError::BadName`] if `name` breaks the naming rule.
    pub fn from_publisher(name: &str, publisher: &str) -> Result<Self, PfnError> {
        Self::parse(format!("{name}_{}", publisher_id(publisher)))
    }

    /// The whole name, `Name_PublisherId`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name part, before the last `_`.
    pub fn name(&self) -> &str {
        self.0.rsplit_once('_').map_or("", |(n, _)| n)
    }

    /// The 13-character publisher id.
    pub fn publisher_id(&self) -> &str {
        self.0.rsplit_once('_').map_or("", |(_, id)| id)
    }
}

/// Computes the 13-character publisher id of a publisher string, as Windows
/// does: SHA-256 of the UTF-16LE text, its first 8 bytes written in
/// Crockford base32 (64 bits padded with one zero bit to 65 = 13 × 5).
///
/// ```
/// let id = busd_proto::publisher_id(
///     "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US",
/// );
/// assert_eq!(id, "8wekyb3d8bbwe");
/// ```
pub fn publisher_id(publisher: &str) -> String {
    let mut hasher = Sha256::new();
    for unit in publisher.encode_utf16() {
        hasher.update(unit.to_le_bytes());
    }
    let digest = hasher.finalize();
    let mut head = [0u8; 8];
    head.copy_from_slice(&digest[..8]);
    // 64 bits followed by one zero bit: 13 groups of 5 bits.
    let bits = u128::from(u64::from_be_bytes(head)) << 1;
    (0..13)
        .map(|i| {
            let group = (bits >> (60 - 5 * i)) & 0x1f;
            char::from(CROCKFORD[group as usize])
        })
        .collect()
}

impl FromStr for Pfn {
    type Err = PfnError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Pfn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pfn({:?})", self.0)
    }
}

impl Serialize for Pfn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Pfn {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_test_vector() {
        let publisher =
            "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";
        assert_eq!(publisher_id(publisher), "8wekyb3d8bbwe");
        let pfn = Pfn::from_publisher("Microsoft.WindowsCalculator", publisher).unwrap();
        assert_eq!(pfn.as_str(), "Microsoft.WindowsCalculator_8wekyb3d8bbwe");
    }

    #[test]
    fn rejects_malformed_names() {
        assert!(matches!(
            Pfn::parse("NoSeparator"),
            Err(PfnError::NoSeparator(_))
        ));
        assert!(matches!(
            Pfn::parse("ab_8wekyb3d8bbwe"),
            Err(PfnError::BadName(_))
        ));
        assert!(matches!(
            Pfn::parse("a b c_8wekyb3d8bbwe"),
            Err(PfnError::BadName(_))
        ));
        assert!(matches!(
            Pfn::parse("Contoso_8wekyb3d8bbw"),
            Err(PfnError::BadPublisherId(_))
        ));
        // Crockford base32 has no i, l, o or u.
        assert!(matches!(
            Pfn::parse("Contoso_8wekyb3d8bbwu"),
            Err(PfnError::BadPublisherId(_))
        ));
        assert!(Pfn::parse("Fabrikam.Maps_1234567890abc").is_ok());
    }
}
