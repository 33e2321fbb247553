//! `busd_fuzz::subject::check`: lines of text near the rule's edges (its
//! characters in any order, tokens that often match each other, lengths
//! around the limit) and any text.

use busd_fuzz::subject::check;
use proptest::prelude::*;
use proptest::sample::select;

/// Text near the rule's edges: its characters in any order, a few tokens
/// that match each other often, and lengths around the limit.
fn candidate() -> impl Strategy<Value = String> {
    let chars = select(vec![
        'a', 'b', '.', '*', '>', ' ', '\t', '\n', 'é', '\u{a0}', '\u{85}', '\u{0}',
    ]);
    let token = select(vec!["a", "b", "c", "*", ">"]);
    prop_oneof![
        prop::collection::vec(chars, 0..10).prop_map(|c| c.into_iter().collect()),
        prop::collection::vec(token, 1..5).prop_map(|t| t.join(".")),
        (1020_usize..1030, any::<bool>()).prop_map(|(n, dot)| {
            let mut s = "x".repeat(n);
            if dot {
                s.replace_range(n / 2..n / 2 + 1, ".");
            }
            s
        }),
        "\\PC{0,12}",
    ]
}

proptest! {
    #[test]
    fn parse_and_matches_follow_the_rule(lines in prop::collection::vec(candidate(), 1..12)) {
        check(lines.join("\n").as_bytes());
    }
}
