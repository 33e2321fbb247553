//! The wire protocol's test vectors, `tests/vectors/*.json` at the root
//! of the repository (their format: `docs/PROTOCOL.md`, "Test vectors"),
//! checked against the Rust codec both ways: each frame's bytes decode to
//! its meaning and its meaning encodes to its bytes; each invalid frame is
//! refused with its code; each HMAC is recomputed. Clients in other
//! languages check themselves against the same files.
//!
//! The files are written from `vectors/cases` by the real encoder:
//! `cargo test -p busd-proto --test vectors -- --ignored regenerate`. The
//! checks read only the files, so a change of the codec fails them until
//! the vectors (and the document) are deliberately written again.

// The modules live in `vectors/`, beside this file.
#[path = "vectors/cases.rs"]
mod cases;
#[path = "vectors/fields.rs"]
mod fields;
#[path = "vectors/json.rs"]
mod json;
#[path = "vectors/meaning.rs"]
mod meaning;
#[path = "vectors/wire.rs"]
mod wire;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use busd_proto::{ErrorCode, Pfn, auth_mac};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::fields::{STATUSES, array, int, object, only_keys, text};
use crate::json::{Json, hex, unhex};
use crate::meaning::Meaning;

/// Every op, by name: a new one needs vectors (and a line here).
const ALL_OPS: [&str; 21] = [
    "Hello",
    "Challenge",
    "Auth",
    "Welcome",
    "Sub",
    "Unsub",
    "Pub",
    "Msg",
    "Serve",
    "Req",
    "Call",
    "Resp",
    "Ping",
    "Pong",
    "Error",
    "Ctl",
    "Dropped",
    "Monitor",
    "Event",
    "Release",
    "PoolGone",
];

/// Every admin command, by name.
const ALL_CTL: [&str; 11] = [
    "Stats",
    "Clients",
    "Subs",
    "Reload",
    "Services",
    "Explain",
    "ReloadDryRun",
    "Grant",
    "Grants",
    "Revoke",
    "Bridges",
];

/// The domain label the token proof's MAC starts with.
const AUTH_DOMAIN: &[u8] = b"busd-auth-v1\0";

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/vectors")
}

/// The vectors of every file of `kind`, with the file each came from.
fn vectors(kind: &str) -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/vectors exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut found = Vec::new();
    for path in files {
        let name = path
            .file_name()
            .expect("a file")
            .to_string_lossy()
            .into_owned();
        let text_of = std::fs::read_to_string(&path).expect("a readable file");
        let file: Value =
            serde_json::from_str(&text_of).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"));
        let file = object(&file);
        only_keys(file, &["kind", "description", "vectors"]);
        if text(&file["kind"]) == kind {
            found.extend(
                array(&file["vectors"])
                    .iter()
                    .map(|v| (name.clone(), v.clone())),
            );
        }
    }
    assert!(
        !found.is_empty(),
        "no {kind} vectors in {}",
        dir().display()
    );
    found
}

/// The frame fields of a vector, as `serde_json` parsed them.
fn frame_part(vector: &Value) -> Value {
    let v = object(vector);
    let keys = ["op", "fields", "body", "fds"];
    Value::Object(
        keys.iter()
            .map(|k| ((*k).to_owned(), v[*k].clone()))
            .collect(),
    )
}

#[test]
fn frames_decode_to_their_meaning_and_meanings_encode_to_their_bytes() {
    let mut names = BTreeSet::new();
    for (file, vector) in vectors("frames") {
        let v = object(&vector);
        only_keys(v, &["name", "note", "op", "fields", "body", "fds", "hex"]);
        let name = format!("{file}: {}", text(&v["name"]));
        assert!(
            names.insert(text(&v["name"]).to_owned()),
            "{name}: a second vector of this name"
        );
        let bytes = unhex(text(&v["hex"]));
        let meaning = Meaning::from_json(&vector);

        let encoded = wire::encode(&meaning).unwrap_or_else(|e| panic!("{name}: encoding: {e}"));
        assert_eq!(hex(&encoded), hex(&bytes), "{name}: encoded differently");

        let decoded =
            wire::decode(&bytes, u32::MAX).unwrap_or_else(|e| panic!("{name}: decoding: {e}"));
        let read = Json::Obj(decoded.to_json()).to_value();
        assert_eq!(
            read,
            frame_part(&vector),
            "{name}: decoded to another meaning"
        );
        assert_eq!(decoded, meaning, "{name}: decoded to another frame");
    }
}

