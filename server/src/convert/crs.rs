//! Coordinate systems at the API edge: positions in requests are converted
//! to WGS-84 (what the engine stores) from the system they say, and positions
//! in responses are expressed in the system the request asked for.

use super::api::InvalidRequest;
use crate::proto::v1 as pb;
use linggong_engine::{Crs, LatLon};

/// The engine's system for an API coordinate system (CGCS2000 and
/// UNSPECIFIED are WGS-84).
pub fn crs_from_pb(c: pb::CoordinateSystem) -> Crs {
    match c {
        pb::CoordinateSystem::Unspecified | pb::CoordinateSystem::Wgs84 | pb::CoordinateSystem::Cgcs2000 => Crs::Wgs84,
        pb::CoordinateSystem::Gcj02 => Crs::Gcj02,
        pb::CoordinateSystem::Bd09 => Crs::Bd09,
    }
}

/// The API coordinate system of an engine one.
pub fn crs_to_pb(c: Crs) -> pb::CoordinateSystem {
    match c {
        Crs::Wgs84 => pb::CoordinateSystem::Wgs84,
        Crs::Gcj02 => pb::CoordinateSystem::Gcj02,
        Crs::Bd09 => pb::CoordinateSystem::Bd09,
    }
}

/// A request's `response_crs` (field named for the error).
pub fn response_crs(field: &str, raw: i32) -> Result<Crs, InvalidRequest> {
    pb::CoordinateSystem::try_from(raw)
        .map(crs_from_pb)
        .map_err(|_| InvalidRequest::single(field, format!("unknown coordinate system {raw}")))
}

/// A stored (WGS-84) position as the API gives it, in `crs`.
pub fn position_to_pb(p: LatLon, crs: Crs) -> pb::LatLon {
    let q = crs.from_wgs84(p);
    pb::LatLon { lat: q.lat, lon: q.lon, crs: crs_to_pb(crs) as i32 }
}

/// Re-expresses a response position (as built, WGS-84) in `crs`.
fn express(position: &mut Option<pb::LatLon>, crs: Crs) {
    if crs == Crs::Wgs84 {
        return;
    }
    if let Some(p) = position.as_mut() {
        *p = position_to_pb(LatLon { lat: p.lat, lon: p.lon }, crs);
    }
}

/// Response messages holding positions.
pub trait InCrs {
    /// The message with its positions expressed in `crs`.
    fn in_crs(self, crs: Crs) -> Self;
}

macro_rules! in_crs_by_position {
    ($($t:ty),* $(,)?) => {$(
        impl InCrs for $t {
            fn in_crs(mut self, crs: Crs) -> Self {
                express(&mut self.position, crs);
                self
            }
        }
    )*};
}

in_crs_by_position!(pb::Worker, pb::Posting, pb::Market);

impl<T: InCrs> InCrs for Vec<T> {
    fn in_crs(self, crs: Crs) -> Self {
        self.into_iter().map(|m| m.in_crs(crs)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_the_system_they_were_asked_in() {
        let yaodu = LatLon { lat: 36.081, lon: 111.521 };
        let m = pb::Market { position: Some(position_to_pb(yaodu, Crs::Wgs84)), ..Default::default() };
        assert_eq!(m.position.as_ref().unwrap().crs, pb::CoordinateSystem::Wgs84 as i32);
        let gcj = m.clone().in_crs(Crs::Gcj02).position.unwrap();
        assert_eq!(gcj.crs, pb::CoordinateSystem::Gcj02 as i32);
        let back = Crs::Gcj02.to_wgs84(LatLon { lat: gcj.lat, lon: gcj.lon });
        assert!(back.distance_m(yaodu) < 0.001);
        assert!(LatLon { lat: gcj.lat, lon: gcj.lon }.distance_m(yaodu) > 100.0);
        assert_eq!(response_crs("response_crs", 2).unwrap(), Crs::Gcj02);
        assert_eq!(response_crs("response_crs", 4).unwrap(), Crs::Wgs84, "CGCS2000 is WGS-84");
        assert!(response_crs("response_crs", 99).unwrap_err().names("response_crs"));
    }
}
