// The API over gRPC-Web (connect-es) on the console's own origin. Every call
// carries the signed-in person's token as `authorization: Bearer`, so every
// action is done, checked and recorded as that person.

import { Code, ConnectError, createClient, type Client, type Interceptor } from '@connectrpc/connect';
import { createGrpcWebTransport } from '@connectrpc/connect-web';
import { ref } from 'vue';
import { AuditService } from './gen/linggong/v1/audit_pb.js';
import { DirectoryService } from './gen/linggong/v1/directory_pb.js';
import { MatchService } from './gen/linggong/v1/match_pb.js';
import { PostingService } from './gen/linggong/v1/posting_pb.js';
import { ReviewService } from './gen/linggong/v1/review_pb.js';
import { StatsService } from './gen/linggong/v1/stats_pb.js';
import { WorkerService } from './gen/linggong/v1/worker_pb.js';

const TOKEN_KEY = 'linggong.token';

/** The signed-in token (kept for the browser tab only). */
export const token = ref<string>(sessionStorage.getItem(TOKEN_KEY) ?? '');

export function setToken(value: string): void {
  token.value = value;
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

const bearer: Interceptor = (next) => async (req) => {
  if (token.value) req.header.set('authorization', `Bearer ${token.value}`);
  return next(req);
};

const transport = createGrpcWebTransport({
  baseUrl: window.location.origin,
  interceptors: [bearer],
});

export interface Clients {
  workers: Client<typeof WorkerService>;
  postings: Client<typeof PostingService>;
  matching: Client<typeof MatchService>;
  review: Client<typeof ReviewService>;
  directory: Client<typeof DirectoryService>;
  stats: Client<typeof StatsService>;
  audit: Client<typeof AuditService>;
}

export const api: Clients = {
  workers: createClient(WorkerService, transport),
  postings: createClient(PostingService, transport),
  matching: createClient(MatchService, transport),
  review: createClient(ReviewService, transport),
  directory: createClient(DirectoryService, transport),
  stats: createClient(StatsService, transport),
  audit: createClient(AuditService, transport),
};

/** A fresh idempotency key for one user action (a retry of the same action reuses it). */
export function requestId(): string {
  const bytes = new Uint8Array(12);
  crypto.getRandomValues(bytes);
  return 'console-' + Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** An error as shown to the user: the gRPC code name and the server's message. */
export function errorText(e: unknown): string {
  if (e instanceof ConnectError) return `${Code[e.code]}: ${e.rawMessage}`;
  if (e instanceof Error) return e.message;
  return String(e);
}

/** Whether an error means the token was refused. */
export function isUnauthenticated(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.Unauthenticated;
}

/** Whether an error means the caller's role may not do this. */
export function isPermissionDenied(e: unknown): boolean {
  return e instanceof ConnectError && e.code === Code.PermissionDenied;
}

/** Whether a method exists in the generated API (RPCs still to come are shown as missing, not faked). */
export function hasMethod(service: { method: Record<string, unknown> }, name: string): boolean {
  return Object.prototype.hasOwnProperty.call(service.method, name);
}

export { AuditService, DirectoryService, MatchService, PostingService, ReviewService, StatsService, WorkerService };
