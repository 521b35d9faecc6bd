// What the server tells the console about itself (`/console.json`): the
// counties with their seats, the trade catalogue, and the map tile source, if
// one is configured (with none the maps draw points over county seats only and
// nothing is loaded from the internet).

import { ref, watch, type Ref } from 'vue';
import type { Crs } from './lib/coords';

export interface County {
  code: number;
  name: string;
  lat: number;
  lon: number;
}

export interface Trade {
  id: string;
  name_zh: string;
  name_en: string;
}

export interface TileSource {
  url: string;
  crs: Crs;
  attribution: string;
}

export interface Site {
  counties: County[];
  trades: Trade[];
  tiles: TileSource | null;
}

export const site = ref<Site>({ counties: [], trades: [], tiles: null });
export const siteError = ref('');

export async function loadSite(): Promise<void> {
  try {
    const r = await fetch('/console.json', { cache: 'no-store' });
    if (!r.ok) throw new Error(`/console.json: HTTP ${r.status}`);
    site.value = (await r.json()) as Site;
  } catch (e) {
    siteError.value = e instanceof Error ? e.message : String(e);
  }
}

export function countyName(code: number): string {
  return site.value.counties.find((c) => c.code === code)?.name ?? String(code);
}

/** Keeps `county` on a real county: the first one until the user picks another. */
export function defaultCounty(county: Ref<number>): void {
  watch(
    () => site.value.counties,
    (cs) => {
      if (!county.value && cs.length) county.value = cs[0].code;
    },
    { immediate: true },
  );
}
