//! Geographic primitives: WGS-84 positions, great-circle distance, and the 3-D
//! unit-vector embedding under which R-tree distance order equals great-circle order.

use serde::{Deserialize, Serialize};

/// Mean Earth radius in metres (IUGG), used for all great-circle distances.
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// A WGS-84 position in degrees. Construct with [`LatLon::new`] to validate.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    /// Latitude in degrees, -90..=90.
    pub lat: f64,
    /// Longitude in degrees, -180..=180.
    pub lon: f64,
}

impl LatLon {
    /// Returns `None` for NaN, infinite or out-of-range coordinates.
    pub fn new(lat: f64, lon: f64) -> Option<Self> {
        let ok = lat.is_finite() && lon.is_finite() && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon);
        ok.then_some(Self { lat, lon })
    }

    /// Whether the position is finite and in range (positions deserialised from
    /// outside may not be).
    pub fn is_valid(&self) -> bool {
        Self::new(self.lat, self.lon).is_some()
    }

    /// The point on the unit sphere, as used by the spatial indexes.
    pub fn to_unit(self) -> [f32; 3] {
        let (lat, lon) = (self.lat.to_radians(), self.lon.to_radians());
        let c = lat.cos();
        [(c * lon.cos()) as f32, (c * lon.sin()) as f32, lat.sin() as f32]
    }

    /// Great-circle distance in metres (haversine).
    pub fn distance_m(self, other: LatLon) -> f64 {
        let (p1, p2) = (self.lat.to_radians(), other.lat.to_radians());
        let dp = p2 - p1;
        let dl = (other.lon - self.lon).to_radians();
        let h = (dp * 0.5).sin().powi(2) + p1.cos() * p2.cos() * (dl * 0.5).sin().powi(2);
        2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
    }
}

/// Slack in metres added to index searches to absorb the `f32` rounding of unit
/// vectors (about 0.5 m on the Earth's surface), so no candidate is ever missed.
pub const INDEX_SLACK_M: f64 = 10.0;

/// Squared chord length on the unit sphere for a great-circle distance in metres.
/// Chord length is monotone in arc length, so nearest-neighbour order agrees.
pub fn chord2_for_distance_m(distance_m: f64) -> f32 {
    let theta = (distance_m / EARTH_RADIUS_M).min(std::f64::consts::PI);
    let chord = 2.0 * (theta * 0.5).sin();
    (chord * chord) as f32
}

/// Great-circle distance in metres for a squared chord length on the unit sphere.
pub fn distance_m_for_chord2(chord2: f32) -> f64 {
    let chord = (chord2.max(0.0) as f64).sqrt().min(2.0);
    2.0 * (chord * 0.5).asin() * EARTH_RADIUS_M
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_coordinates() {
        assert!(LatLon::new(f64::NAN, 1.0).is_none());
        assert!(LatLon::new(91.0, 1.0).is_none());
        assert!(LatLon::new(1.0, -180.5).is_none());
        assert!(LatLon::new(1.0, f64::INFINITY).is_none());
        assert!(LatLon::new(36.08, 111.52).is_some());
    }

    #[test]
    fn haversine_matches_known_distance() {
        // Linfen (Yaodu) to Houma seats: about 50 km.
        let a = LatLon::new(36.08, 111.52).unwrap();
        let b = LatLon::new(35.62, 111.35).unwrap();
        let d = a.distance_m(b);
        assert!((d - 53_300.0).abs() < 1_000.0, "{d}");
    }

    #[test]
    fn chord_round_trips() {
        for d in [0.0, 1.0, 500.0, 12_345.0, 200_000.0] {
            let back = distance_m_for_chord2(chord2_for_distance_m(d));
            assert!((back - d).abs() < INDEX_SLACK_M, "{d} -> {back}");
        }
    }
}
