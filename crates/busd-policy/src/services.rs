//! Services owned by packages (`[[package.service]]`): who alone may serve
//! a name, what a caller must hold, and how the daemon starts the service
//! when a request finds nobody serving it (activation).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use busd_proto::{Pfn, Subject};
use serde::Deserialize;
use toml::Spanned;

use crate::diagnostic::{Diagnostic, SourceFile};

/// May a package serve a name no package owns (`[daemon] services`)?
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServicesMode {
    /// Any client may serve a name that is not configured, as before
    /// services could be owned.
    #[default]
    Open,
    /// Only configured names can be served or called; a request for any
    /// other is answered `UnknownService`.
    ConfiguredOnly,
}

/// One configured service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRule {
    /// Its name, a literal subject.
    pub name: Subject,
    /// The only package that may serve it.
    pub owner: Pfn,
    /// The command the daemon runs to start it (`argv[0]` absolute), if it
    /// is started on demand.
    pub exec: Option<Vec<String>>,
    /// Only callers granted this capability may call it.
    pub require_capability: Option<String>,
    /// An instance the daemon started is stopped after this long without
    /// a request.
    pub idle_exit: Option<Duration>,
    /// Instances the daemon may run at once.
    pub max_instances: u32,
}

/// One `[[package.service]]` table as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub(crate) name: Spanned<String>,
    #[serde(default)]
    pub(crate) exec: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(crate) require_capability: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) idle_exit: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) max_instances: Option<Spanned<u32>>,
}

/// Checks the services of package `owner` (errors and warnings are
/// appended), adding the valid ones to `services`; a name another package
/// owns already is an error.
pub(crate) fn check_services(
    file: &SourceFile<'_>,
    owner: &Pfn,
    raw: &[RawService],
    services: &mut HashMap<Subject, (ServiceRule, usize)>,
    diagnostics: (&mut Vec<Diagnostic>, &mut Vec<Diagnostic>),
) {
    let (errors, warnings) = diagnostics;
    for s in raw {
        let at = s.name.span().start;
        let errors_before = errors.len();
        let name = match Subject::parse(s.name.get_ref().as_str()) {
            Ok(name) if name.has_wildcards() => {
                errors.push(file.at(
                    at,
                    format!("service name {name}: a service name is literal, without * or >"),
                ));
                continue;
            }
            Ok(name) => name,
            Err(e) => {
                errors.push(file.at(at, format!("service name: {e}")));
                continue;
            }
        };
        let exec = s.exec.as_ref().map(|e| {
            if let Err(why) = executable(e.get_ref()) {
                errors.push(file.at(e.span().start, format!("exec of service {name}: {why}")));
            }
            e.get_ref().clone()
        });
        let idle_exit = s.idle_exit.as_ref().and_then(|d| {
            let parsed = humantime_serde::re::humantime::parse_duration(d.get_ref());
            match parsed {
                Ok(d) => Some(d),
                Err(e) => {
                    let why =
                        format!("idle_exit of service {name}: {e}: give a duration such as 60s");
                    errors.push(file.at(d.span().start, why));
                    None
                }
            }
        });
        if let (Some(d), None) = (&s.idle_exit, &exec) {
            let why =
                format!("idle_exit of service {name} applies only to a service busd starts (exec)");
            warnings.push(file.at(d.span().start, why));
        }
        let max_instances = match &s.max_instances {
            Some(m) if *m.get_ref() == 0 => {
                errors.push(file.at(
                    m.span().start,
                    format!("max_instances of service {name} must be at least 1"),
                ));
                1
            }
            Some(m) => *m.get_ref(),
            None => 1,
        };
        let require_capability = s.require_capability.as_ref().map(|c| {
            if c.get_ref().trim().is_empty() {
                errors.push(file.at(
                    c.span().start,
                    format!("require_capability of service {name} needs a name"),
                ));
            }
            c.get_ref().clone()
        });
        if errors.len() > errors_before {
            continue;
        }
        if let Some((first, first_at)) = services.get(&name) {
            let first_line = file.line_of(*first_at);
            let why = if first.owner == *owner {
                format!("service {name} is configured twice (first on line {first_line})")
            } else {
                format!(
                    "service {name} is owned by {} already (line {first_line}): a name has one owner",
                    first.owner
                )
            };
            errors.push(file.at(at, why));
            continue;
        }
        let rule = ServiceRule {
            name: name.clone(),
            owner: owner.clone(),
            exec,
            require_capability,
            idle_exit,
            max_instances,
        };
        services.insert(name, (rule, at));
    }
}

/// Whether `argv` can be run: a first word that is an absolute path to an
/// executable file.
fn executable(argv: &[String]) -> Result<(), String> {
    let Some(program) = argv.first() else {
        return Err("an empty command".into());
    };
    let path = std::path::Path::new(program);
    if !path.is_absolute() {
        return Err(format!("{program} must be an absolute path"));
    }
    let meta = std::fs::metadata(path).map_err(|e| format!("{program}: {e}"))?;
    if !meta.is_file() || meta.permissions().mode() & 0o111 == 0 {
        return Err(format!("{program} is not an executable file"));
    }
    Ok(())
}
