//! Map coordinate systems for the HTTP outputs: positions are stored in
//! WGS-84; Chinese tile providers draw GCJ-02 (AMap, Tencent) or BD-09 (Baidu),
//! so `/directory.geojson?crs=` converts on the way out. The same formulas as
//! the console's `lib/coords.ts`, checked against the same reference values.

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

const A: f64 = 6_378_245.0;
const EE: f64 = 0.006_693_421_622_965_943;
const X_PI: f64 = std::f64::consts::PI * 3000.0 / 180.0;

fn outside_china(lat: f64, lon: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

fn transform_lat(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn transform_lon(x: f64, y: f64) -> f64 {
    use std::f64::consts::PI;
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS-84 to GCJ-02 (unchanged outside China).
pub fn wgs84_to_gcj02(p: LatLon) -> LatLon {
    if outside_china(p.lat, p.lon) {
        return p;
    }
    let d_lat = transform_lat(p.lon - 105.0, p.lat - 35.0);
    let d_lon = transform_lon(p.lon - 105.0, p.lat - 35.0);
    let rad_lat = p.lat.to_radians();
    let magic = 1.0 - EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    let d_lat = d_lat * 180.0 / ((A * (1.0 - EE)) / (magic * sqrt_magic) * std::f64::consts::PI);
    let d_lon = d_lon * 180.0 / (A / sqrt_magic * rad_lat.cos() * std::f64::consts::PI);
    LatLon { lat: p.lat + d_lat, lon: p.lon + d_lon }
}

/// GCJ-02 to BD-09.
pub fn gcj02_to_bd09(p: LatLon) -> LatLon {
    let (x, y) = (p.lon, p.lat);
    let z = (x * x + y * y).sqrt() + 0.00002 * (y * X_PI).sin();
    let theta = y.atan2(x) + 0.000003 * (x * X_PI).cos();
    LatLon { lat: z * theta.sin() + 0.006, lon: z * theta.cos() + 0.0065 }
}

impl Crs {
    /// A WGS-84 position in this system.
    pub fn from_wgs84(self, p: LatLon) -> LatLon {
        match self {
            Crs::Wgs84 => p,
            Crs::Gcj02 => wgs84_to_gcj02(p),
            Crs::Bd09 => gcj02_to_bd09(wgs84_to_gcj02(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
