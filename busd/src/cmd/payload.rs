//! Payloads on the command line: read from arguments or stdin, and shown
//! as text, JSON (for MessagePack) or hex.

use std::io::Read;
use std::process::ExitCode;

use bytes::Bytes;

/// How a payload argument is taken.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PayloadArgs {
    /// Parse the payload as JSON and send it as MessagePack (a ValueSet
    /// when it is an object).
    #[arg(long)]
    pub(crate) json: bool,
}

impl PayloadArgs {
    /// The bytes to send for `arg` (`-` reads stdin).
    pub(crate) fn read(&self, arg: &str) -> Result<Bytes, ExitCode> {
        let raw = if arg == "-" {
            let mut buf = Vec::new();
            std::io::stdin().read_to_end(&mut buf).map_err(|e| {
                eprintln!("busd: cannot read the payload from stdin: {e}");
                ExitCode::FAILURE
            })?;
            buf
        } else {
            arg.as_bytes().to_vec()
        };
        self.encode(raw)
    }

    /// The bytes to send for `raw`, as given (or as MessagePack with `--json`).
    pub(crate) fn encode(&self, raw: Vec<u8>) -> Result<Bytes, ExitCode> {
        if !self.json {
            return Ok(Bytes::from(raw));
        }
        let value: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
            eprintln!("busd: the payload is not valid JSON: {e}");
            ExitCode::from(2)
        })?;
        to_msgpack(&value).map_err(|e| {
            eprintln!("busd: {e}");
            ExitCode::FAILURE
        })
    }
}

/// `value` as one MessagePack value (an object becomes a map, a ValueSet).
///
/// # Errors
/// A sentence saying why it cannot be encoded.
pub(crate) fn to_msgpack(value: &serde_json::Value) -> Result<Bytes, String> {
    let why = |e: &dyn std::fmt::Display| format!("cannot encode the payload as MessagePack: {e}");
    let v = rmpv::ext::to_value(value).map_err(|e| why(&e))?;
    let mut out = Vec::new();
    rmpv::encode::write_value(&mut out, &v).map_err(|e| why(&e))?;
    Ok(Bytes::from(out))
}

/// Shows a payload on one line: UTF-8 text (newlines escaped), else
/// MessagePack as JSON, else hex.
pub(crate) fn render(payload: &[u8]) -> String {
    if let Ok(text) = std::str::from_utf8(payload) {
        if !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
        {
            return text
                .replace('\\', "\\\\")
                .replace('\n', "\\n")
                .replace('\r', "\\r");
        }
    }
    if let Some(json) = msgpack_as_json(payload) {
        return json;
    }
    let mut hex = String::with_capacity(payload.len() * 2 + 2);
    hex.push_str("0x");
    for b in payload {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

/// The payload as JSON, if it is exactly one MessagePack value.
pub(crate) fn msgpack_as_json(payload: &[u8]) -> Option<String> {
    let mut cursor = payload;
    let value = rmpv::decode::read_value(&mut cursor).ok()?;
    if !cursor.is_empty() {
        return None;
    }
    let json: serde_json::Value = rmpv::ext::from_value(value).ok()?;
    serde_json::to_string(&json).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_text_msgpack_and_hex() {
        assert_eq!(render(b"hello world"), "hello world");
        assert_eq!(render(b"two\nlines"), "two\\nlines");
        let args = PayloadArgs { json: true };
        let packed = args.read(r#"{"city":"Paris","high":21}"#).unwrap();
        assert_eq!(render(&packed), r#"{"city":"Paris","high":21}"#);
        assert_eq!(render(&[0xc1, 0x00]), "0xc100");
    }
}
