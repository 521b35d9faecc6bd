import { describe, expect, it } from 'vitest';
import {
  cstDateTime,
  cstDay,
  displayPhone,
  distance,
  duration,
  isMaskedPhone,
  isoDay,
  lastDays,
  parseCstLocal,
  percent,
  toCstLocal,
  yuan,
} from './format';

describe('formatting', () => {
  it('formats money, distances and shares', () => {
    expect(yuan(220)).toBe('¥220');
    expect(yuan(1010000)).toBe('¥1,010,000');
    expect(distance(850.4)).toBe('850 m');
    expect(distance(1234)).toBe('1.23 km');
    expect(distance(12345)).toBe('12.3 km');
    expect(percent(0.425)).toBe('42.5%');
    expect(percent(undefined)).toBe('—');
  });

  it('formats durations in both languages', () => {
    expect(duration(3900, 'zh')).toBe('1小时5分');
    expect(duration(3900, 'en')).toBe('1 h 5 min');
    expect(duration(45, 'zh')).toBe('45秒');
    expect(duration(90000, 'en')).toBe('1 d 1 h');
    expect(duration(-1, 'en')).toBe('—');
  });

  it('shows moments and days in China Standard Time', () => {
    const d = new Date(Date.UTC(2024, 2, 1, 16, 30)); // 2024-03-02 00:30 CST
    expect(cstDateTime(d)).toBe('2024-03-02 00:30');
    expect(cstDay(d)).toEqual({ year: 2024, month: 3, day: 2 });
    expect(isoDay(cstDay(d))).toBe('2024-03-02');
    expect(lastDays(d, 3).map(isoDay)).toEqual(['2024-02-29', '2024-03-01', '2024-03-02']);
  });

  it('reads typed China Standard Time and refuses impossible dates', () => {
    const d = parseCstLocal('2024-03-02T08:00');
    expect(d?.toISOString()).toBe('2024-03-02T00:00:00.000Z');
    expect(toCstLocal(d!)).toBe('2024-03-02T08:00');
    expect(parseCstLocal('2024-02-30T08:00')).toBeUndefined();
    expect(parseCstLocal('2024-03-02T24:00')).toBeUndefined();
    expect(parseCstLocal('tomorrow')).toBeUndefined();
  });

  it('shows masked phones exactly as the API masked them', () => {
    expect(isMaskedPhone('138****1234')).toBe(true);
    expect(displayPhone('138****1234')).toBe('138****1234');
    expect(displayPhone('*****67')).toBe('*****67');
    expect(isMaskedPhone('13812341234')).toBe(false);
    expect(displayPhone('13812341234')).toBe('138 1234 1234');
    expect(displayPhone('0357-1234567')).toBe('0357-1234567');
    expect(displayPhone('')).toBe('—');
  });
});
