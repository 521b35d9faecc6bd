// Protobuf timestamps and durations as the pages use them.

import type { Duration, Timestamp } from '@bufbuild/protobuf/wkt';
import { timestampDate } from '@bufbuild/protobuf/wkt';

export function tsDate(t: Timestamp | undefined): Date | undefined {
  return t ? timestampDate(t) : undefined;
}

export function durationSeconds(d: Duration | undefined): number | undefined {
  return d ? Number(d.seconds) + d.nanos / 1e9 : undefined;
}
