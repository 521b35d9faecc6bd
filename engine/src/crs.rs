//! Coordinate systems of Chinese web maps: WGS-84 (GPS, 天地图; CGCS2000 is
//! treated as WGS-84, the two differ by centimetres), GCJ-02 (国测局坐标,
//! used by 高德 and Tencent maps) and BD-09 (百度). The engine keeps every
//! position in WGS-84; the service converts positions at its edge with
//! [`Crs::to_wgs84`] and [`Crs::from_wgs84`].
//!
//! GCJ-02 is the published obfuscation polynomial over the Krasovsky 1940
//! ellipsoid, applied inside mainland China's bounding box and the identity
//! outside it; BD-09 is a further rotation and shift of GCJ-02. GCJ-02 has no
//! closed-form inverse: [`gcj02_to_wgs84`] iterates the forward transform to
//! a fixed point (better than 1e-9 degrees, a tenth of a millimetre).

use crate::geo::LatLon;
use std::f64::consts::PI;

/// A coordinate system a position can be given in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Crs {
    /// WGS-84 (and CGCS2000): what the engine stores.
    #[default]
    Wgs84,
    /// GCJ-02 (高德, Tencent).
    Gcj02,
    /// BD-09 (百度).
    Bd09,
}

impl Crs {
    /// Every system.
    pub const ALL: [Crs; 3] = [Crs::Wgs84, Crs::Gcj02, Crs::Bd09];

    /// The position in WGS-84 of a point given in this system.
    pub fn to_wgs84(self, p: LatLon) -> LatLon {
        match self {
            Crs::Wgs84 => p,
            Crs::Gcj02 => gcj02_to_wgs84(p),
            Crs::Bd09 => gcj02_to_wgs84(bd09_to_gcj02_exact(p)),
        }
    }

    /// A WGS-84 position expressed in this system.
    pub fn from_wgs84(self, p: LatLon) -> LatLon {
        match self {
            Crs::Wgs84 => p,
            Crs::Gcj02 => wgs84_to_gcj02(p),
            Crs::Bd09 => gcj02_to_bd09(wgs84_to_gcj02(p)),
        }
    }

    /// Short lowercase name: `wgs84`, `gcj02`, `bd09`.
    pub fn name(self) -> &'static str {
        match self {
            Crs::Wgs84 => "wgs84",
            Crs::Gcj02 => "gcj02",
            Crs::Bd09 => "bd09",
        }
    }
}

/// Semi-major axis of the Krasovsky 1940 ellipsoid GCJ-02 is defined on, metres.
const KRASOVSKY_A: f64 = 6_378_245.0;
/// Its first eccentricity squared.
const KRASOVSKY_EE: f64 = 0.006_693_421_622_965_943;
/// The BD-09 rotation's angular factor.
const BD_X_PI: f64 = PI * 3000.0 / 180.0;

/// Whether GCJ-02 shifts a point: inside mainland China's bounding box.
pub fn in_china(p: LatLon) -> bool {
    (72.004..=137.8347).contains(&p.lon) && (0.8293..=55.8271).contains(&p.lat)
}

fn shift_lat(x: f64, y: f64) -> f64 {
    let mut r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    r
}

fn shift_lon(x: f64, y: f64) -> f64 {
    let mut r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    r += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    r += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    r += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    r
}

/// WGS-84 to GCJ-02 (the identity outside China).
pub fn wgs84_to_gcj02(p: LatLon) -> LatLon {
    if !in_china(p) {
        return p;
    }
    let (x, y) = (p.lon - 105.0, p.lat - 35.0);
    let rad_lat = p.lat / 180.0 * PI;
    let magic = 1.0 - KRASOVSKY_EE * rad_lat.sin() * rad_lat.sin();
    let sqrt_magic = magic.sqrt();
    let d_lat = shift_lat(x, y) * 180.0 / ((KRASOVSKY_A * (1.0 - KRASOVSKY_EE)) / (magic * sqrt_magic) * PI);
    let d_lon = shift_lon(x, y) * 180.0 / (KRASOVSKY_A / sqrt_magic * rad_lat.cos() * PI);
    LatLon { lat: p.lat + d_lat, lon: p.lon + d_lon }
}

/// GCJ-02 to WGS-84, by fixed-point iteration of [`wgs84_to_gcj02`] (at most
/// 30 rounds; it converges in a handful).
pub fn gcj02_to_wgs84(g: LatLon) -> LatLon {
    if !in_china(g) {
        return g;
    }
    let mut w = g;
    for _ in 0..30 {
        let f = wgs84_to_gcj02(w);
        let (d_lat, d_lon) = (g.lat - f.lat, g.lon - f.lon);
        w = LatLon { lat: w.lat + d_lat, lon: w.lon + d_lon };
        if d_lat.abs() < 1e-12 && d_lon.abs() < 1e-12 {
            break;
        }
    }
    w
}

