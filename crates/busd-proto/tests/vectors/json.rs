//! The JSON the vector files hold: an ordered tree for writing them (so a
//! field table reads in wire order; `serde_json`'s map sorts its keys), its
//! comparison with what `serde_json` parsed, and hex.

use serde_json::Value;

/// A JSON value whose objects keep the order they were built in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Json {
    Null,
    Bool(bool),
    /// Every integer of the protocol is unsigned; some exceed 2^53.
    Int(u64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// An object of `fields`, in that order.
    pub(crate) fn obj<const N: usize>(fields: [(&str, Json); N]) -> Self {
        Self::Obj(fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    }

    pub(crate) fn str(s: impl Into<String>) -> Self {
        Self::Str(s.into())
    }

    /// `None` as `null`.
    pub(crate) fn opt<T>(value: Option<T>, f: impl FnOnce(T) -> Json) -> Self {
        value.map_or(Self::Null, f)
    }

    /// Bytes as a lowercase hex string.
    pub(crate) fn hex(bytes: &[u8]) -> Self {
        Self::Str(hex(bytes))
    }

    /// The same value as `serde_json` holds it, to compare with a parsed file.
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(n) => Value::from(*n),
            Self::Str(s) => Value::String(s.clone()),
            Self::Arr(items) => Value::Array(items.iter().map(Self::to_value).collect()),
            Self::Obj(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_value()))
                    .collect(),
            ),
        }
    }

    /// Pretty text: a value that fits in a line of `WIDTH` stays on one.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out.push('\n');
        out
    }

    fn render_into(&self, out: &mut String, indent: usize) {
        const WIDTH: usize = 100;
        let compact = self.compact();
        let nested = match self {
            Self::Arr(items) => !items.is_empty(),
            Self::Obj(fields) => !fields.is_empty(),
            _ => false,
        };
        // A long hex string stays whole on its line, whatever its length.
        if !nested || (indent + compact.len() <= WIDTH && !self.holds_long_string()) {
            out.push_str(&compact);
            return;
        }
        let pad = " ".repeat(indent + 2);
        let (open, close, entries): (char, char, Vec<(Option<&str>, &Json)>) = match self {
            Self::Arr(items) => ('[', ']', items.iter().map(|v| (None, v)).collect()),
            Self::Obj(fields) => (
                '{',
                '}',
                fields.iter().map(|(k, v)| (Some(k.as_str()), v)).collect(),
            ),
            _ => unreachable!("only containers are expanded"),
        };
        out.push(open);
        for (i, (key, value)) in entries.into_iter().enumerate() {
            out.push_str(if i == 0 { "\n" } else { ",\n" });
            out.push_str(&pad);
            if let Some(key) = key {
                out.push_str(&quote(key));
                out.push_str(": ");
            }
            value.render_into(out, indent + 2);
        }
        out.push('\n');
        out.push_str(&" ".repeat(indent));
        out.push(close);
    }

    /// Whether a string this long sits directly in this container: such a
    /// container is expanded, so the string gets a line of its own.
    fn holds_long_string(&self) -> bool {
        let long = |v: &Json| matches!(v, Json::Str(s) if s.len() > 60);
        match self {
            Self::Arr(items) => items.iter().any(long),
            Self::Obj(fields) => fields.iter().any(|(_, v)| long(v)),
            _ => false,
        }
    }

    fn compact(&self) -> String {
        match self {
            Self::Null => "null".to_owned(),
            Self::Bool(b) => b.to_string(),
            Self::Int(n) => n.to_string(),
            Self::Str(s) => quote(s),
            Self::Arr(items) => {
                let items: Vec<String> = items.iter().map(Self::compact).collect();
                format!("[{}]", items.join(", "))
            }
            Self::Obj(fields) => {
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(k, v)| format!("{}: {}", quote(k), v.compact()))
                    .collect();
                format!("{{{}}}", fields.join(", "))
            }
        }
    }
}

/// A JSON string literal.
fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("a string encodes")
}

/// Lowercase hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hex (either case).
///
/// # Panics
/// On anything that is not an even number of hex digits.
pub(crate) fn unhex(text: &str) -> Vec<u8> {
    assert!(text.len() % 2 == 0, "odd number of hex digits: {text}");
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).expect("hex digits"))
        .collect()
}
