// Coordinate systems used by Chinese web maps. The API speaks WGS-84 (GPS);
// tiles from Chinese providers are drawn in GCJ-02 (国测局, AMap/Tencent) or
// BD-09 (Baidu). Positions picked on a map are converted to WGS-84 before
// they are sent; positions from the API are converted to the map's system
// before they are drawn.

export type Crs = 'wgs84' | 'gcj02' | 'bd09';
export interface LatLon {
  lat: number;
  lon: number;
}

const A = 6378245.0; // Krasovsky 1940 semi-major axis, as GCJ-02 uses
const EE = 0.006693421622965943; // its eccentricity squared
const X_PI = (Math.PI * 3000.0) / 180.0;

/** GCJ-02 offsets apply inside mainland China only (a rough bounding box, as every implementation uses). */
export function outsideChina(p: LatLon): boolean {
  return p.lon < 72.004 || p.lon > 137.8347 || p.lat < 0.8293 || p.lat > 55.8271;
}

function transformLat(x: number, y: number): number {
  let r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x));
  r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  r += ((20.0 * Math.sin(y * Math.PI) + 40.0 * Math.sin((y / 3.0) * Math.PI)) * 2.0) / 3.0;
  r += ((160.0 * Math.sin((y / 12.0) * Math.PI) + 320 * Math.sin((y * Math.PI) / 30.0)) * 2.0) / 3.0;
  return r;
}

function transformLon(x: number, y: number): number {
  let r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x));
  r += ((20.0 * Math.sin(6.0 * x * Math.PI) + 20.0 * Math.sin(2.0 * x * Math.PI)) * 2.0) / 3.0;
  r += ((20.0 * Math.sin(x * Math.PI) + 40.0 * Math.sin((x / 3.0) * Math.PI)) * 2.0) / 3.0;
  r += ((150.0 * Math.sin((x / 12.0) * Math.PI) + 300.0 * Math.sin((x / 30.0) * Math.PI)) * 2.0) / 3.0;
  return r;
}

/** WGS-84 to GCJ-02 (unchanged outside China). */
export function wgs84ToGcj02(p: LatLon): LatLon {
  if (outsideChina(p)) return { ...p };
  let dLat = transformLat(p.lon - 105.0, p.lat - 35.0);
  let dLon = transformLon(p.lon - 105.0, p.lat - 35.0);
  const radLat = (p.lat / 180.0) * Math.PI;
  let magic = Math.sin(radLat);
  magic = 1 - EE * magic * magic;
  const sqrtMagic = Math.sqrt(magic);
  dLat = (dLat * 180.0) / (((A * (1 - EE)) / (magic * sqrtMagic)) * Math.PI);
  dLon = (dLon * 180.0) / ((A / sqrtMagic) * Math.cos(radLat) * Math.PI);
  return { lat: p.lat + dLat, lon: p.lon + dLon };
}

/** GCJ-02 to WGS-84, by fixed-point iteration (error well under a centimetre). */
export function gcj02ToWgs84(p: LatLon): LatLon {
  if (outsideChina(p)) return { ...p };
  let guess: LatLon = { ...p };
  for (let i = 0; i < 30; i++) {
    const g = wgs84ToGcj02(guess);
    const dLat = g.lat - p.lat;
    const dLon = g.lon - p.lon;
    guess = { lat: guess.lat - dLat, lon: guess.lon - dLon };
    if (Math.abs(dLat) < 1e-10 && Math.abs(dLon) < 1e-10) break;
  }
  return guess;
}

/** GCJ-02 to BD-09. */
export function gcj02ToBd09(p: LatLon): LatLon {
  const x = p.lon;
  const y = p.lat;
  const z = Math.sqrt(x * x + y * y) + 0.00002 * Math.sin(y * X_PI);
  const theta = Math.atan2(y, x) + 0.000003 * Math.cos(x * X_PI);
  return { lat: z * Math.sin(theta) + 0.006, lon: z * Math.cos(theta) + 0.0065 };
}

/** BD-09 to GCJ-02. */
export function bd09ToGcj02(p: LatLon): LatLon {
  const x = p.lon - 0.0065;
  const y = p.lat - 0.006;
  const z = Math.sqrt(x * x + y * y) - 0.00002 * Math.sin(y * X_PI);
  const theta = Math.atan2(y, x) - 0.000003 * Math.cos(x * X_PI);
  return { lat: z * Math.sin(theta), lon: z * Math.cos(theta) };
}

/** A WGS-84 position in the map system `crs`. */
export function fromWgs84(p: LatLon, crs: Crs): LatLon {
  switch (crs) {
    case 'wgs84':
      return { ...p };
    case 'gcj02':
      return wgs84ToGcj02(p);
    case 'bd09':
      return gcj02ToBd09(wgs84ToGcj02(p));
  }
}

/** A position of the map system `crs` in WGS-84. */
export function toWgs84(p: LatLon, crs: Crs): LatLon {
  switch (crs) {
    case 'wgs84':
      return { ...p };
    case 'gcj02':
      return gcj02ToWgs84(p);
    case 'bd09':
      return gcj02ToWgs84(bd09ToGcj02(p));
  }
}

/** Great-circle distance in metres (haversine, mean Earth radius), as the engine computes it. */
export function distanceM(a: LatLon, b: LatLon): number {
  const R = 6371008.8;
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * R * Math.asin(Math.min(1, Math.sqrt(h)));
}

export function parseCrs(s: string | undefined | null): Crs {
  return s === 'gcj02' || s === 'bd09' ? s : 'wgs84';
}
