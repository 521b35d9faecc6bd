// Ledger arithmetic for the charts: daily ledgers summed into months and into
// the city (every county), with shares recomputed from their counts rather
// than averaged.

export interface DayFigures {
  /** "2024-03-02" */
  day: string;
  county: number;
  registrations: number;
  instantMatches: number;
  offersMade: number;
  placements: number;
  hardshipPlacements: number;
  postingsFilled: number;
  postingsUnfilled: number;
  noShows: number;
}

export interface Totals {
  key: string;
  registrations: number;
  instantMatches: number;
  offersMade: number;
  placements: number;
  hardshipPlacements: number;
  postingsFilled: number;
  postingsUnfilled: number;
  noShows: number;
  /** filled / (filled + unfilled); undefined when nothing ended. */
  fillRate: number | undefined;
  /** hardship placements / placements; undefined without placements. */
  hardshipShare: number | undefined;
}

function empty(key: string): Totals {
  return {
    key,
    registrations: 0,
    instantMatches: 0,
    offersMade: 0,
    placements: 0,
    hardshipPlacements: 0,
    postingsFilled: 0,
    postingsUnfilled: 0,
    noShows: 0,
    fillRate: undefined,
    hardshipShare: undefined,
  };
}

/** Sums figures into groups keyed by `keyOf`, in key order, with shares from the sums. */
export function sumBy(rows: DayFigures[], keyOf: (r: DayFigures) => string): Totals[] {
  const groups = new Map<string, Totals>();
  for (const r of rows) {
    const k = keyOf(r);
    const t = groups.get(k) ?? empty(k);
    t.registrations += r.registrations;
    t.instantMatches += r.instantMatches;
    t.offersMade += r.offersMade;
    t.placements += r.placements;
    t.hardshipPlacements += r.hardshipPlacements;
    t.postingsFilled += r.postingsFilled;
    t.postingsUnfilled += r.postingsUnfilled;
    t.noShows += r.noShows;
    groups.set(k, t);
  }
  const out = [...groups.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  for (const t of out) {
    const ended = t.postingsFilled + t.postingsUnfilled;
    t.fillRate = ended > 0 ? t.postingsFilled / ended : undefined;
    t.hardshipShare = t.placements > 0 ? t.hardshipPlacements / t.placements : undefined;
  }
  return out;
}

/** Totals per day (every county in `rows` summed: the city when all are given). */
export function byDay(rows: DayFigures[]): Totals[] {
  return sumBy(rows, (r) => r.day);
}

/** Totals per month ("2024-03"). */
export function byMonth(rows: DayFigures[]): Totals[] {
  return sumBy(rows, (r) => r.day.slice(0, 7));
}

/** The rows as CSV (UTF-8 with a byte-order mark so spreadsheet programs read the Chinese headers). */
export function toCsv(headers: string[], rows: (string | number | undefined)[][]): string {
  const cell = (v: string | number | undefined) => {
    const s = v === undefined ? '' : String(v);
    return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return '\ufeff' + [headers, ...rows].map((r) => r.map(cell).join(',')).join('\n') + '\n';
}
