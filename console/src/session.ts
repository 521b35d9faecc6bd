// The signed-in person's role, learnt at sign-in from what the server allows
// the token (read-only probes; a refusal is PERMISSION_DENIED, anything else
// counts as allowed), kept for the browser tab.

import { ref } from 'vue';
import { api, isPermissionDenied } from './api';
import { roleFromProbes, type Role } from './lib/roles';

const ROLE_KEY = 'linggong.role';
const stored = sessionStorage.getItem(ROLE_KEY);

/** The role of the signed-in token, once known. */
export const role = ref<Role | null>(
  stored === 'station' || stored === 'county' || stored === 'reviewer' || stored === 'operator' ? stored : null,
);

async function allowed(call: () => Promise<unknown>): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (e) {
    if (isPermissionDenied(e)) return false;
    throw e;
  }
}

/** Asks the server what the current token may do; throws if the token is refused. */
export async function learnRole(): Promise<Role> {
  const [pendingReview, complaints, standards] = await Promise.all([
    allowed(() => api.review.listPendingPostings({ pageSize: 1 })),
    allowed(() => api.review.listComplaints({ pageSize: 1 })),
    allowed(() => api.stats.standardsReport({})),
  ]);
  const r = roleFromProbes({ pendingReview, complaints, standards });
  role.value = r;
  sessionStorage.setItem(ROLE_KEY, r);
  return r;
}

export function forgetRole(): void {
  role.value = null;
  sessionStorage.removeItem(ROLE_KEY);
}
