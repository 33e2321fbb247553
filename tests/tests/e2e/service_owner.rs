//! Services owned by packages (`[[package.service]]`): only the owner may
//! serve a configured name; with `services = "configured-only"` no other
//! name can be served or called.

use busd_client::{CtlCommand, ErrorKind};
use busd_e2e::access::{config_toml, next_call, within};
use busd_e2e::{Package, TestDaemon, Transport};

const OWNER: &str = "Owner.Weather_8wekyb3d8bbwe";
const OTHER: &str = "Other.Maps_8wekyb3d8bbwe";

fn packages() -> [Package; 2] {
    [
        Package::new(OWNER).accepts(&[OTHER]).sends_to(&[OTHER]),
        Package::new(OTHER).accepts(&[OWNER]).sends_to(&[OWNER]),
    ]
}

/// A daemon whose config gives OWNER the service `owned.forecast`.
async fn daemon(services: &str) -> (TestDaemon, [Package; 2]) {
    let packages = packages();
    let mut toml = config_toml("same-uid", &packages);
    toml = toml.replacen(
        "[daemon]\n",
        &format!("[daemon]\nservices = {services:?}\n"),
        1,
    );
    // `[[package.service]]` belongs to the `[[package]]` table before it.
    let toml = toml.replace(
        &packages[0].toml(),
        &format!(
            "{}\n[[package.service]]\nname = \"owned.forecast\"\n",
            packages[0].toml()
        ),
    );
    (
        TestDaemon::start_with_packages_toml(&toml, &packages).await,
        packages,
    )
}

#[tokio::test]
async fn only_the_owner_may_serve_a_configured_name() {
    for t in Transport::ALL {
        let (d, p) = daemon("open").await;
        let owner = d.connect_as(t, &p[0]).await;
        let other = d.connect_as(t, &p[1]).await;
        let e = within("a refused serve", other.serve("owned.forecast"))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{t:?}: {e}");
        // The owner serves it, and the other package calls it.
        let mut svc = owner.serve("owned.forecast").await.unwrap();
        owner.flush().await.unwrap();
        let answer = tokio::spawn(async move {
            next_call(&mut svc, "a call")
                .await
                .respond("sunny")
                .await
                .unwrap();
        });
        let resp = within("the owner's answer", other.request("owned.forecast", "?"))
            .await
            .unwrap();
        assert_eq!(&resp.payload[..], b"sunny", "{t:?}");
        answer.await.unwrap();
        // A name nobody owns stays open by default.
        other
            .serve("free.name")
            .await
            .expect("an unconfigured name");
    }
}

#[tokio::test]
async fn configured_only_closes_every_other_name() {
    let (d, p) = daemon("configured-only").await;
    let t = Transport::Unix;
    let other = d.connect_as(t, &p[1]).await;
    let e = within("a refused serve", other.serve("free.name"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotAuthorized, "{e}");
    let e = within("a request", other.request("free.name", "?"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::UnknownService, "{e}");
    // A configured name with nobody serving it is another matter.
    let e = within("a request", other.request("owned.forecast", "?"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoResponders, "{e}");
    assert_eq!(d.daemon().stats().unknown_services, 1);
    // Counted per configured service, never for a name nobody owns.
    let admin = d.connect_unpackaged(t).await;
    let services = admin.ctl(CtlCommand::Services).await.unwrap();
    let list = services.as_array().unwrap();
    let owned = list.iter().find(|s| s["name"] == "owned.forecast").unwrap();
    assert_eq!(owned["requests"]["no_responders"], 1, "{services}");
    assert!(!list.iter().any(|s| s["name"] == "free.name"), "{services}");
}
