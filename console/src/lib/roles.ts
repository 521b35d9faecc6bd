// Which console pages each role may use, and how the console learns the
// signed-in token's role: by asking the server what it may do (a permission
// the server refuses is a page the console hides), never by guessing.

export type Role = 'station' | 'county' | 'reviewer' | 'operator';

/** Pages in navigation order, each with the roles whose calls it needs. */
export const PAGE_ROLES: Record<string, Role[]> = {
  review: ['reviewer', 'operator'],
  complaints: ['county', 'reviewer', 'operator'],
  post: ['station', 'county', 'operator'],
  workers: ['county', 'reviewer', 'operator'],
  dashboard: ['county', 'reviewer', 'operator'],
  ledger: ['county', 'reviewer', 'operator'],
  directory: ['station', 'county', 'reviewer', 'operator'],
};

/** What the server allowed the token at sign-in (read-only probes). */
export interface Probes {
  /** ReviewService.ListPendingPostings: reviewers and operators. */
  pendingReview: boolean;
  /** ReviewService.ListComplaints: county systems, reviewers and operators. */
  complaints: boolean;
  /** StatsService.StandardsReport: operators only. */
  standards: boolean;
}

/** The role the server's answers show. */
export function roleFromProbes(p: Probes): Role {
  if (p.standards) return 'operator';
  if (p.pendingReview) return 'reviewer';
  if (p.complaints) return 'county';
  return 'station';
}

/** The pages a role may use, in navigation order. */
export function pagesFor(role: Role): string[] {
  return Object.keys(PAGE_ROLES).filter((id) => PAGE_ROLES[id].includes(role));
}

/** The page to show: the one asked for if the role may use it, else the role's first page. */
export function landingPage(role: Role, wanted: string): string {
  const allowed = pagesFor(role);
  return allowed.includes(wanted) ? wanted : allowed[0];
}