/// GCJ-02 to BD-09.
pub fn gcj02_to_bd09(g: LatLon) -> LatLon {
    let (x, y) = (g.lon, g.lat);
    let z = (x * x + y * y).sqrt() + 0.000_02 * (y * BD_X_PI).sin();
    let theta = y.atan2(x) + 0.000_003 * (x * BD_X_PI).cos();
    LatLon { lat: z * theta.sin() + 0.006, lon: z * theta.cos() + 0.0065 }
}

/// BD-09 to GCJ-02: the published inverse, which round-trips to about 1e-6
/// degrees (0.1 m); [`bd09_to_gcj02_exact`] refines it.
pub fn bd09_to_gcj02(b: LatLon) -> LatLon {
    let (x, y) = (b.lon - 0.0065, b.lat - 0.006);
    let z = (x * x + y * y).sqrt() - 0.000_02 * (y * BD_X_PI).sin();
    let theta = y.atan2(x) - 0.000_003 * (x * BD_X_PI).cos();
    LatLon { lat: z * theta.sin(), lon: z * theta.cos() }
}

/// BD-09 to GCJ-02, the published inverse refined by fixed-point iteration of
/// [`gcj02_to_bd09`] (at most 30 rounds).
pub fn bd09_to_gcj02_exact(b: LatLon) -> LatLon {
    let mut g = bd09_to_gcj02(b);
    for _ in 0..30 {
        let f = gcj02_to_bd09(g);
        let (d_lat, d_lon) = (b.lat - f.lat, b.lon - f.lon);
        g = LatLon { lat: g.lat + d_lat, lon: g.lon + d_lon };
        if d_lat.abs() < 1e-12 && d_lon.abs() < 1e-12 {
            break;
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: LatLon, b: LatLon, tol_deg: f64) -> bool {
        (a.lat - b.lat).abs() <= tol_deg && (a.lon - b.lon).abs() <= tol_deg
    }

    /// Reference values published with the widely used `coordtransform`
    /// library (its test script), for the point (116.404 E, 39.915 N) in Beijing.
    #[test]
    fn published_reference_points() {
        let p = LatLon { lat: 39.915, lon: 116.404 };
        let cases = [
            (wgs84_to_gcj02(p), LatLon { lat: 39.916_404_281_501_64, lon: 116.410_244_499_169_38 }),
            (gcj02_to_bd09(p), LatLon { lat: 39.921_336_993_510_21, lon: 116.410_369_493_710_29 }),
            (bd09_to_gcj02(p), LatLon { lat: 39.908_656_739_576_31, lon: 116.397_627_291_193_15 }),
        ];
        for (got, want) in cases {
            assert!(close(got, want, 1e-9), "{got:?} != {want:?}");
        }
        // The library's one-step inverse is only approximate; ours iterates to
        // the exact preimage, which lies within a few centimetres of it.
        let one_step = LatLon { lat: 39.913_595_718_498_36, lon: 116.397_755_500_830_61 };
        let exact = gcj02_to_wgs84(p);
        assert!(exact.distance_m(one_step) < 0.5, "{exact:?}");
        assert!(close(wgs84_to_gcj02(exact), p, 1e-10));
    }

    #[test]
    fn shifts_are_hundreds_of_metres_in_linfen() {
        let yaodu = LatLon { lat: 36.081, lon: 111.521 };
        let gcj = wgs84_to_gcj02(yaodu).distance_m(yaodu);
        let bd = Crs::Bd09.from_wgs84(yaodu).distance_m(yaodu);
        assert!((100.0..1_000.0).contains(&gcj), "GCJ-02 shift {gcj} m");
        assert!((500.0..2_000.0).contains(&bd), "BD-09 shift {bd} m");
    }

    #[test]
    fn round_trips_across_china_stay_below_a_millimetre() {
        for lat in (18..=53).step_by(5) {
            for lon in (74..=134).step_by(6) {
                let p = LatLon { lat: lat as f64 + 0.123_456, lon: lon as f64 + 0.654_321 };
                for crs in Crs::ALL {
                    let back = crs.to_wgs84(crs.from_wgs84(p));
                    assert!(back.distance_m(p) < 0.001, "{crs:?} at {p:?}: {back:?}");
                }
            }
        }
    }

    #[test]
    fn outside_china_gcj02_is_the_identity() {
        let paris = LatLon { lat: 48.8566, lon: 2.3522 };
        assert_eq!(wgs84_to_gcj02(paris), paris);
        assert_eq!(gcj02_to_wgs84(paris), paris);
        assert_eq!(Crs::Wgs84.from_wgs84(paris), paris);
    }
}
