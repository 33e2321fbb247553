//! The validated policy and its allow rule.

use std::collections::{HashMap, HashSet};

use busd_proto::{Pfn, Subject};
use serde::Deserialize;

use crate::identity::Identity;
use crate::proofs::Proofs;
use crate::services::{ServiceRule, ServicesMode};

/// May unpackaged clients talk to each other (`[daemon] unpackaged`)?
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnpackagedMode {
    /// Never.
    Deny,
    /// Only clients of the same uid, as on a per-user session bus.
    #[default]
    SameUid,
    /// Always.
    Open,
}

/// The rules of one package.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PackageRules {
    /// The `privateNetworkClientServer` capability: without it the package
    /// sends and receives nothing.
    pub loopback: bool,
    /// Packages it accepts messages from.
    pub accept_from: HashSet<Pfn>,
    /// Packages it may send to.
    pub send_to: HashSet<Pfn>,
    /// May receive from unpackaged clients (`CheckNetIsolation -is`).
    pub exempt_in: bool,
    /// May send to unpackaged clients (`CheckNetIsolation -a`).
    pub exempt_out: bool,
    /// Its publishers wait for a `block` subscriber of another owner as
    /// long as for their own (`limits.block_timeout`), not only
    /// `limits.foreign_block_timeout`: a package that trusts its receivers
    /// not to hold it up.
    pub accept_block: bool,
    /// Custom capabilities that services may require.
    pub capabilities: HashSet<String>,
    /// How a client proves it is this package.
    pub proofs: Proofs,
    /// Who the services the daemon starts for it run as (`user`, `group`;
    /// names or numeric ids), when the daemon runs as root.
    pub run_as: (Option<String>, Option<String>),
    /// Where in the file each rule was written, for explanations.
    pub lines: RuleLines,
}

/// The lines of a package's rules in its file (1-based); `None` for a key
/// not written (its default applies). A list's line is its first entry's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleLines {
    /// The package's `pfn`.
    pub package: usize,
    /// `loopback`.
    pub loopback: Option<usize>,
    /// `in`.
    pub accept_from: Option<usize>,
    /// `out`.
    pub send_to: Option<usize>,
    /// `exempt_in`.
    pub exempt_in: Option<usize>,
    /// `exempt_out`.
    pub exempt_out: Option<usize>,
    /// `capabilities`.
    pub capabilities: Option<usize>,
}

/// The access policy in force: immutable once built; a reload builds a new
/// one and swaps it in whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The file the rules were read from, as explanations name it.
    pub source: String,
    /// May unpackaged clients talk to each other.
    pub unpackaged: UnpackagedMode,
    /// The configured packages.
    pub packages: HashMap<Pfn, PackageRules>,
    /// May names no package owns be served.
    pub services_mode: ServicesMode,
    /// The configured services, by name.
    pub services: HashMap<Subject, ServiceRule>,
    /// Expiring grants on top of the file (`busd ctl grant`), in force
    /// while they are here: the daemon removes them when they expire.
    pub grants: Vec<std::sync::Arc<crate::grant::Grant>>,
}

impl Policy {
    /// A policy with no packages and the given unpackaged mode.
    pub fn unpackaged_only(mode: UnpackagedMode) -> Self {
        Self {
            unpackaged: mode,
            ..Self::default()
        }
    }

    /// The configured service `name`, if any.
    pub fn service(&self, name: &Subject) -> Option<&ServiceRule> {
        self.services.get(name)
    }

    /// The rules of package `pfn`, `None` if it is not configured.
    pub fn package(&self, pfn: &Pfn) -> Option<&PackageRules> {
        self.packages.get(pfn)
    }

    /// Whether a message from `from` may reach `to` ([`decide`](Policy::decide)
    /// says why).
    ///
    /// A package the policy does not know (removed by a reload) is denied
    /// everything.
    pub fn allows(&self, from: &Identity, to: &Identity) -> bool {
        // The decision `decide` explains: the two cannot disagree.
        self.judge(from, to).0
    }

    /// Whether `who` holds the custom capability `capability`.
    pub fn has_capability(&self, who: &Identity, capability: &str) -> bool {
        who.pfn
            .as_ref()
            .and_then(|p| self.packages.get(p))
            .is_some_and(|r| r.capabilities.contains(capability))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pfn(s: &str) -> Pfn {
        Pfn::parse(format!("{s}_8wekyb3d8bbwe")).unwrap()
    }

    #[test]
    fn unpackaged_modes() {
        let a = Identity::unpackaged(Some(1000));
        let b = Identity::unpackaged(Some(1000));
        let c = Identity::unpackaged(Some(1001));
        let same = Policy::unpackaged_only(UnpackagedMode::SameUid);
        assert!(same.allows(&a, &b));
        assert!(!same.allows(&a, &c));
        assert!(!same.allows(&Identity::unpackaged(None), &Identity::unpackaged(None)));
        assert!(Policy::unpackaged_only(UnpackagedMode::Open).allows(&a, &c));
        assert!(!Policy::unpackaged_only(UnpackagedMode::Deny).allows(&a, &b));
    }

    #[test]
    fn mutual_rule_and_exemptions() {
        let (wa, ma) = (pfn("Contoso.Weather"), pfn("Fabrikam.Maps"));
        let mut policy = Policy::unpackaged_only(UnpackagedMode::Deny);
        let mut w = PackageRules {
            loopback: true,
            send_to: [ma.clone()].into(),
            ..Default::default()
        };
        let m = PackageRules {
            loopback: true,
            accept_from: [wa.clone()].into(),
            exempt_in: true,
            ..Default::default()
        };
        policy.packages.insert(wa.clone(), w.clone());
        policy.packages.insert(ma.clone(), m);
        let (w_id, m_id) = (
            Identity::package(wa.clone(), None),
            Identity::package(ma, None),
        );
        let anon = Identity::unpackaged(Some(1));
        assert!(policy.allows(&w_id, &m_id));
        assert!(!policy.allows(&m_id, &w_id), "Maps may not send to Weather");
        assert!(policy.allows(&w_id, &w_id), "same package");
        assert!(policy.allows(&anon, &m_id), "exempt_in");
        assert!(!policy.allows(&m_id, &anon), "no exempt_out");
        assert!(!policy.allows(&anon, &w_id));
        w.loopback = false;
        policy.packages.insert(wa, w);
        assert!(!policy.allows(&w_id, &m_id));
        assert!(
            !policy.allows(&w_id, &w_id),
            "no loopback, no traffic at all"
        );
    }
}
