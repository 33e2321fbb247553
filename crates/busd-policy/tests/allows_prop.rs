//! `Policy::allows` against the DESIGN rule (and `Policy::decide`, which
//! explains it, against `allows`), over random policies written
//! as TOML and loaded through the config reader, and random identities
//! (configured packages, unknown packages, unpackaged clients, uids).
//!
//! The reference below is written from DESIGN.md's prose, over its own
//! model of the config, and shares no code with the crate.

use busd_policy::{Identity, Policy, SourceFile};
use busd_proto::Pfn;
use proptest::prelude::*;

/// Package names; indices into this are the model's packages.
const POOL: [&str; 5] = [
    "Contoso.Weather_8wekyb3d8bbwe",
    "Fabrikam.Maps_1234567890abc",
    "Litware.Mail_0123456789abc",
    "Adatum.Chat_abcdefghjkmnp",
    "Never.Configured_qrstvwxyz0123",
];

#[derive(Debug, Clone)]
struct Pkg {
    loopback: bool,
    /// Bit i: POOL[i] is in `in`.
    accepts: u8,
    /// Bit i: POOL[i] is in `out`.
    sends: u8,
    exempt_in: bool,
    exempt_out: bool,
}

#[derive(Debug, Clone)]
struct Model {
    /// "deny", "same-uid" or "open".
    unpackaged: &'static str,
    /// `None`: POOL[i] is not a configured package.
    packages: Vec<Option<Pkg>>,
}

#[derive(Debug, Clone)]
struct Who {
    package: Option<usize>,
    uid: Option<u32>,
}

fn pkg() -> impl Strategy<Value = Pkg> {
    (
        any::<bool>(),
        0u8..32,
        0u8..32,
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(loopback, accepts, sends, exempt_in, exempt_out)| Pkg {
            loopback,
            accepts,
            sends,
            exempt_in,
            exempt_out,
        })
}

fn model() -> impl Strategy<Value = Model> {
    let mode = prop_oneof![Just("deny"), Just("same-uid"), Just("open")];
    // The last name of the pool is never configured.
    let pkgs = proptest::collection::vec(proptest::option::weighted(0.8, pkg()), POOL.len() - 1);
    (mode, pkgs).prop_map(|(unpackaged, mut packages)| {
        packages.push(None);
        Model {
            unpackaged,
            packages,
        }
    })
}

fn who() -> impl Strategy<Value = Who> {
    let package = proptest::option::weighted(0.7, 0..POOL.len());
    let uid = proptest::option::weighted(0.9, 0u32..3);
    (package, uid).prop_map(|(package, uid)| Who { package, uid })
}

/// The model as a config file.
fn to_toml(m: &Model) -> String {
    let names = |bits: u8| -> String {
        let listed: Vec<String> = (0..POOL.len())
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| format!("{:?}", POOL[i]))
            .collect();
        listed.join(", ")
    };
    let mut text = format!("[daemon]\nunpackaged = {:?}\n", m.unpackaged);
    for (i, p) in m.packages.iter().enumerate() {
        let Some(p) = p else { continue };
        text += &format!(
            "\n[[package]]\npfn = {:?}\nuids = [{i}]\nloopback = {}\nin = [{}]\nout = [{}]\nexempt_in = {}\nexempt_out = {}\n",
            POOL[i],
            p.loopback,
            names(p.accepts),
            names(p.sends),
            p.exempt_in,
            p.exempt_out
        );
    }
    text
}

/// DESIGN.md, "Access control", transcribed.
fn reference(m: &Model, from: &Who, to: &Who) -> bool {
    let rules = |who: &Who| who.package.and_then(|i| m.packages[i].as_ref());
    // A package needs loopback to send or receive anything; a package the
    // config does not name is nobody and reaches no one.
    for side in [from, to] {
        if side.package.is_some() && !rules(side).is_some_and(|r| r.loopback) {
            return false;
        }
    }
    match (from.package, to.package) {
        // Unpackaged to unpackaged: as `[daemon] unpackaged` says.
        (None, None) => match m.unpackaged {
            "open" => true,
            "same-uid" => matches!((from.uid, to.uid), (Some(a), Some(b)) if a == b),
            _ => false,
        },
        // exempt_out (-a): this package may send to unpackaged clients.
        (Some(_), None) => rules(from).is_some_and(|r| r.exempt_out),
        // exempt_in (-is): this package may receive from unpackaged clients.
        (None, Some(_)) => rules(to).is_some_and(|r| r.exempt_in),
        // Same package always; else A.out lists B and B.in lists A.
        (Some(a), Some(b)) => {
            let (ra, rb) = (m.packages[a].as_ref(), m.packages[b].as_ref());
            a == b
                || ra.is_some_and(|r| r.sends & (1 << b) != 0)
                    && rb.is_some_and(|r| r.accepts & (1 << a) != 0)
        }
    }
}

/// The keys an explanation may point at.
const RULE_KEYS: [&str; 6] = [
    "pfn =",
    "loopback =",
    "in =",
    "out =",
    "exempt_in =",
    "exempt_out =",
];

/// The lines an explanation names (`prop.toml:N`).
fn named_lines(said: &str) -> Vec<usize> {
    said.split("prop.toml:")
        .skip(1)
        .map(|rest| {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().expect("a line number")
        })
        .collect()
}

fn identity(w: &Who) -> Identity {
    match w.package {
        Some(i) => Identity::package(Pfn::parse(POOL[i]).unwrap(), w.uid),
        None => Identity::unpackaged(w.uid),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn allows_matches_the_design_rule(
        m in model(),
        flows in proptest::collection::vec((who(), who()), 1..32),
    ) {
        let text = to_toml(&m);
        let checked = Policy::from_toml(&SourceFile::new("prop.toml", &text, "/nonexistent"))
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let policy = checked.policy;
        for (from, to) in &flows {
            let (a, b) = (identity(from), identity(to));
            prop_assert_eq!(
                policy.allows(&a, &b),
                reference(&m, from, to),
                "from {:?} to {:?} under\n{}", from, to, text
            );
            // The explanation is the same decision, and every line it
            // names holds a rule.
            let decision = policy.decide(&a, &b);
            prop_assert_eq!(decision.allowed, policy.allows(&a, &b));
            let said = decision.to_string();
            let verdict = if decision.allowed { "allowed: " } else { "denied: " };
            prop_assert!(said.starts_with(verdict), "{}", said);
            for line in named_lines(&said) {
                let written = text.lines().nth(line - 1).unwrap_or("");
                prop_assert!(
                    RULE_KEYS.iter().any(|k| written.starts_with(k)),
                    "{} names line {}, {:?}, under\n{}", said, line, written, text
                );
            }
        }
    }
}