#[test]
fn invalid_frames_are_refused_with_their_code() {
    for (file, vector) in vectors("invalid") {
        let v = object(&vector);
        only_keys(v, &["name", "note", "max_frame", "error", "hex"]);
        let name = format!("{file}: {}", text(&v["name"]));
        let max_frame = u32::try_from(int(&v["max_frame"])).expect("a u32 limit");
        let expected: ErrorCode = text(&v["error"]).parse().expect("an error code");
        match wire::decode(&unhex(text(&v["hex"])), max_frame) {
            Ok(meaning) => panic!("{name}: decoded to {meaning:?}"),
            Err(e) => assert_eq!(e.code(), expected, "{name}: {e}"),
        }
    }
}

#[test]
fn hmacs_cover_the_domain_the_nonce_and_the_claimed_package() {
    for (file, vector) in vectors("auth") {
        let v = object(&vector);
        only_keys(
            v,
            &["name", "note", "token", "nonce", "pfn", "message", "hmac"],
        );
        let name = format!("{file}: {}", text(&v["name"]));
        let token = unhex(text(&v["token"]));
        let nonce = unhex(text(&v["nonce"]));
        let package = text(&v["pfn"]);
        let message = unhex(text(&v["message"]));
        let hmac = unhex(text(&v["hmac"]));
        let nonce_len = (nonce.len() as u64).to_be_bytes();
        let covered = [AUTH_DOMAIN, &nonce_len[..], &nonce[..], package.as_bytes()].concat();
        assert_eq!(hex(&message), hex(&covered), "{name}: the message covered");
        let mut mac = Hmac::<Sha256>::new_from_slice(&token).expect("any key length");
        mac.update(&message);
        assert_eq!(
            hex(&mac.finalize().into_bytes()),
            hex(&hmac),
            "{name}: HMAC of the message"
        );
        let pfn = Pfn::parse(package).expect("a package family name");
        assert_eq!(
            hex(&auth_mac(&token, &nonce, &pfn)),
            hex(&hmac),
            "{name}: auth_mac"
        );
    }
}

#[test]
fn the_vectors_cover_every_op_flag_combination_body_code_status_and_command() {
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    let mut note = |what: &'static str, value: String| {
        seen.entry(what).or_default().insert(value);
    };
    for (_, vector) in vectors("frames") {
        let op = text(&vector["op"]);
        let fields = object(&vector["fields"]);
        note("op", op.to_owned());
        if matches!(op, "Hello" | "Welcome") {
            note(
                op_flags(op),
                format!("{} {}", fields["fds"], fields["set_pools"]),
            );
        }
        let fds = if int(&vector["fds"]) > 0 {
            "with fds"
        } else {
            "without fds"
        };
        note("body", format!("{} {fds}", text(&vector["body"]["kind"])));
        match op {
            "Error" => note("code", text(&fields["code"]).to_owned()),
            "Resp" => note("status", text(&fields["status"]).to_owned()),
            "Ctl" => note(
                "command",
                match &fields["command"] {
                    Value::String(unit) => unit.clone(),
                    tagged => object(tagged).keys().next().expect("a tag").clone(),
                },
            ),
            _ => {}
        }
    }
    let flags = set(["false false", "true false", "false true", "true true"].map(str::to_owned));
    let bodies = set(["inline", "segment", "pooled"]
        .into_iter()
        .flat_map(|k| [format!("{k} with fds"), format!("{k} without fds")]));
    let expected = [
        ("op", set(ALL_OPS.map(str::to_owned))),
        ("Hello flags", flags.clone()),
        ("Welcome flags", flags),
        ("body", bodies),
        ("code", set(ErrorCode::ALL.map(|c| c.as_str().to_owned()))),
        ("status", set(STATUSES.map(|s| s.as_str().to_owned()))),
        ("command", set(ALL_CTL.map(str::to_owned))),
    ];
    for (what, wanted) in expected {
        let got = seen.get(what).cloned().unwrap_or_default();
        let missing: Vec<_> = wanted.difference(&got).collect();
        assert!(missing.is_empty(), "no vector for {what}: {missing:?}");
    }
}

