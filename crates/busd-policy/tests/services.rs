//! `[[package.service]]`: what is accepted, and every error with its line.

use std::path::Path;

use busd_policy::{CheckedPolicy, Policy, PolicyError, ServicesMode, SourceFile};
use busd_proto::{Pfn, Subject};

const WEATHER: &str = "Contoso.Weather_8wekyb3d8bbwe";
const MAPS: &str = "Fabrikam.Maps_1234567890abc";

fn load(text: &str) -> Result<CheckedPolicy, PolicyError> {
    Policy::from_toml(&SourceFile::new("busd.toml", text, Path::new("/")))
}

/// The errors as `LINE: message`.
fn errors(text: &str) -> Vec<String> {
    let e = load(text).expect_err("should be refused");
    e.errors
        .iter()
        .map(|d| format!("{}: {}", d.line.unwrap_or(0), d.message))
        .collect()
}

fn package(pfn: &str, services: &str) -> String {
    format!("[[package]]\npfn = \"{pfn}\"\nloopback = true\nuids = [1000]\n{services}")
}

#[test]
fn a_service_is_owned_by_its_package_with_its_keys() {
    let text = format!(
        "[daemon]\nservices = \"configured-only\"\n\n{}",
        package(
            WEATHER,
            "user = \"weather\"\n\n[[package.service]]\nname = \"contoso.weather.forecast\"\n\
             exec = [\"/bin/sh\", \"-c\", \"exit 0\"]\nrequire_capability = \"contoso.hsa\"\n\
             idle_exit = \"60s\"\nmax_instances = 2\n\n\
             [[package.service]]\nname = \"contoso.weather.radar\"\n"
        )
    );
    let checked = load(&text).expect("valid");
    let p = checked.policy;
    assert_eq!(p.services_mode, ServicesMode::ConfiguredOnly);
    let forecast = p
        .service(&Subject::from_static("contoso.weather.forecast"))
        .expect("configured");
    assert_eq!(forecast.owner, Pfn::parse(WEATHER).unwrap());
    assert_eq!(forecast.exec.as_deref().unwrap()[0], "/bin/sh");
    assert_eq!(forecast.require_capability.as_deref(), Some("contoso.hsa"));
    assert_eq!(forecast.idle_exit, Some(std::time::Duration::from_secs(60)));
    assert_eq!(forecast.max_instances, 2);
    let radar = p
        .service(&Subject::from_static("contoso.weather.radar"))
        .expect("configured");
    assert_eq!((radar.exec.as_ref(), radar.max_instances), (None, 1));
    let rules = p.package(&Pfn::parse(WEATHER).unwrap()).unwrap();
    assert_eq!(rules.run_as, (Some("weather".to_owned()), None));
}

#[test]
fn open_is_the_default() {
    let checked = load(&package(WEATHER, "")).expect("valid");
    assert_eq!(checked.policy.services_mode, ServicesMode::Open);
    assert!(checked.policy.services.is_empty());
}

#[test]
fn a_name_has_one_owner() {
    let service = "[[package.service]]\nname = \"shared.name\"\n";
    let text = format!("{}\n{}", package(WEATHER, service), package(MAPS, service));
    assert_eq!(
        errors(&text),
        [format!(
            "13: service shared.name is owned by {WEATHER} already (line 6): a name has one owner"
        )]
    );
}

#[test]
fn bad_entries_are_refused_with_their_lines() {
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("plain-file");
    std::fs::write(&plain, "not a program").unwrap();
    let plain = plain.display().to_string();
    let services = "[[package.service]]\nname = \"wild.*\"\n\n\
                    [[package.service]]\nname = \"relative.exec\"\nexec = [\"weather-service\"]\n\n\
                    [[package.service]]\nname = \"missing.exec\"\nexec = [\"/nonexistent/busd-service\"]\n\n\
                    [[package.service]]\nname = \"not.executable\"\nexec = [\"PLAIN\"]\n\n\
                    [[package.service]]\nname = \"empty.exec\"\nexec = []\n\n\
                    [[package.service]]\nname = \"bad.idle\"\nidle_exit = \"soon\"\n\n\
                    [[package.service]]\nname = \"no.instances\"\nmax_instances = 0\n";
    let e = errors(&package(WEATHER, &services.replace("PLAIN", &plain)));
    let expected: [&str; 7] = [
        "6: service name wild.*: a service name is literal, without * or >",
        "10: exec of service relative.exec: weather-service must be an absolute path",
        "14: exec of service missing.exec: /nonexistent/busd-service: No such file or directory (os error 2)",
        &format!("18: exec of service not.executable: {plain} is not an executable file"),
        "22: exec of service empty.exec: an empty command",
        "26: idle_exit of service bad.idle: expected number at 0: give a duration such as 60s",
        "30: max_instances of service no.instances must be at least 1",
    ];
    assert_eq!(e, expected);
}

#[test]
fn an_unknown_key_in_a_service_is_refused() {
    let text = package(
        WEATHER,
        "[[package.service]]\nname = \"a.b\"\nexecute = []\n",
    );
    let e = errors(&text);
    assert!(e[0].contains("unknown field `execute`"), "{e:?}");
}
