use busd_proto::{Pfn, Subject};

use crate::{Identity, Policy, SourceFile};

const WEATHER: &str = "Contoso.Weather_8wekyb3d8bbwe";
const MAPS: &str = "Fabrikam.Maps_1234567890abc";
const RADIO: &str = "Litware.Radio_1234567890abc";
const MUTE: &str = "Litware.Mute_1234567890abc";

/// Lines as numbered in the comments: each rule's line is what the
/// explanations must name.
const RULES: &str = r#"[daemon]
unpackaged = "same-uid"

[[package]]
pfn = "Contoso.Weather_8wekyb3d8bbwe"
loopback = true
uids = [1000]
out = ["Fabrikam.Maps_1234567890abc", "Litware.Radio_1234567890abc"]
in = ["Fabrikam.Maps_1234567890abc"]
exempt_out = true

[[package]]
pfn = "Fabrikam.Maps_1234567890abc"
loopback = true
uids = [1001]
in = ["Contoso.Weather_8wekyb3d8bbwe"]
out = ["Contoso.Weather_8wekyb3d8bbwe"]
capabilities = ["fabrikam.maps"]

[[package]]
pfn = "Litware.Radio_1234567890abc"
loopback = true
uids = [1002]
exempt_in = true

[[package]]
pfn = "Litware.Mute_1234567890abc"
uids = [1003]
"#;

fn policy() -> Policy {
    let dir = std::env::temp_dir();
    Policy::from_toml(&SourceFile::new("busd.toml", RULES, &dir))
        .expect("valid rules")
        .policy
}

fn pkg(pfn: &str) -> Identity {
    Identity::package(Pfn::parse(pfn).unwrap(), None)
}

fn said(policy: &Policy, from: &Identity, to: &Identity) -> String {
    let decision = policy.decide(from, to);
    assert_eq!(decision.allowed, policy.allows(from, to), "one decision");
    decision.to_string()
}

#[test]
fn each_decision_names_the_rule_and_its_line() {
    let p = policy();
    let (weather, maps, radio, mute) = (pkg(WEATHER), pkg(MAPS), pkg(RADIO), pkg(MUTE));
    let (alice, alice2, bob) = (
        Identity::unpackaged(Some(1000)),
        Identity::unpackaged(Some(1000)),
        Identity::unpackaged(Some(1001)),
    );
    let cases = [
        (
            &weather,
            &maps,
            "allowed: Contoso.Weather_8wekyb3d8bbwe's `out` (busd.toml:8) lists \
             Fabrikam.Maps_1234567890abc, and Fabrikam.Maps_1234567890abc's `in` \
             (busd.toml:16) lists Contoso.Weather_8wekyb3d8bbwe",
        ),
        (&weather, &weather, "allowed: same package"),
        (
            &maps,
            &radio,
            "denied: Fabrikam.Maps_1234567890abc's `out` (busd.toml:17) does not list \
             Litware.Radio_1234567890abc",
        ),
        (
            &weather,
            &radio,
            "denied: Litware.Radio_1234567890abc's `in` (busd.toml:21) does not list \
             Contoso.Weather_8wekyb3d8bbwe",
        ),
        (
            &weather,
            &mute,
            "denied: Litware.Mute_1234567890abc (busd.toml:27) does not have loopback = true",
        ),
        (
            &weather,
            &alice,
            "allowed: exempt_out on Contoso.Weather_8wekyb3d8bbwe (busd.toml:10)",
        ),
        (
            &maps,
            &alice,
            "denied: the receiver is unpackaged, and Fabrikam.Maps_1234567890abc \
             (busd.toml:13) has no exempt_out",
        ),
        (
            &alice,
            &radio,
            "allowed: exempt_in on Litware.Radio_1234567890abc (busd.toml:24)",
        ),
        (
            &alice,
            &weather,
            "denied: the sender is unpackaged, and Contoso.Weather_8wekyb3d8bbwe \
             (busd.toml:5) has no exempt_in",
        ),
        (
            &alice,
            &alice2,
            "allowed: both unpackaged, of the same uid 1000 ([daemon] unpackaged = \"same-uid\")",
        ),
        (
            &alice,
            &bob,
            "denied: both unpackaged, of uids 1000 and 1001, and [daemon] unpackaged = \"same-uid\"",
        ),
        (
            &pkg("Gone.Away_1234567890abc"),
            &weather,
            "denied: Gone.Away_1234567890abc is not a configured package",
        ),
    ];
    for (from, to, want) in cases {
        assert_eq!(said(&p, from, to), want);
    }
}

#[test]
fn a_request_needs_the_capability_the_service_requires_then_the_rules() {
    let p = policy();
    let (weather, maps) = (pkg(WEATHER), pkg(MAPS));
    let service = Subject::parse("fabrikam.maps.tiles").unwrap();
    let lacking = p.decide_request(&weather, &maps, &service, Some("fabrikam.maps"));
    assert_eq!(
        lacking.to_string(),
        "denied: service fabrikam.maps.tiles requires capability fabrikam.maps, which \
         Contoso.Weather_8wekyb3d8bbwe (busd.toml:5) lacks"
    );
    let holding = p.decide_request(&maps, &weather, &service, Some("fabrikam.maps"));
    assert!(holding.allowed, "{holding}");
    let unpackaged = Identity::unpackaged(Some(1000));
    let stranger = p.decide_request(&unpackaged, &maps, &service, Some("fabrikam.maps"));
    assert_eq!(
        stranger.to_string(),
        "denied: service fabrikam.maps.tiles requires capability fabrikam.maps, which an \
         unpackaged client lacks"
    );
    // Without a capability required, the rules between the two decide.
    let open = p.decide_request(&weather, &maps, &service, None);
    assert_eq!(open, p.decide(&weather, &maps));
}