fn set(items: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    items.into_iter().collect()
}

fn op_flags(op: &str) -> &'static str {
    if op == "Hello" {
        "Hello flags"
    } else {
        "Welcome flags"
    }
}

/// Writes the vector files from `cases`, with the real encoder: run it
/// after a deliberate change of the protocol, then review the diff.
#[test]
#[ignore = "writes tests/vectors/*.json; run to regenerate them"]
fn regenerate() {
    for group in cases::groups() {
        let vectors = group.vectors.iter().map(|case| {
            let bytes = wire::encode(&case.meaning).expect("a case encodes");
            let back = wire::decode(&bytes, u32::MAX).expect("a case decodes");
            assert_eq!(back, case.meaning, "{}: does not read back", case.name);
            let mut fields = vec![("name".to_owned(), Json::str(case.name))];
            fields.extend(noted(case.note));
            fields.extend(case.meaning.to_json());
            fields.push(("hex".to_owned(), Json::hex(&bytes)));
            Json::Obj(fields)
        });
        write(group.file, "frames", group.description, vectors.collect());
    }
    let refused = cases::refused_cases().into_iter().map(|case| {
        let got = wire::decode(&case.bytes, case.max_frame).map(|_| ());
        let code = got.expect_err("an invalid case is refused").code();
        assert_eq!(code, case.code, "{}: refused with another code", case.name);
        let mut fields = vec![("name".to_owned(), Json::str(case.name))];
        fields.extend(noted(case.note));
        fields.extend([
            ("max_frame".to_owned(), Json::Int(case.max_frame.into())),
            ("error".to_owned(), Json::str(case.code.as_str())),
            ("hex".to_owned(), Json::hex(&case.bytes)),
        ]);
        Json::Obj(fields)
    });
    write(
        "invalid.json",
        "invalid",
        "Frames every reader refuses, with the code the daemon closes the connection with \
         (Error{code}, then close). Each is refused by its bytes alone, on any connection; \
         max_frame is the reader's limit.",
        refused.collect(),
    );
    let auth = cases::auth_cases().into_iter().map(|case| {
        let pfn = Pfn::parse(case.pfn).expect("a package family name");
        let nonce_len = (case.nonce.len() as u64).to_be_bytes();
        let message = [
            AUTH_DOMAIN,
            &nonce_len[..],
            &case.nonce[..],
            case.pfn.as_bytes(),
        ]
        .concat();
        let mut fields = vec![("name".to_owned(), Json::str(case.name))];
        fields.extend(noted(case.note));
        fields.extend([
            ("token".to_owned(), Json::hex(&case.token)),
            ("nonce".to_owned(), Json::hex(&case.nonce)),
            ("pfn".to_owned(), Json::str(case.pfn)),
            ("message".to_owned(), Json::hex(&message)),
            (
                "hmac".to_owned(),
                Json::hex(&auth_mac(&case.token, &case.nonce, &pfn)),
            ),
        ]);
        Json::Obj(fields)
    });
    write(
        "auth.json",
        "auth",
        "The token proof: hmac = HMAC-SHA256(key = token, message), message = \
         \"busd-auth-v1\\0\" || u64 big-endian length of the nonce || nonce || the claimed \
         package family name in UTF-8.",
        auth.collect(),
    );
}

/// A `note` field, unless there is nothing to say.
fn noted(note: &str) -> Option<(String, Json)> {
    (!note.is_empty()).then(|| ("note".to_owned(), Json::str(note)))
}

fn write(file: &str, kind: &str, description: &str, vectors: Vec<Json>) {
    let doc = Json::obj([
        ("kind", Json::str(kind)),
        ("description", Json::str(description)),
        ("vectors", Json::Arr(vectors)),
    ]);
    std::fs::create_dir_all(dir()).expect("tests/vectors can be made");
    std::fs::write(dir().join(file), doc.render()).expect("a vector file is written");
}
