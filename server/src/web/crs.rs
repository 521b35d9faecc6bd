//! Map coordinate systems for the HTTP outputs: positions are stored in
//! WGS-84; Chinese tile providers draw GCJ-02 (AMap, Tencent) or BD-09 (Baidu),
//! so `/directory.geojson?crs=` converts on the way out. The same formulas as
//! the console's `lib/coords.ts`; the formulas are the engine's (`linggong_engine::crs`).

use linggong_engine::LatLon;

/// A map coordinate system.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Crs {
    /// GPS, as stored.
    #[default]
    Wgs84,
    /// 国测局 GCJ-02.
    Gcj02,
    /// Baidu BD-09.
    Bd09,
}

/// A `crs` value that names no known system.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown coordinate system `{0}` (expected wgs84, gcj02 or bd09)")]
pub struct UnknownCrs(pub String);

impl std::str::FromStr for Crs {
    type Err = UnknownCrs;
    fn from_str(s: &str) -> Result<Self, UnknownCrs> {
        match s.to_ascii_lowercase().as_str() {
            "wgs84" => Ok(Crs::Wgs84),
            "gcj02" => Ok(Crs::Gcj02),
            "bd09" => Ok(Crs::Bd09),
            _ => Err(UnknownCrs(s.to_string())),
        }
    }
}

impl Crs {
    /// The engine's coordinate system of the same name (which owns the formulas).
    pub fn engine(self) -> linggong_engine::Crs {
        match self {
            Crs::Wgs84 => linggong_engine::Crs::Wgs84,
            Crs::Gcj02 => linggong_engine::Crs::Gcj02,
            Crs::Bd09 => linggong_engine::Crs::Bd09,
        }
    }

    /// A WGS-84 position in this system.
    pub fn from_wgs84(self, p: LatLon) -> LatLon {
        self.engine().from_wgs84(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linggong_engine::crs::{gcj02_to_bd09, wgs84_to_gcj02};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn matches_the_reference_values_the_console_tests_use() {
        let g = wgs84_to_gcj02(LatLon { lat: 39.915, lon: 116.404 });
        assert!(close(g.lon, 116.41024449916938) && close(g.lat, 39.91640428150164), "{g:?}");
        let b = gcj02_to_bd09(LatLon { lat: 39.915, lon: 116.404 });
        assert!(close(b.lon, 116.41036949371029) && close(b.lat, 39.92133699351022), "{b:?}");
    }

    #[test]
    fn wgs84_is_unchanged_and_outside_china_too() {
        let seat = LatLon { lat: 36.08, lon: 111.52 };
        assert_eq!(Crs::Wgs84.from_wgs84(seat), seat);
        let london = LatLon { lat: 51.5, lon: -0.12 };
        assert_eq!(Crs::Gcj02.from_wgs84(london), london);
    }

    #[test]
    fn parses_names_case_insensitively() {
        assert_eq!("GCJ02".parse::<Crs>(), Ok(Crs::Gcj02));
        assert_eq!("bd09".parse::<Crs>(), Ok(Crs::Bd09));
        assert_eq!("wgs84".parse::<Crs>(), Ok(Crs::Wgs84));
        assert!("mercator".parse::<Crs>().is_err());
    }
}
