//! busd's access policy: who a connection is and who may talk to whom.
//!
//! The rule is Windows' `LoopbackAccessRules`: a message from A reaches B
//! only if A's `out` names B and B's `in` names A, both packages have
//! `loopback`, or the two are the same package; unpackaged clients reach
//! packages only through the `exempt_in` / `exempt_out` exemptions, and each
//! other as `[daemon] unpackaged` says. [`Policy::allows`] is that rule, and
//! the router asks it on every delivery.
//!
//! The rules come from the `[[package]]` tables of the daemon's TOML file:
//! read into [`RawPackage`]s, then checked by [`Policy::from_raw`] into a
//! [`Policy`], with every error and warning on its line ([`Diagnostic`]).
//! Each package also says how a client proves it is that package
//! ([`Proofs`]: a [`Token`], or peer uids and executables).

#![forbid(unsafe_code)]

mod diagnostic;
mod explain;
mod grant;
mod identity;
mod policy;
mod proofs;
mod raw;
mod services;
mod token;
mod validate;

pub use diagnostic::{Diagnostic, PolicyError, SourceFile};
pub use explain::{Answer, Decision, Party, Question, Reason};
pub use grant::Grant;
pub use identity::Identity;
pub use policy::{PackageRules, Policy, RuleLines, UnpackagedMode};
pub use proofs::Proofs;
pub use raw::{RawPackage, RawPolicy};
pub use services::{RawService, ServiceRule, ServicesMode};
pub use token::{MIN_TOKEN_LEN, Token, TokenFileError};
pub use validate::{CheckedPolicy, toml_diagnostic};
