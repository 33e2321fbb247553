//! The subject trie: subscriptions indexed by token, so a publish costs
//! O(tokens), not O(subscriptions).

use std::collections::HashMap;

use busd_proto::Subject;

/// A subscription's address: connection and its sid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SubKey {
    pub(crate) conn: u64,
    pub(crate) sid: u64,
}

#[derive(Debug, Default)]
struct Node {
    literal: HashMap<Box<str>, Node>,
    star: Option<Box<Node>>,
    /// Subscriptions whose pattern ends here.
    here: Vec<SubKey>,
    /// Subscriptions whose pattern ends here with `>`.
    rest: Vec<SubKey>,
}

impl Node {
    fn is_empty(&self) -> bool {
        self.literal.is_empty()
            && self.star.is_none()
            && self.here.is_empty()
            && self.rest.is_empty()
    }
}

/// Subscriptions by subject pattern.
#[derive(Debug, Default)]
pub(crate) struct Trie {
    root: Node,
    len: usize,
}

impl Trie {
    pub(crate) fn insert(&mut self, pattern: &Subject, key: SubKey) {
        let mut node = &mut self.root;
        let mut tokens = pattern.tokens().peekable();
        while let Some(token) = tokens.next() {
            if token == ">" && tokens.peek().is_none() {
                node.rest.push(key);
                self.len += 1;
                return;
            }
            node = if token == "*" {
                node.star.get_or_insert_with(Box::default)
            } else {
                node.literal.entry(token.into()).or_default()
            };
        }
        node.here.push(key);
        self.len += 1;
    }

    /// Removes `key` under `pattern`; returns whether it was there.
    pub(crate) fn remove(&mut self, pattern: &Subject, key: SubKey) -> bool {
        let tokens: Vec<&str> = pattern.tokens().collect();
        let removed = remove_at(&mut self.root, &tokens, key);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` for every subscription whose pattern matches the literal `subject`.
    pub(crate) fn matches(&self, subject: &Subject, f: &mut impl FnMut(SubKey)) {
        let tokens: Vec<&str> = subject.tokens().collect();
        match_at(&self.root, &tokens, f);
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

fn remove_at(node: &mut Node, tokens: &[&str], key: SubKey) -> bool {
    let take = |list: &mut Vec<SubKey>| match list.iter().position(|k| *k == key) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    };
    match tokens {
        [] => take(&mut node.here),
        [">"] => take(&mut node.rest),
        ["*", tail @ ..] => {
            let Some(child) = node.star.as_deref_mut() else {
                return false;
            };
            let removed = remove_at(child, tail, key);
            if child.is_empty() {
                node.star = None;
            }
            removed
        }
        [head, tail @ ..] => {
            let Some(child) = node.literal.get_mut(*head) else {
                return false;
            };
            let removed = remove_at(child, tail, key);
            if child.is_empty() {
                node.literal.remove(*head);
            }
            removed
        }
    }
}

fn match_at(node: &Node, tokens: &[&str], f: &mut impl FnMut(SubKey)) {
    let Some((head, tail)) = tokens.split_first() else {
        node.here.iter().copied().for_each(f);
        return;
    };
    // `>` needs at least one more token, which `head` is.
    node.rest.iter().copied().for_each(&mut *f);
    if let Some(child) = node.literal.get(*head) {
        match_at(child, tail, f);
    }
    if let Some(child) = node.star.as_deref() {
        match_at(child, tail, f);
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key(sid: u64) -> SubKey {
        SubKey { conn: 1, sid }
    }

    fn found(trie: &Trie, subject: &str) -> Vec<u64> {
        let mut out = Vec::new();
        trie.matches(&Subject::parse(subject).unwrap(), &mut |k| out.push(k.sid));
        out.sort_unstable();
        out
    }

    #[test]
    fn wildcards_and_removal() {
        let mut trie = Trie::default();
        let patterns = ["a.b.c", "a.*.c", "a.>", ">", "*.b.*", "a.b"];
        for (i, p) in patterns.iter().enumerate() {
            trie.insert(&Subject::parse(*p).unwrap(), key(i as u64));
        }
        assert_eq!(found(&trie, "a.b.c"), vec![0, 1, 2, 3, 4]);
        assert_eq!(found(&trie, "a.b"), vec![2, 3, 5]);
        assert_eq!(found(&trie, "a"), vec![3]);
        assert_eq!(found(&trie, "x.b.y"), vec![3, 4]);
        assert!(trie.remove(&Subject::parse("a.>").unwrap(), key(2)));
        assert!(!trie.remove(&Subject::parse("a.>").unwrap(), key(2)));
        assert_eq!(found(&trie, "a.b.c"), vec![0, 1, 3, 4]);
        for (i, p) in patterns.iter().enumerate() {
            trie.remove(&Subject::parse(*p).unwrap(), key(i as u64));
        }
        assert_eq!(trie.len(), 0);
        assert!(trie.root.is_empty(), "empty nodes are pruned");
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("a".to_owned()),
            Just("b".to_owned()),
            Just("c".to_owned())
        ]
    }

    fn pattern() -> impl Strategy<Value = String> {
        let tok = prop_oneof![4 => token(), 1 => Just("*".to_owned())];
        (proptest::collection::vec(tok, 1..4), any::<bool>()).prop_map(|(mut t, gt)| {
            if gt {
                t.push(">".to_owned());
            }
            t.join(".")
        })
    }

    proptest! {
        #[test]
        fn trie_agrees_with_reference_rule(
            patterns in proptest::collection::vec(pattern(), 0..20),
            subjects in proptest::collection::vec(proptest::collection::vec(token(), 1..5), 1..10),
        ) {
            let mut trie = Trie::default();
            let patterns: Vec<Subject> = patterns.iter().map(|p| Subject::parse(p.as_str()).unwrap()).collect();
            for (i, p) in patterns.iter().enumerate() {
                trie.insert(p, key(i as u64));
            }
            for s in subjects {
                let literal = s.join(".");
                let subject = Subject::parse(literal.as_str()).unwrap();
                let want: Vec<u64> = patterns.iter().enumerate()
                    .filter(|(_, p)| p.matches(&subject)).map(|(i, _)| i as u64).collect();
                prop_assert_eq!(found(&trie, &literal), want);
            }
        }
    }
}
