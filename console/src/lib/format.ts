// Display formatting shared by the pages: money, distances, durations, China
// Standard Time, shares, and phone numbers as the API returns them.

export type Locale = 'zh' | 'en';

/** Whole yuan: "¥220". */
export function yuan(n: number | bigint): string {
  return `¥${Number(n).toLocaleString('en-US')}`;
}

/** Metres as "850 m" or "12.3 km". */
export function distance(m: number): string {
  if (!Number.isFinite(m)) return '—';
  if (m < 1000) return `${Math.round(m)} m`;
  return `${(m / 1000).toFixed(m < 10000 ? 2 : 1)} km`;
}

/** Seconds as "1小时5分" / "1 h 5 min"; under a minute as seconds. */
export function duration(seconds: number, locale: Locale): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  if (s < 60) return locale === 'zh' ? `${s}秒` : `${s} s`;
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const parts: string[] = [];
  if (locale === 'zh') {
    if (days) parts.push(`${days}天`);
    if (hours) parts.push(`${hours}小时`);
    if (minutes) parts.push(`${minutes}分`);
    return parts.join('');
  }
  if (days) parts.push(`${days} d`);
  if (hours) parts.push(`${hours} h`);
  if (minutes) parts.push(`${minutes} min`);
  return parts.join(' ');
}

/** A share 0..1 as "42.5%"; missing as a dash. */
export function percent(share: number | undefined | null): string {
  if (share === undefined || share === null || !Number.isFinite(share)) return '—';
  return `${(share * 100).toFixed(1)}%`;
}

const CST_OFFSET_MS = 8 * 3600 * 1000;

/** A moment as China Standard Time, "2024-03-02 08:05". */
export function cstDateTime(d: Date | undefined | null): string {
  if (!d || Number.isNaN(d.getTime())) return '—';
  const t = new Date(d.getTime() + CST_OFFSET_MS);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${t.getUTCFullYear()}-${p(t.getUTCMonth() + 1)}-${p(t.getUTCDate())} ${p(t.getUTCHours())}:${p(t.getUTCMinutes())}`;
}

/** The China Standard Time calendar day of a moment. */
export function cstDay(d: Date): { year: number; month: number; day: number } {
  const t = new Date(d.getTime() + CST_OFFSET_MS);
  return { year: t.getUTCFullYear(), month: t.getUTCMonth() + 1, day: t.getUTCDate() };
}

/** "2024-03-02" of a calendar day. */
export function isoDay(d: { year: number; month: number; day: number }): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.year}-${p(d.month)}-${p(d.day)}`;
}

/** The `n` China Standard Time days ending with the day of `end`, oldest first. */
export function lastDays(end: Date, n: number): { year: number; month: number; day: number }[] {
  const out = [];
  for (let i = n - 1; i >= 0; i--) out.push(cstDay(new Date(end.getTime() - i * 86400 * 1000)));
  return out;
}

/**
 * A wall-clock time typed in China Standard Time ("2024-03-02T08:00", as a
 * datetime-local input gives it) as a moment; undefined if it does not parse.
 */
export function parseCstLocal(value: string): Date | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})$/.exec(value.trim());
  if (!m) return undefined;
  const [y, mo, d, h, mi] = m.slice(1).map(Number);
  const t = Date.UTC(y, mo - 1, d, h, mi) - CST_OFFSET_MS;
  const date = new Date(t);
  const back = new Date(t + CST_OFFSET_MS);
  if (back.getUTCMonth() !== mo - 1 || back.getUTCDate() !== d || h > 23 || mi > 59) return undefined;
  return date;
}

/** The datetime-local value (China Standard Time) of a moment. */
export function toCstLocal(d: Date): string {
  return cstDateTime(d).replace(' ', 'T');
}

/** Whether a phone number came back masked by the API (e.g. 138****1234). */
export function isMaskedPhone(phone: string): boolean {
  return phone.includes('*');
}

/**
 * A phone as shown: a masked number exactly as the API masked it (never
 * regrouped, so the hidden digits stay hidden), an 11-digit mobile number
 * grouped 3-4-4, anything else as given; empty as a dash.
 */
export function displayPhone(phone: string): string {
  if (!phone) return '—';
  if (isMaskedPhone(phone)) return phone;
  if (/^1\d{10}$/.test(phone)) return `${phone.slice(0, 3)} ${phone.slice(3, 7)} ${phone.slice(7)}`;
  return phone;
}
