//! The packages of the bridge's tests: `SENSOR`, which the bridge's rules
//! let send out and receive in, and `SPY`, which names the bridge in its
//! own rules but is named by none of the bridge's.

use crate::access::Package;

/// The bridge's package: no proof, the daemon grants it.
pub const BRIDGE: &str = "Busd.Bridge.Fleet_0000000000000";
/// A package the bridge carries both ways.
pub const SENSOR: &str = "Contoso.Sensor_8wekyb3d8bbwe";
/// A package the bridge carries neither way.
pub const SPY: &str = "Fabrikam.Spy_1234567890abc";

/// The bridge, `SENSOR` and `SPY`, in that order.
pub fn packages() -> Vec<Package> {
    vec![
        Package::new(BRIDGE)
            .no_token()
            .accepts(&[SENSOR])
            .sends_to(&[SENSOR]),
        Package::new(SENSOR).accepts(&[BRIDGE]).sends_to(&[BRIDGE]),
        Package::new(SPY).accepts(&[BRIDGE]).sends_to(&[BRIDGE]),
    ]
}
