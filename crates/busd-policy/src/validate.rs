//! From the raw `[[package]]` tables to a validated [`Policy`].
//!
//! Every package is checked and every error collected, so one run of
//! `busd check-config` shows all that is wrong. Errors refuse the policy
//! (malformed PFN, duplicate package, `exe` without `uids`, a package with
//! no proof, an unusable token file); warnings only explain rules that can
//! never apply (a rule naming an unconfigured package, one side of a rule
//! without the other, rules on a package without `loopback`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use busd_proto::Pfn;
use toml::Spanned;

use crate::diagnostic::{Diagnostic, PolicyError, SourceFile};
use crate::policy::{PackageRules, Policy, RuleLines};
use crate::proofs::Proofs;
use crate::raw::{RawPackage, RawPolicy, RawPolicyFile};
use crate::services::check_services;
use crate::token::Token;

/// A policy that passed validation, and what it is worth knowing about it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CheckedPolicy {
    /// The policy to enforce.
    pub policy: Policy,
    /// Rules that can never apply, and the like: `FILE:LINE: reason`.
    pub warnings: Vec<Diagnostic>,
}

impl TryFrom<(&SourceFile<'_>, RawPolicy)> for CheckedPolicy {
    type Error = PolicyError;

    fn try_from((file, raw): (&SourceFile<'_>, RawPolicy)) -> Result<Self, PolicyError> {
        Policy::from_raw(file, raw)
    }
}

impl Policy {
    /// Validates the raw rules read from `file`; relative token files are
    /// read from `file`'s base directory.
    ///
    /// # Errors
    /// A [`PolicyError`] with every error found (and the warnings).
    pub fn from_raw(file: &SourceFile<'_>, raw: RawPolicy) -> Result<CheckedPolicy, PolicyError> {
        let mut check = Check {
            file,
            granted: &raw.granted,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        let mut seen: HashMap<Pfn, usize> = HashMap::new();
        let mut packages = Vec::new();
        let mut services = HashMap::new();
        for raw in &raw.packages {
            let Some(pkg) = check.package(raw) else {
                continue;
            };
            let diagnostics = (&mut check.errors, &mut check.warnings);
            check_services(file, &pkg.pfn, &raw.service, &mut services, diagnostics);
            let line = file.line_of(pkg.at);
            if let Some(first) = seen.insert(pkg.pfn.clone(), line) {
                check.error(
                    pkg.at,
                    format!(
                        "package {} is configured twice (first on line {first})",
                        pkg.pfn
                    ),
                );
                continue;
            }
            packages.push(pkg);
        }
        // A package refused for another error is still configured: rules
        // naming it are not warned about as unknown.
        let named: HashSet<Pfn> = raw
            .packages
            .iter()
            .filter_map(|p| Pfn::parse(p.pfn.get_ref().as_str()).ok())
            .collect();
        check.cross_references(&packages, &named);
        let Check {
            mut errors,
            mut warnings,
            ..
        } = check;
        // File order; the sort is stable, so one line keeps its order.
        errors.sort_by_key(|d| d.line);
        warnings.sort_by_key(|d| d.line);
        if !errors.is_empty() {
            return Err(PolicyError { errors, warnings });
        }
        let policy = Policy {
            source: file.name().to_owned(),
            unpackaged: raw.unpackaged,
            packages: packages.into_iter().map(|p| (p.pfn, p.rules)).collect(),
            services_mode: raw.services,
            services: services
                .into_iter()
                .map(|(name, (rule, _))| (name, rule))
                .collect(),
            grants: Vec::new(),
        };
        Ok(CheckedPolicy { policy, warnings })
    }

    /// Reads the access rules of a TOML file: `[daemon] unpackaged` and
    /// the `[[package]]` tables; other tables and `[daemon]` keys are left
    /// to the daemon's own configuration.
    ///
    /// # Errors
    /// A [`PolicyError`]: the first TOML error (syntax, unknown key, type)
    /// with its line, or every validation error.
    pub fn from_toml(file: &SourceFile<'_>) -> Result<CheckedPolicy, PolicyError> {
        let raw: RawPolicyFile = toml::from_str(file.text()).map_err(|e| PolicyError {
            errors: vec![toml_diagnostic(file, &e)],
            warnings: Vec::new(),
        })?;
        let raw = RawPolicy {
            unpackaged: raw.daemon.unpackaged,
            services: raw.daemon.services,
            packages: raw.package,
            granted: Vec::new(),
        };
        Self::from_raw(file, raw)
    }
}

/// A TOML error as a diagnostic on its line.
pub fn toml_diagnostic(file: &SourceFile<'_>, e: &toml::de::Error) -> Diagnostic {
    let mut message = e.message().trim_end().to_owned();
    if message.is_empty() {
        // `toml` gives no words for some characters it refuses (a control
        // character in a comment): name the character instead.
        let at = e.span().and_then(|s| file.text().get(s.start..));
        message = match at.and_then(|rest| rest.chars().next()) {
            Some(c) => format!("unexpected character {c:?}"),
            None => "not valid TOML".to_owned(),
        };
    }
    match e.span() {
        Some(span) => file.at(span.start, message),
        None => Diagnostic {
            file: file.name().to_owned(),
            line: None,
            message,
        },
    }
}

/// One package that passed its own checks, with the spans of its rules.
struct Checked {
    pfn: Pfn,
    at: usize,
    rules: PackageRules,
    accept_from: Vec<(Pfn, usize)>,
    send_to: Vec<(Pfn, usize)>,
}

struct Check<'f, 'a> {
    file: &'f SourceFile<'a>,
    /// See [`RawPolicy::granted`].
    granted: &'f [String],
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Check<'_, '_> {
    fn error(&mut self, at: usize, message: String) {
        self.errors.push(self.file.at(at, message));
    }

    fn warn(&mut self, at: usize, message: String) {
        self.warnings.push(self.file.at(at, message));
    }

    /// Checks one package; `None` if it has an error.
    fn package(&mut self, raw: &RawPackage) -> Option<Checked> {
        let errors_before = self.errors.len();
        let at = raw.pfn.span().start;
        let pfn = Pfn::parse(raw.pfn.get_ref().as_str())
            .map_err(|e| self.error(at, format!("pfn: {e}")))
            .ok();
        let accept_from = self.pfn_list("in", &raw.accept_from);
        let send_to = self.pfn_list("out", &raw.send_to);
        let proofs = self.proofs(raw, at);
        let mut capabilities = HashSet::new();
        for cap in &raw.capabilities {
            if cap.get_ref().trim().is_empty() {
                self.error(
                    cap.span().start,
                    "capabilities: a capability needs a name".into(),
                );
            }
            capabilities.insert(cap.get_ref().clone());
        }
        let pfn = pfn?;
        if self.errors.len() > errors_before {
            return None;
        }
        let flag = |f: &Option<Spanned<bool>>| f.as_ref().is_some_and(|f| *f.get_ref());
        let line = |at: Option<usize>| at.map(|at| self.file.line_of(at));
        let flag_line = |f: &Option<Spanned<bool>>| line(f.as_ref().map(|f| f.span().start));
        let list_line = |l: &[Spanned<String>]| line(l.first().map(|e| e.span().start));
        let lines = RuleLines {
            package: self.file.line_of(at),
            loopback: flag_line(&raw.loopback),
            accept_from: list_line(&raw.accept_from),
            send_to: list_line(&raw.send_to),
            exempt_in: flag_line(&raw.exempt_in),
            exempt_out: flag_line(&raw.exempt_out),
            capabilities: list_line(&raw.capabilities),
        };
        let rules = PackageRules {
            loopback: flag(&raw.loopback),
            accept_from: accept_from.iter().map(|(p, _)| p.clone()).collect(),
            send_to: send_to.iter().map(|(p, _)| p.clone()).collect(),
            exempt_in: flag(&raw.exempt_in),
            exempt_out: flag(&raw.exempt_out),
            lines,
            accept_block: raw.accept_block,
            capabilities,
            proofs,
            run_as: (
                raw.user.as_ref().map(|u| u.get_ref().clone()),
                raw.group.as_ref().map(|g| g.get_ref().clone()),
            ),
        };
        Some(Checked {
            pfn,
            at,
            rules,
            accept_from,
            send_to,
        })
    }

    fn pfn_list(&mut self, key: &str, list: &[Spanned<String>]) -> Vec<(Pfn, usize)> {
        let mut out = Vec::new();
        for entry in list {
            let at = entry.span().start;
            match Pfn::parse(entry.get_ref().as_str()) {
                Ok(pfn) => out.push((pfn, at)),
                Err(e) => self.error(at, format!("{key}: {e}")),
            }
        }
        out
    }

    fn proofs(&mut self, raw: &RawPackage, at: usize) -> Proofs {
        let uids = raw
            .uids
            .as_ref()
            .map(|u| u.get_ref().clone())
            .unwrap_or_default();
        let mut exe: Vec<PathBuf> = Vec::new();
        if let Some(list) = &raw.exe {
            if uids.is_empty() && !list.get_ref().is_empty() {
                self.error(
                    list.span().start,
                    "exe is only valid together with uids: the executable is checked with the peer's uid".into(),
                );
            }
            for path in list.get_ref() {
                self.exe(path, &mut exe);
            }
        }
        let token = raw.token_file.as_ref().and_then(|f| {
            let path = self.file.resolve(f.get_ref());
            Token::from_file(&path)
                .map_err(|e| self.error(f.span().start, format!("token_file: {e}")))
                .ok()
        });
        let granted = self.granted.iter().any(|g| g == raw.pfn.get_ref().as_str());
        if raw.token_file.is_none() && uids.is_empty() && !granted {
            self.error(
                at,
                format!(
                    "package {} has no proof: set token_file or uids, else no client can ever be it",
                    raw.pfn.get_ref()
                ),
            );
        }
        Proofs { token, uids, exe }
    }

    fn exe(&mut self, path: &Spanned<PathBuf>, exe: &mut Vec<PathBuf>) {
        let (at, p) = (path.span().start, path.get_ref());
        if !p.is_absolute() {
            self.error(at, format!("exe: {} must be an absolute path", p.display()));
            return;
        }
        match std::fs::canonicalize(p) {
            Err(e) => self.warn(at, format!("exe: {}: {e}; no client can match it", p.display())),
            Ok(real) if real != *p => self.warn(
                at,
                format!(
                    "exe: {} resolves to {}, and the kernel reports the resolved path: list that one",
                    p.display(),
                    real.display()
                ),
            ),
            Ok(_) => {}
        }
        exe.push(p.clone());
    }

    /// Warnings about rules between packages.
    fn cross_references(&mut self, packages: &[Checked], named: &HashSet<Pfn>) {
        let by_pfn: HashMap<&Pfn, &PackageRules> =
            packages.iter().map(|p| (&p.pfn, &p.rules)).collect();
        for p in packages {
            let r = &p.rules;
            if !r.loopback
                && (!r.accept_from.is_empty()
                    || !r.send_to.is_empty()
                    || r.exempt_in
                    || r.exempt_out)
            {
                self.warn(
                    p.at,
                    format!(
                        "package {} has loopback = false: its in/out rules and exemptions can never apply",
                        p.pfn
                    ),
                );
            }
            for (other, at) in &p.accept_from {
                match by_pfn.get(other) {
                    None if !named.contains(other) => {
                        self.warn(*at, format!("in: {other} is not a configured package"));
                    }
                    None => {}
                    Some(o) if !o.send_to.contains(&p.pfn) && *other != p.pfn => self.warn(
                        *at,
                        format!(
                            "in: {other} does not list {} in its out, so it cannot send here",
                            p.pfn
                        ),
                    ),
                    Some(_) => {}
                }
            }
            for (other, at) in &p.send_to {
                match by_pfn.get(other) {
                    None if !named.contains(other) => {
                        self.warn(*at, format!("out: {other} is not a configured package"));
                    }
                    None => {}
                    Some(o) if !o.accept_from.contains(&p.pfn) && *other != p.pfn => self.warn(
                        *at,
                        format!("out: {other} does not list {} in its in, so it cannot receive from here", p.pfn),
                    ),
                    Some(_) => {}
                }
            }
        }
    }
}
