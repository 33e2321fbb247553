//! busd's access policy: who a connection is and who may talk to whom.
//!
//! The rule is Windows' `LoopbackAccessRules`: a message from A reaches B
//! only if A's `out` names B and B's `in` names A, both packages have
//! `loopback`, or the two are the same package; unpackaged clients reach
//! packages only through the `exempt_in` / `exempt_out` exemptions, and each
//! other as `[daemon] unpackaged` says. [`Policy::allows`] is that rule, and
//! the router asks it on every delivery.

mod identity;
mod policy;

pub use identity::Identity;
pub use policy::{PackageRules, Policy, UnpackagedMode};
