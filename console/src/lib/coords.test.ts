import { describe, expect, it } from 'vitest';
import {
  bd09ToGcj02,
  distanceM,
  fromWgs84,
  gcj02ToBd09,
  gcj02ToWgs84,
  outsideChina,
  parseCrs,
  toWgs84,
  wgs84ToGcj02,
} from './coords';

// Reference values from the widely used coordtransform library (Beijing, Tiananmen).
describe('coordinate conversion', () => {
  it('WGS-84 to GCJ-02 matches the reference implementation', () => {
    const g = wgs84ToGcj02({ lat: 39.915, lon: 116.404 });
    expect(g.lon).toBeCloseTo(116.41024449916938, 9);
    expect(g.lat).toBeCloseTo(39.91640428150164, 9);
  });

  it('GCJ-02 and BD-09 match the reference implementation both ways', () => {
    const b = gcj02ToBd09({ lat: 39.915, lon: 116.404 });
    expect(b.lon).toBeCloseTo(116.41036949371029, 9);
    expect(b.lat).toBeCloseTo(39.92133699351022, 9);
    const g = bd09ToGcj02({ lat: 39.915, lon: 116.404 });
    expect(g.lon).toBeCloseTo(116.39762729119315, 9);
    expect(g.lat).toBeCloseTo(39.90865673957631, 9);
  });

  it('round trips return to the start within half a metre in Linfen (BD-09 inverse is approximate)', () => {
    const seat = { lat: 36.08, lon: 111.52 };
    for (const crs of ['wgs84', 'gcj02', 'bd09'] as const) {
      const back = toWgs84(fromWgs84(seat, crs), crs);
      expect(distanceM(seat, back)).toBeLessThan(0.5);
    }
  });

  it('the GCJ-02 offset in Linfen is a few hundred metres', () => {
    const seat = { lat: 36.08, lon: 111.52 };
    const d = distanceM(seat, wgs84ToGcj02(seat));
    expect(d).toBeGreaterThan(100);
    expect(d).toBeLessThan(1000);
    expect(distanceM(seat, gcj02ToWgs84(wgs84ToGcj02(seat)))).toBeLessThan(0.01);
  });

  it('leaves positions outside China unchanged', () => {
    const london = { lat: 51.5, lon: -0.12 };
    expect(outsideChina(london)).toBe(true);
    expect(wgs84ToGcj02(london)).toEqual(london);
    expect(gcj02ToWgs84(london)).toEqual(london);
  });

  it('measures distances like the engine (haversine, mean radius)', () => {
    // One degree of latitude on the mean sphere.
    expect(distanceM({ lat: 36, lon: 111 }, { lat: 37, lon: 111 })).toBeCloseTo(111195.08, 1);
    expect(distanceM({ lat: 36, lon: 111 }, { lat: 36, lon: 111 })).toBe(0);
  });

  it('parses map systems, defaulting to WGS-84', () => {
    expect(parseCrs('gcj02')).toBe('gcj02');
    expect(parseCrs('bd09')).toBe('bd09');
    expect(parseCrs('GCJ')).toBe('wgs84');
    expect(parseCrs(undefined)).toBe('wgs84');
  });
});
