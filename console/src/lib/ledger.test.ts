import { describe, expect, it } from 'vitest';
import { byDay, byMonth, toCsv, type DayFigures } from './ledger';

function row(day: string, county: number, filled: number, unfilled: number, placements: number, hardship: number): DayFigures {
  return {
    day,
    county,
    registrations: 1,
    instantMatches: 2,
    offersMade: 3,
    placements,
    hardshipPlacements: hardship,
    postingsFilled: filled,
    postingsUnfilled: unfilled,
    noShows: 0,
  };
}

describe('ledger sums', () => {
  const rows = [
    row('2024-03-01', 141002, 3, 1, 4, 1),
    row('2024-03-01', 141081, 1, 3, 0, 0),
    row('2024-03-02', 141002, 0, 0, 2, 2),
    row('2024-04-01', 141002, 1, 0, 1, 0),
  ];

  it('sums counties into the city per day, with shares from the sums', () => {
    const days = byDay(rows);
    expect(days.map((d) => d.key)).toEqual(['2024-03-01', '2024-03-02', '2024-04-01']);
    expect(days[0].postingsFilled).toBe(4);
    expect(days[0].fillRate).toBe(0.5); // 4 of 8, not the mean of 0.75 and 0.25
    expect(days[0].hardshipShare).toBe(0.25);
    expect(days[1].fillRate).toBeUndefined();
    expect(days[1].hardshipShare).toBe(1);
  });

  it('sums days into months', () => {
    const months = byMonth(rows);
    expect(months.map((m) => m.key)).toEqual(['2024-03', '2024-04']);
    expect(months[0].registrations).toBe(3);
    expect(months[0].placements).toBe(6);
    expect(months[0].hardshipShare).toBe(0.5);
  });

  it('writes CSV with quoting and a byte-order mark', () => {
    expect(toCsv(['日期', 'note'], [['2024-03-01', 'a,"b"'], ['x', undefined]])).toBe(
      '\ufeff日期,note\n2024-03-01,"a,""b"""\nx,\n',
    );
  });
});
