//! `busd pfn`: the package family name of a package name and publisher,
//! computed as Windows does (SHA-256 of the UTF-16LE publisher, first 8
//! bytes, Crockford base32), for writing `pfn = "..."` in the config.

use std::process::ExitCode;

use busd_proto::Pfn;

/// Options of `busd pfn`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Package name: 3 to 50 of A-Z, a-z, 0-9, '.' and '-'.
    #[arg(long)]
    name: String,
    /// Publisher, exactly as in the package manifest, e.g. "CN=Contoso, O=Contoso, C=US".
    #[arg(long)]
    publisher: String,
}

/// Prints `Name_PublisherId`; exit code 2 for an invalid name.
pub(crate) fn run(args: &Args) -> ExitCode {
    match family_name(args) {
        Ok(pfn) => {
            println!("{pfn}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("busd pfn: {e}");
            ExitCode::from(2)
        }
    }
}

fn family_name(args: &Args) -> Result<Pfn, busd_proto::PfnError> {
    Pfn::from_publisher(&args.name, &args.publisher)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MICROSOFT: &str =
        "CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US";

    fn args(name: &str, publisher: &str) -> Args {
        Args {
            name: name.to_owned(),
            publisher: publisher.to_owned(),
        }
    }

    #[test]
    fn the_microsoft_test_vector() {
        let pfn = family_name(&args("Microsoft.WindowsCalculator", MICROSOFT)).unwrap();
        assert_eq!(pfn.as_str(), "Microsoft.WindowsCalculator_8wekyb3d8bbwe");
    }

    #[test]
    fn invalid_names_are_refused() {
        for name in ["ab", "has space", "under_score", &"x".repeat(51)] {
            assert!(family_name(&args(name, MICROSOFT)).is_err(), "{name}");
        }
    }
}
